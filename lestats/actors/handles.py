"""Job handles and streams of finished jobs, for embedders: what Python users expect of jobs.

- `Job`: a handle on one accepted job (`engine.job(job_id)`, or `client.job(job_id)` for a
  server): status, wait, result, cancel, and `await job` for its data, typed by its `JobId`.
- `as_completed` / `as_completed_async`: given ids, their outcomes in the order they finish.
- `finished_stream`: an async iterator of every job that finishes from now on.
- `Subscription`: a callback run for each finished job (`engine.on_finished`).

A `Job` asks its engine (or client) for what it needs. The other three ride on the
ResultStore's own push of finished jobs (`messages.Subscribe`): no polling, no thread per job,
and nothing blocks an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import pykka

from lestats import messages as m
from lestats.actors.jobs import JobStatus, format_job_id, parse_job_id
from lestats.errors import Overloaded
from lestats.results import JobId

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator

    from lestats.actors.engine import Engine
    from lestats.actors.facade import JobsFacade
    from lestats.actors.jobs import JobOutcome

R_co = TypeVar("R_co", covariant=True)
log = logging.getLogger(__name__)

Batch = tuple[tuple[int, "JobOutcome"], ...]

FINISHED_BACKLOG = 100_000
"""Finished jobs a `finished_stream` keeps for a consumer that falls behind; then it ends."""


class Job(Generic[R_co]):
    """A handle on one accepted job. `R_co` is the type of its data (from its `JobId`).

    It holds only its engine (or client) and the id: make as many as you like, from any thread.
    """

    __slots__ = ("_engine", "id")

    def __init__(self, engine: JobsFacade, job_id: JobId[R_co]) -> None:
        self._engine = engine
        self.id = job_id

    def __repr__(self) -> str:
        return f"Job({self.id})"

    def status(self) -> JobStatus:
        """The job's status now."""
        return self._engine.status(self.id)

    def done(self) -> bool:
        """Whether the job has finished (`done` or `error`)."""
        return self.status() is not JobStatus.RUNNING

    def wait(self, timeout: float | None = None) -> JobOutcome:
        """The outcome once the job has finished, or RUNNING after `timeout` seconds."""
        return self._engine.wait(self.id, timeout)

    def result(self, timeout: float | None = None) -> R_co:
        """Wait for the job and return its data.

        Raises:
            JobFailed: the job ended in error (`cancelled`, `expired`, or its reason).
            TimeoutError: still running after `timeout` seconds.
        """
        return self._engine.result(self.id, timeout)

    def cancel(self) -> bool:
        """Cancel the job if it is still queued (it ends `error`, reason `cancelled`)."""
        return self._engine.cancel(self.id)

    async def status_async(self) -> JobStatus:
        """`status` without blocking the event loop."""
        return await self._engine.status_async(self.id)

    async def wait_async(self, timeout: float | None = None) -> JobOutcome:
        """`wait` without blocking the event loop."""
        return await self._engine.wait_async(self.id, timeout)

    async def result_async(self, timeout: float | None = None) -> R_co:
        """`result` without blocking the event loop."""
        return await self._engine.result_async(self.id, timeout)

    async def cancel_async(self) -> bool:
        """`cancel` without blocking the event loop."""
        return await self._engine.cancel_async(self.id)

    def __await__(self) -> Generator[Any, None, R_co]:
        """`await job` is `await job.result_async()`."""
        return self.result_async().__await__()


class Subscription:
    """Calls `callback(job_id, outcome)` for each job that finishes, until `close`.

    The callback runs in the ResultStore's thread: it must be quick and must not block (hand
    the work to a queue or a loop). An exception it raises is logged; later jobs still come.
    """

    def __init__(
        self, store: pykka.ActorRef[Any], callback: Callable[[JobId[object], JobOutcome], None]
    ) -> None:
        self._store = store
        self._callback = callback
        store.tell(m.Subscribe(self._push))

    def _push(self, batch: Batch) -> None:
        for number, outcome in batch:
            try:
                self._callback(JobId(format_job_id(number)), outcome)
            except Exception:
                log.exception("on_finished callback failed for job %d", number)

    def close(self) -> None:
        """No more calls (those already under way finish)."""
        with contextlib.suppress(pykka.ActorDeadError):
            self._store.tell(m.Unsubscribe(self._push))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def as_completed(
    engine: Engine, store: pykka.ActorRef[Any], job_ids: Iterable[str | int], timeout: float | None
) -> Iterator[tuple[JobId[object], JobOutcome]]:
    """The outcomes of `job_ids` in the order they finish (see `Engine.as_completed`)."""
    wanted = {parse_job_id(job_id) for job_id in job_ids}
    finished: queue.SimpleQueue[tuple[int, JobOutcome]] = queue.SimpleQueue()
    watched = frozenset(wanted)

    def push(batch: Batch) -> None:
        for item in batch:
            if item[0] in watched:
                finished.put(item)

    store.tell(m.Subscribe(push))
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        # Those finished already come first (in id order), then the others as they finish.
        for number in sorted(wanted):
            outcome = engine.outcome(number)
            if outcome.status is not JobStatus.RUNNING:
                wanted.discard(number)
                yield JobId(format_job_id(number)), outcome
        while wanted:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                number, outcome = finished.get(timeout=left)
            except queue.Empty:
                raise TimeoutError(f"{len(wanted)} jobs still running") from None
            if number in wanted:
                wanted.discard(number)
                yield JobId(format_job_id(number)), outcome
    finally:
        with contextlib.suppress(pykka.ActorDeadError):
            store.tell(m.Unsubscribe(push))


async def as_completed_async(
    engine: Engine, store: pykka.ActorRef[Any], job_ids: Iterable[str | int], timeout: float | None
) -> AsyncIterator[tuple[JobId[object], JobOutcome]]:
    """`as_completed` for asyncio: the finished jobs arrive on the loop, never blocking it."""
    wanted = {parse_job_id(job_id) for job_id in job_ids}
    watched = frozenset(wanted)
    finished: asyncio.Queue[tuple[int, JobOutcome]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def push(batch: Batch) -> None:
        mine = [item for item in batch if item[0] in watched]
        if mine:
            loop.call_soon_threadsafe(_put_all, finished, mine)

    store.tell(m.Subscribe(push))
    deadline = None if timeout is None else loop.time() + timeout
    try:
        for number in sorted(wanted):
            outcome = await engine.outcome_async(number)
            if outcome.status is not JobStatus.RUNNING:
                wanted.discard(number)
                yield JobId(format_job_id(number)), outcome
        while wanted:
            left = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                number, outcome = await asyncio.wait_for(finished.get(), left)
            except TimeoutError:
                raise TimeoutError(f"{len(wanted)} jobs still running") from None
            if number in wanted:
                wanted.discard(number)
                yield JobId(format_job_id(number)), outcome
    finally:
        with contextlib.suppress(pykka.ActorDeadError):
            store.tell(m.Unsubscribe(push))


async def finished_stream(
    store: pykka.ActorRef[Any], backlog: int = FINISHED_BACKLOG
) -> AsyncIterator[tuple[JobId[object], JobOutcome]]:
    """Every job that finishes from now on, as it finishes (see `Engine.finished`).

    Raises:
        Overloaded: the consumer fell more than `backlog` jobs behind (the stream ends there
            rather than hold memory without bound).
    """
    finished: asyncio.Queue[tuple[int, JobOutcome] | None] = asyncio.Queue(backlog)
    loop = asyncio.get_running_loop()

    def push(batch: Batch) -> None:
        loop.call_soon_threadsafe(_put_all, finished, batch)

    store.tell(m.Subscribe(push))
    try:
        while True:
            item = await finished.get()
            if item is None:
                raise Overloaded(f"the finished-jobs stream fell more than {backlog} jobs behind")
            yield JobId(format_job_id(item[0])), item[1]
    finally:
        with contextlib.suppress(pykka.ActorDeadError):
            store.tell(m.Unsubscribe(push))


def _put_all(into: asyncio.Queue[Any], items: Iterable[tuple[int, JobOutcome]]) -> None:
    """In the loop: queue the items; a full queue gets None, the end-of-stream mark."""
    for item in items:
        try:
            into.put_nowait(item)
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueFull):
                into.get_nowait()
                into.put_nowait(None)
            return
