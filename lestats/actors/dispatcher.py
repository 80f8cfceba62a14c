"""The Dispatcher actor: admits jobs and hands them to Workers in round-robin order.

It keeps no results and no job state beyond which Worker is next. It supervises the Workers:
a dead one is replaced, and its queued jobs move to the replacement. It is where the shutdown
poison enters: every job it admitted before the poison is queued ahead of it in some Worker.
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, TypeVar

import pykka

from lestats.actors import messages as m
from lestats.errors import LeStatsError, ShuttingDown, StorageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future

log = logging.getLogger(__name__)

T = TypeVar("T")
STORE_TIMEOUT = 30.0
"""Seconds to wait for the ResultStore before refusing a job (it answers in microseconds)."""


class Dispatcher(pykka.ThreadingActor):
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
        """Stop any Worker still alive (only when stopped without the poison)."""
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
                log.error(
                    "worker %s died running job %s: %s",
                    message.worker,
                    message.job_id,
                    message.reason,
                )
                self._replace(message.worker, message.job_id, message.reason)
            elif isinstance(message, m.Requeue):
                self._requeue(message.jobs)
            else:
                super().on_receive(message)
        except Exception:
            log.exception("Dispatcher failed to handle %r", message)
            reply = getattr(message, "reply", None)
            if reply is not None:
                m.refuse(reply, StorageError("internal error in the dispatcher"))

    def _submit(self, message: m.SubmitJob) -> None:
        if self._poison is not None:
            m.refuse(message.reply, ShuttingDown())
            return
        slot = self._take_slot()
        register = m.RegisterJob(message.query, self._workers[slot].actor_urn)
        try:
            job_id = self._ask_store(register, register.reply)
        except LeStatsError as exc:
            m.refuse(message.reply, exc)
            return
        self._send(slot, m.RunJob(job_id, message.query))
        m.answer(message.reply, job_id)

    def _requeue(self, jobs: tuple[m.QueuedJob, ...]) -> None:
        slots = [self._take_slot() for _ in jobs]
        self._store.tell(
            m.AssignJobs(
                tuple(
                    (job_id, self._workers[s].actor_urn)
                    for (job_id, _), s in zip(jobs, slots, strict=True)
                )
            )
        )
        for (job_id, query), slot in zip(jobs, slots, strict=True):
            self._send(slot, m.RunJob(job_id, query))

    def _take_slot(self) -> int:
        slot = self._next
        self._next = (slot + 1) % self._size
        return slot

    def _send(self, slot: int, message: m.RunJob | m.Poison) -> None:
        """Tell a Worker; if it is already dead, replace it (its jobs, this one too, move over)."""
        worker = self._workers[slot]
        try:
            worker.tell(message)
        except pykka.ActorDeadError:
            self._replace(worker.actor_urn, None, "found dead")

    def _replace(self, dead: str, crashed_job: int | None, reason: str) -> None:
        slot = next((i for i, w in enumerate(self._workers) if w.actor_urn == dead), None)
        if slot is None:
            return
        replacement = self._spawn_worker(self.actor_ref)
        self._workers[slot] = replacement
        reassign = m.Reassign(dead, crashed_job, reason, replacement.actor_urn)
        moved = self._ask_store(reassign, reassign.reply)
        log.warning("replaced worker %s; %d queued jobs moved to its replacement", dead, len(moved))
        for job_id, query in moved:
            replacement.tell(m.RunJob(job_id, query))
        if self._poison is not None:
            self._draining.discard(dead)
            self._draining.add(replacement.actor_urn)
            replacement.tell(m.Poison(self._poison.drained))

    def _start_drain(self, poison: m.Poison) -> None:
        if self._poison is not None:
            self._poison.drained.add_done_callback(lambda _: m.answer(poison.drained, None))
            return
        self._poison = poison
        self._draining = {worker.actor_urn for worker in self._workers}
        for slot in range(self._size):
            self._send(slot, m.Poison(poison.drained))

    def _worker_stopped(self, worker: str) -> None:
        self._draining.discard(worker)
        if self._poison is not None and not self._draining:
            self._store.tell(m.EngineDrained(self._poison.drained))
            self.stop()

    def _ask_store(self, message: object, reply: Future[T]) -> T:
        self._store.tell(message)
        try:
            return reply.result(timeout=STORE_TIMEOUT)
        except FutureTimeout:
            raise StorageError("the result store did not answer") from None
