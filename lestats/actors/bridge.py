"""The event loop's side of the engine: what actor threads hand to one asyncio loop.

Actor threads settle `concurrent.futures` replies and report finished jobs; asyncio code must
see both in its own thread without ever blocking on an actor. `asyncio.wrap_future` does this
with one `call_soon_threadsafe` (a self-pipe write and a loop wake-up) per reply. `LoopInbox`
instead queues calls from any thread and runs everything queued at one wake-up, so a group
commit answering 200 clients wakes the loop once, not 200 times.

`FinishedOutcomes` is the loop's copy of recently finished jobs, pushed by the ResultStore in
batches. A poll for a job that is done is then answered in the loop, without an actor round
trip. Finished is final: a copy can be old, never wrong (a result file deleted behind the
server's back may still be served from it, as from any cache).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any, TypeVar

from lestats.actors.jobs import EXPIRED
from lestats.actors.sized_cache import SizedCache

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from concurrent.futures import Future

    from lestats.actors.jobs import JobOutcome

T = TypeVar("T")

_ENTRY_OVERHEAD = 200
"""Bytes charged per cached outcome besides its result: the entry, its key and its outcome."""


class LoopInbox:
    """Calls queued from any thread, run in the loop's thread in order, many per wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def call(self, function: Callable[[T], None], argument: T) -> None:
        """Run `function(argument)` in the loop's thread soon; safe from any thread.

        Raises:
            RuntimeError: the loop is closed.
        """
        with self._lock:
            if self.loop.is_closed():  # a wake-up still pending would never run: queue nothing
                self._calls.clear()
                self._scheduled = False
                raise RuntimeError("Event loop is closed")
            self._calls.append((function, argument))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._run)
        except RuntimeError:
            with self._lock:
                self._scheduled = False
                self._calls.clear()
            raise

    def _run(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, deque()
            self._scheduled = False
        for function, argument in calls:
            try:
                function(argument)
            except Exception as exc:  # noqa: BLE001 - one failing call must not lose the others
                self.loop.call_exception_handler(
                    {"message": f"LoopInbox call {function!r} failed", "exception": exc}
                )

    def awaitable(self, reply: Future[T]) -> asyncio.Future[T]:
        """An asyncio future of this loop settled like `reply` (call it in the loop's thread).

        Cancelling it does not cancel `reply`: the actor still settles that, unseen.
        """
        waiter: asyncio.Future[T] = self.loop.create_future()

        def settle(_: Future[T]) -> None:
            if waiter.done():
                return
            if reply.cancelled():
                waiter.cancel()
                return
            error = reply.exception()
            if error is None:
                waiter.set_result(reply.result())
            else:
                waiter.set_exception(error)

        def forward(_: Future[T]) -> None:
            try:
                self.call(settle, reply)
            except RuntimeError:
                return  # the loop is closed: nobody is left to await the waiter

        reply.add_done_callback(forward)
        return waiter


class FinishedOutcomes:
    """The outcomes of recently finished jobs, in the loop's thread, bounded in bytes.

    The ResultStore calls `push` (from its thread) with each batch of jobs that finished; the
    batch is applied in the loop's thread, which alone reads with `get`. Least recently used
    entries go first.
    """

    def __init__(self, inbox: LoopInbox, max_bytes: int) -> None:
        self._inbox = inbox
        self._outcomes: SizedCache[int, JobOutcome] = SizedCache(max_bytes, _size)

    def push(self, batch: tuple[tuple[int, JobOutcome], ...]) -> None:
        """Hand a batch of finished jobs to the loop; from any thread.

        Raises:
            RuntimeError: the loop is closed (the ResultStore then stops pushing here).
        """
        self._inbox.call(self._add, batch)

    def get(self, job_id: int) -> JobOutcome | None:
        """The outcome of `job_id` if it finished recently; in the loop's thread only."""
        return self._outcomes.get(job_id)

    def forgotten(self, job_id: int) -> None:
        """`job_id` was forgotten: it answers `expired` now; in the loop's thread only."""
        self._outcomes.put(job_id, EXPIRED)

    def _add(self, batch: tuple[tuple[int, JobOutcome], ...]) -> None:
        for job_id, outcome in batch:
            # Finished is final, the first report stands; only forgetting comes after it.
            if outcome is EXPIRED or job_id not in self._outcomes:
                self._outcomes.put(job_id, outcome)


def _size(outcome: JobOutcome) -> int:
    return _ENTRY_OVERHEAD + len(outcome.result or b"") + len(outcome.reason or "")
