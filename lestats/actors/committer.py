"""The JournalCommitter actor: makes accepted jobs durable, then releases them.

The ResultStore has its store record each accepted job and holds it; in batches it hands the
held jobs over with the store's commit barrier (for the file store: an `fdatasync` of the
journal). One barrier here makes a whole batch durable; only then is each job sent to its
Worker and its id answered to its client. So a job runs only once it is durable, and the
ResultStore never waits on the disk meanwhile.

Jobs and the shutdown poison leave from here in the order they arrived, so the poison still
reaches every Worker behind every job accepted before it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import pykka

from lestats import messages as m
from lestats.actors.refs import RequestActor
from lestats.errors import StorageError

if TYPE_CHECKING:
    from lestats.metrics_stats import JobStats

log = logging.getLogger(__name__)


class JournalCommitter(RequestActor):
    """Runs commit barriers, then sends the held jobs and answers their clients.

    If a sync fails, the jobs of that batch never run: their clients are refused and the jobs
    are failed at `store` (their ids are used up, and listed as errors).
    """

    def __init__(self, store: pykka.ActorRef[Any], stats: JobStats | None = None) -> None:
        super().__init__()
        self._store = store
        self._stats = stats
        self._refused: set[int] = set()

    def on_receive(self, message: Any) -> None:  # noqa: ANN401 - any message may arrive
        """Commit a batch, or pass the poison on behind the batches before it."""
        if isinstance(message, m.Commit):
            self._commit(message)
        elif isinstance(message, m.ForwardPoison):
            for worker in message.workers:
                send(worker, m.Poison(message.poison.drained))
        elif isinstance(message, m.MoveJobs):
            for job_id, query in message.jobs:
                if job_id not in self._refused:
                    send(message.replacement, m.RunJob(job_id, query))
            if message.poison is not None:
                send(message.replacement, m.Poison(message.poison.drained))
        else:
            super().on_receive(message)

    def _commit(self, message: m.Commit) -> None:
        began = time.perf_counter()
        try:
            message.barrier()
        except (OSError, StorageError) as exc:
            log.exception("journal commit failed; %d jobs refused", len(message.jobs))
            problem = exc.problem if isinstance(exc, StorageError) else exc.strerror or str(exc)
            error = StorageError(f"journal not durable ({problem})")
            for job in message.jobs:
                m.refuse(job.reply, error)
                self._refused.add(job.job_id)
                with contextlib.suppress(pykka.ActorDeadError):
                    self._store.tell(m.JobErrored(job.job_id, f"refused: {error}"))
        else:
            if self._stats is not None:
                self._stats.commit(time.perf_counter() - began, len(message.jobs))
            release(message.jobs)


def release(jobs: tuple[m.HeldJob, ...]) -> None:
    """Send durable jobs to their Workers and answer their ids."""
    for job in jobs:
        send(job.worker, m.RunJob(job.job_id, job.query))
        m.answer(job.reply, job.job_id)


def send(worker: pykka.ActorRef[Any], message: m.RunJob | m.Poison) -> None:
    """Tell a Worker; a dead one is skipped (its replacement gets its jobs from the store)."""
    with contextlib.suppress(pykka.ActorDeadError):
        worker.tell(message)
