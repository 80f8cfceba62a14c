"""The Worker actor: computes one job at a time over the shared, immutable Dataset."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import pykka

from lestats import jsonio
from lestats import messages as m
from lestats.actors.refs import RequestActor
from lestats.actors.sized_cache import SizedCache

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from lestats.actors.claims import JobClaims
    from lestats.data.dataset import Dataset
    from lestats.data.query import Query

log = logging.getLogger(__name__)

MEMO_BYTES = 4 << 20
"""How much encoded result a Worker keeps for repeated queries, when its runner is pure."""


class WorkerCrashedError(Exception):
    """A job raised something that is not an ordinary error (a `BaseException`).

    The Worker fails that job, then dies with this error: pykka stops only this actor for it
    (for a raw `BaseException` it would stop every actor in the process), and the Worker's
    failure hook tells the Dispatcher, which starts a replacement for the jobs queued behind.
    """


class Worker(RequestActor):
    """Runs jobs in arrival order and reports each to the ResultStore as done or failed.

    An exception in a job fails that job and the Worker carries on. Only a fatal fault kills the
    Worker; its Dispatcher then replaces it and moves its queued jobs to the replacement.
    The Dataset is shared by reference, never copied. Once `abandon` is set (a shutdown without
    drain), queued jobs are skipped unreported: they stay in the journal and run at the next start.
    With `claims`, a job cancelled while queued is skipped too.

    With `memo_bytes`, the encoded results of recent queries that `pure` accepts (by default,
    every query: the dataset never changes, so a pure statistic's answer never does) are kept,
    up to that many bytes, and a repeated query costs a lookup instead of a computation and a
    JSON encoding.
    """

    def __init__(
        self,
        dataset: Dataset,
        runner: Callable[[Dataset, Query], object],
        store: pykka.ActorRef[Any],
        dispatcher: pykka.ActorRef[Any],
        abandon: threading.Event | None = None,
        *,
        memo_bytes: int = 0,
        claims: JobClaims | None = None,
        pure: Callable[[Query], bool] | None = None,
    ) -> None:
        super().__init__()
        self._claims = claims
        self._abandon = abandon or threading.Event()
        self._dataset = dataset
        self._runner = runner
        self._store = store
        self._dispatcher = dispatcher
        self._current: int | None = None
        self._memo: SizedCache[Query, bytes] = SizedCache(memo_bytes)
        self._pure = pure

    def on_receive(self, message: Any) -> None:  # noqa: ANN401 - any message may arrive
        """Run a job, or stop after the jobs queued before the poison."""
        if isinstance(message, m.RunJob):
            self._run(message)
        elif isinstance(message, m.Poison):
            self._dispatcher.tell(m.WorkerStopped(self.actor_urn))
            self.stop()
        else:
            super().on_receive(message)

    def _run(self, job: m.RunJob) -> None:
        if self._abandon.is_set():
            return
        if self._claims is not None and not self._claims.start(job.job_id):
            return  # cancelled while it was queued: the ResultStore already failed it
        self._current = job.job_id
        started = time.monotonic()
        try:
            result = self._result(job.query)
        except Exception as exc:
            log.exception("job %d failed", job.job_id)
            reason = f"{type(exc).__name__}: {exc}"
            self._store.tell(m.JobErrored(job.job_id, reason, started, time.monotonic()))
        except BaseException as exc:
            reason = f"the worker running it crashed: {type(exc).__name__}: {exc}"
            self._store.tell(m.JobErrored(job.job_id, reason, started, time.monotonic()))
            raise WorkerCrashedError(reason) from exc
        else:
            self._store.tell(m.JobDone(job.job_id, result, started, time.monotonic()))
        self._current = None

    def _result(self, query: Query) -> bytes:
        """The query's encoded answer, from the memo when it is there."""
        if self._pure is not None and not self._pure(query):
            return jsonio.dumps(self._runner(self._dataset, query))
        result = self._memo.get(query)
        if result is None:
            result = jsonio.dumps(self._runner(self._dataset, query))
            self._memo.put(query, result)
        return result

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Tell the Dispatcher this Worker is dead and which job it was running."""
        del exception_type, traceback
        try:
            self._dispatcher.tell(m.WorkerDied(self.actor_urn, self._current, str(exception_value)))
        except pykka.ActorDeadError:
            log.exception("worker died and its dispatcher is gone too")
