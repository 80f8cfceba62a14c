"""The Dispatcher actor: admits jobs and assigns each to a Worker in round-robin order.

It keeps no results and no job state beyond which Worker is next. Jobs reach the Workers through
the ResultStore, which numbers and journals each one first; the shutdown poison takes the same
road, so it arrives at every Worker behind all the jobs admitted before it. The Dispatcher also
supervises the Workers: a dead one is replaced and its unfinished jobs move to the replacement.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lestats import messages as m
from lestats.actors.refs import RequestActor
from lestats.errors import ShuttingDown

if TYPE_CHECKING:
    from collections.abc import Callable

    import pykka

log = logging.getLogger(__name__)


class Dispatcher(RequestActor):
    """Round-robin over `workers` Workers made by `spawn_worker(dispatcher_ref)`.

    Handlers never raise: a submission that cannot be accepted is refused on its reply.
    """

    def __init__(
        self,
        store: pykka.ActorRef[Any],
        spawn_worker: Callable[[pykka.ActorRef[Any]], pykka.ActorRef[Any]],
        workers: int,
    ) -> None:
        super().__init__()
        if workers < 1:
            raise ValueError("a Dispatcher needs at least one worker")
        self._store = store
        self._spawn_worker = spawn_worker
        self._size = workers
        self._workers: list[pykka.ActorRef[Any]] = []
        self._next = 0
        self._poison: m.Poison | None = None
        self._draining: set[str] = set()

    def on_start(self) -> None:
        """Start the Workers, in this actor's thread, each knowing this Dispatcher."""
        self._workers = [self._spawn_worker(self.actor_ref) for _ in range(self._size)]

    def on_stop(self) -> None:
        """Refuse what is still queued; stop any Worker left (only when stopped without poison)."""
        m.refuse_queued(self.actor_inbox, ShuttingDown())
        for worker in self._workers:
            if worker.is_alive():
                worker.stop(block=False)

    def on_receive(self, message: Any) -> None:  # noqa: ANN401 - any message may arrive
        """Route one message; log, never raise."""
        try:
            if isinstance(message, m.SubmitJob):
                self._submit(message)
            elif isinstance(message, m.Poison):
                self._start_drain(message)
            elif isinstance(message, m.WorkerStopped):
                self._worker_stopped(message.worker)
            elif isinstance(message, m.WorkerDied):
                self._replace(message)
            elif isinstance(message, m.Requeue):
                assignments = tuple((job_id, self._take_worker()) for job_id in message.job_ids)
                self._store.tell(m.AssignJobs(assignments))
            else:
                super().on_receive(message)
        except Exception:
            log.exception("Dispatcher failed to handle %r", message)
            reply = getattr(message, "reply", None)
            if reply is not None:
                m.refuse(reply, ShuttingDown())

    def _submit(self, message: m.SubmitJob) -> None:
        if self._poison is not None:
            m.refuse(message.reply, ShuttingDown())
            return
        self._store.tell(m.RegisterJob(message.query, self._take_worker(), message.reply))

    def _take_worker(self) -> pykka.ActorRef[Any]:
        worker = self._workers[self._next]
        self._next = (self._next + 1) % self._size
        return worker

    def _replace(self, death: m.WorkerDied) -> None:
        slot = next((i for i, w in enumerate(self._workers) if w.actor_urn == death.worker), None)
        if slot is None:
            return
        log.error("worker %s died running job %s: %s", death.worker, death.job_id, death.reason)
        replacement = self._spawn_worker(self.actor_ref)
        self._workers[slot] = replacement
        if self._poison is not None:
            self._draining.discard(death.worker)
            self._draining.add(replacement.actor_urn)
        self._store.tell(m.Reassign(death.worker, replacement, self._poison))

    def _start_drain(self, poison: m.Poison) -> None:
        if self._poison is not None:
            self._poison.drained.add_done_callback(lambda _: m.answer(poison.drained, None))
            return
        self._poison = poison
        self._draining = {worker.actor_urn for worker in self._workers}
        self._store.tell(m.ForwardPoison(tuple(self._workers), poison))

    def _worker_stopped(self, worker: str) -> None:
        self._draining.discard(worker)
        if self._poison is not None and not self._draining:
            self._store.tell(m.EngineDrained(self._poison.drained))
            self.stop()
