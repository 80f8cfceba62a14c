"""The embedding facade: starts the actor system around a Dataset and talks to it for you.

It is what the HTTP front end uses too, so an embedding program sees exactly the server's
behaviour. Every blocking method has an `async` twin that never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import pykka

from lestats import messages as m
from lestats.actors import handles, lifetime
from lestats.actors.bridge import FinishedOutcomes, LoopInbox
from lestats.actors.claims import JobClaims
from lestats.actors.dispatcher import Dispatcher
from lestats.actors.facade import LIST_PAGE, JobsFacade
from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus, format_job_id, parse_job_id
from lestats.actors.result_store import ResultStore
from lestats.actors.slots import RequestSlots
from lestats.actors.worker import MEMO_BYTES, Worker
from lestats.data.query import Query
from lestats.data.statistics import default_registry
from lestats.errors import (
    InvalidQuery,
    LeStatsError,
    PartlyAccepted,
    ShuttingDown,
)
from lestats.metrics_stats import JobStats
from lestats.results import (
    JobId,
)
from lestats.stores.base import NO_RETENTION_LIMIT, Retention
from lestats.stores.files import DEFAULT_CACHE_BYTES, FileStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
    from concurrent.futures import Future
    from types import TracebackType

    from lestats.data.dataset import Dataset
    from lestats.data.registry import Registry
    from lestats.stores.base import JobStore


T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 10_000
DEFAULT_MAX_REQUESTS = 4_096
DEFAULT_MAX_WAITERS = 4_096


def default_workers() -> int:
    """`TP_NUM_OF_THREADS` if set, else the number of CPUs."""
    configured = os.environ.get("TP_NUM_OF_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return os.cpu_count() or 1


class Engine(JobsFacade):
    """A Dispatcher, N Workers and a ResultStore over one Dataset and one job store.

    Use it as a context manager (`with Engine(dataset) as engine:`), or call `start` and
    `shutdown`. Shutdown drains: every accepted job finishes first. Two engines in one process are
    independent; they cannot share a results directory (the second gets `StorageError`).

    The store is `store` if given (a `MemoryStore`, say), else a `FileStore` on `results_dir`.
    With `retention`, finished jobs beyond its limits are forgotten as jobs finish.

    Back-pressure: at most `max_pending` accepted jobs are unfinished (then `Overloaded`), and at
    most `max_requests` requests wait on the actors at once (then `Overloaded`), so no mailbox
    grows without bound. Long-polls (`wait`, `wait_async`) have their own bound, `max_waiters`:
    however many wait, other requests keep their places.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        workers: int | None = None,
        results_dir: str | os.PathLike[str] = "results",
        store: JobStore | None = None,
        retention: Retention = NO_RETENTION_LIMIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        max_waiters: int = DEFAULT_MAX_WAITERS,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        registry: Registry | None = None,
        runner: Callable[[Dataset, Query], object] | None = None,
        shutdown_timeout: float | None = None,
        slot_wait: float = 0.0,
    ) -> None:
        """Configure; nothing runs until `start`.

        `shutdown_timeout` bounds the shutdown that leaving `with` (or `async with`) and the
        interpreter's exit do. `slot_wait`: seconds a request may wait for a free place when
        `max_requests` are taken, instead of being refused with `Overloaded` at once (the
        server keeps 0: an HTTP client gets 503 and `Retry-After`).

        `cache_bytes` bounds the results the file store keeps in memory (the rest is read from
        disk; the event loop's copy of finished jobs takes a quarter of that again).
        `registry` is the table of statistics jobs may ask for (default: the nine course
        statistics); it is frozen at `start`. `runner` replaces the registry's functions when
        computing a job (tests inject slow or failing ones); its answers are never memoized.
        """
        self.dataset = dataset
        self.shutdown_timeout = shutdown_timeout
        self.slot_wait = slot_wait
        self.registry = registry if registry is not None else default_registry()
        self.workers = workers if workers is not None else default_workers()
        self.results_dir = Path(results_dir)
        self.job_store: JobStore = (
            store if store is not None else FileStore(self.results_dir, cache_bytes=cache_bytes)
        )
        self.retention = retention
        self.max_pending = max_pending
        self._cache_bytes = cache_bytes
        self._runner = runner
        self._requests = RequestSlots(
            max_requests, "too many requests waiting on the engine; retry later"
        )
        self._waiters = RequestSlots(
            max_waiters,
            f"too many long-polls waiting at once (the waiter bound, {max_waiters}); "
            "retry later, or poll without 'wait'",
        )
        self._loop_side: _LoopSide | None = None
        self._store: pykka.ActorRef[Any] | None = None
        self._dispatcher: pykka.ActorRef[Any] | None = None
        self._drained: Future[None] | None = None
        self._abandon = threading.Event()
        self._lock = threading.Lock()
        self._stopping = threading.Lock()
        self._ticker: _TakeOverTicker | None = None
        self.job_stats: JobStats | None = None
        """Jobs counted and timed by the ResultStore for the metrics (made by `start`)."""

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the actors; jobs left unfinished in the results directory run again."""
        if self._store is not None or self._drained is not None:
            raise RuntimeError("an Engine starts once; make a new one (same results_dir is fine)")
        claims = JobClaims()
        self.registry.freeze()
        self.job_stats = JobStats(self.registry.names)
        store = ResultStore.start(
            self.job_store, self.max_pending, self.retention, claims, self.job_stats
        )
        dataset, registry, abandon = self.dataset, self.registry, self._abandon
        runner = self._runner or registry.encode
        # The registry says which statistics are pure; an injected runner runs for every job.
        memo_bytes = MEMO_BYTES if self._runner is None else 0

        def spawn_worker(dispatcher: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
            return Worker.start(
                dataset,
                runner,
                store,
                dispatcher,
                abandon,
                memo_bytes=memo_bytes,
                claims=claims,
                pure=registry.is_pure,
            )

        try:
            dispatcher = Dispatcher.start(store, spawn_worker, self.workers)
        except BaseException:
            store.stop()
            raise
        self._store, self._dispatcher = store, dispatcher
        self._loop_side = None  # made before start, it was never subscribed
        lifetime.started(self)
        recovered = self._call(store, m.TakeRecovered())
        if recovered:
            dispatcher.tell(m.Requeue(recovered))
        self._ticker = _TakeOverTicker(store, dispatcher)
        return self

    async def start_async(self) -> Self:
        """`start` without blocking the event loop (opening the store reads its journal)."""
        return await asyncio.to_thread(self.start)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Drain and stop; after an exception, stop without draining, within `shutdown_timeout`.

        Without draining, the jobs still queued stay journaled and run at the next start.
        """
        if exc_type is None:
            self.shutdown(self.shutdown_timeout)
            return
        try:
            self.shutdown(self.shutdown_timeout, drain=False)
        except TimeoutError:
            log.warning("engine still stopping after %s s; it stops at exit", self.shutdown_timeout)

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """`__exit__` without blocking the event loop."""
        if exc_type is None:
            await self.shutdown_async(self.shutdown_timeout)
            return
        try:
            await self.shutdown_async(self.shutdown_timeout, drain=False)
        except TimeoutError:
            log.warning("engine still stopping after %s s; it stops at exit", self.shutdown_timeout)

    @property
    def started(self) -> bool:
        """Whether the actors run (from `start` until `shutdown` returns)."""
        return self._store is not None

    @property
    def accepting(self) -> bool:
        """Whether new jobs are taken: started and not shutting down."""
        return self._store is not None and self._drained is None

    @property
    def waiting(self) -> int:
        """How many long-polls (`wait`, `wait_async`) are waiting now."""
        return self._waiters.taken

    @property
    def drained(self) -> bool:
        """Whether a shutdown has begun and every accepted job has finished."""
        return self._drained is not None and self._drained.done()

    def begin_shutdown(self) -> Future[None]:
        """Stop accepting and send the poison; returns a future settled once all jobs finished.

        Idempotent. Queries keep working until `shutdown` stops the ResultStore.
        """
        with self._lock:
            if self._ticker is not None:
                self._ticker.stop()
            if self._drained is None:
                poison = m.Poison()
                # Running, the future cannot be cancelled by a caller that stops waiting on it.
                poison.drained.set_running_or_notify_cancel()
                self._require(self._dispatcher).tell(poison)
                self._drained = poison.drained
            return self._drained

    def shutdown(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """Stop all actors of this engine (and only those), by default after every accepted job.

        With `drain=False`, jobs not yet started are skipped; they stay in the journal and run at
        the next start on the same results directory (the job running now still finishes).

        Raises:
            TimeoutError: the jobs did not finish within `timeout` seconds; nothing is stopped.
        """
        with self._stopping:
            store = self._store
            if store is None:
                return
            if not drain:
                self._abandon.set()
            self.begin_shutdown().result(timeout)
            store.stop(block=True, timeout=timeout)
            self._store = None
            if self._ticker is not None:
                self._ticker.join()
            lifetime.stopped(self)

    async def shutdown_async(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """`shutdown` without blocking the event loop."""
        if self._store is None:
            return
        if not drain:
            self._abandon.set()
        await asyncio.wait_for(asyncio.wrap_future(self.begin_shutdown()), timeout)
        await asyncio.to_thread(self.shutdown, timeout)

    # --- jobs ------------------------------------------------------------------------------------

    def query(
        self, kind: str, arguments: Mapping[str, object] | None = None, /, **params: object
    ) -> Query:
        """Validate a request against this engine's registry and dataset: the Query it asks for.

        The arguments come as a mapping (a JSON body), as keywords, or both; None counts as
        absent. A course statistic ignores arguments it does not take (spec §4).

        Raises:
            InvalidQuery: unknown statistic, question, state or parameter, or a wrong type.
        """
        given = {**(arguments or {}), **params}
        return self.registry.validate(
            kind, {k: v for k, v in given.items() if v is not None}, self.dataset
        )

    def _submit(
        self, kind: str | Query, question: object, state: object, params: Mapping[str, object]
    ) -> str:
        return format_job_id(
            self._call(self._dispatcher, self._submission(kind, question, state, params))
        )

    async def _submit_async(
        self, kind: str | Query, question: object, state: object, params: Mapping[str, object]
    ) -> str:
        message = self._submission(kind, question, state, params)
        return format_job_id(await self._call_async(self._dispatcher, message))

    def submit_many(self, queries: Iterable[Query]) -> list[JobId[object]]:
        """Accept many jobs at once (queries made by `query`); their ids, in the same order.

        Every query is checked before any is sent (an `InvalidQuery` accepts nothing). The
        submissions are pipelined, at most `max_requests` in flight: when none is free, this
        waits for its own earlier ones, so a long list is never refused for want of a place.

        Raises:
            InvalidQuery, Overloaded, ShuttingDown, StorageError: nothing was accepted.
            PartlyAccepted: some jobs were accepted (`accepted`), then one was refused.
        """
        messages = [self._submission(query, None, None, {}) for query in queries]
        in_flight: collections.deque[m.SubmitJob] = collections.deque()
        numbers: list[int | LeStatsError] = []

        def settle_oldest() -> None:
            message = in_flight.popleft()
            try:
                numbers.append(message.reply.result())
            except LeStatsError as error:
                numbers.append(error)
            finally:
                self._requests.give_back()

        try:
            for message in messages:
                while not self._requests.try_take():
                    if not in_flight:
                        self._requests.take(self.slot_wait)
                        break
                    settle_oldest()
                try:
                    self._tell(self._dispatcher, message)
                except BaseException:
                    self._requests.give_back()
                    raise
                in_flight.append(message)
        except LeStatsError as refusal:
            while in_flight:
                settle_oldest()
            numbers.append(refusal)
        finally:
            while in_flight:
                settle_oldest()
        return _ids_or_refusal(numbers)

    async def submit_many_async(self, queries: Iterable[Query]) -> list[JobId[object]]:
        """`submit_many` without blocking the event loop."""
        messages = [self._submission(query, None, None, {}) for query in queries]
        side = self._side()

        async def submit(message: m.SubmitJob) -> int:
            if not self._requests.try_take():
                await self._requests.take_async(None)  # freed by the submissions before it
            try:
                self._tell(self._dispatcher, message)
                return await side.inbox.awaitable(message.reply)
            finally:
                self._requests.give_back()

        answers = await asyncio.gather(*map(submit, messages), return_exceptions=True)
        numbers: list[int | LeStatsError] = []
        for answer in answers:
            if isinstance(answer, int | LeStatsError):
                numbers.append(answer)
            else:
                raise answer
        return _ids_or_refusal(numbers)

    def _submission(
        self, kind: str | Query, question: object, state: object, params: Mapping[str, object]
    ) -> m.SubmitJob:
        if not self.accepting:
            raise ShuttingDown
        if not isinstance(kind, Query):
            return m.SubmitJob(self.query(kind, params, question=question, state=state))
        if kind.kind not in self.registry:
            raise InvalidQuery(f"unknown endpoint {kind.kind!r}", self.registry.names)
        return m.SubmitJob(kind)

    def outcome(self, job_id: str | int) -> JobOutcome:
        """The job's status now, with its JSON result or error reason.

        Raises:
            UnknownJob: never issued.
        """
        return self._call(self._store, m.GetOutcome(parse_job_id(job_id)))

    async def outcome_async(self, job_id: str | int) -> JobOutcome:
        """`outcome` without blocking the event loop; a job finished lately needs no actor."""
        number = parse_job_id(job_id)
        finished = self._side().finished.get(number)
        if finished is not None:
            return finished
        return await self._call_async(self._store, m.GetOutcome(number))

    def wait(self, job_id: str | int, timeout: float | None = None) -> JobOutcome:
        """The outcome once the job is no longer running, or RUNNING after `timeout` seconds."""
        message = m.WatchJob(parse_job_id(job_id))
        with self._waiters:
            self._tell(self._store, message)
            try:
                return message.reply.result(timeout)
            except TimeoutError:
                self._unwatch(message)
                return RUNNING

    async def wait_async(self, job_id: str | int, timeout: float | None = None) -> JobOutcome:
        """`wait` without blocking the event loop (and without a thread per waiter)."""
        number = parse_job_id(job_id)
        side = self._side()
        finished = side.finished.get(number)
        if finished is not None:
            return finished
        message = m.WatchJob(number)
        with self._waiters:
            self._tell(self._store, message)
            try:
                return await asyncio.wait_for(side.inbox.awaitable(message.reply), timeout)
            except TimeoutError:
                self._unwatch(message)
                return RUNNING
            except asyncio.CancelledError:
                self._unwatch(message)
                raise

    def jobs(self, after: int = 0, limit: int | None = None) -> list[tuple[str, JobStatus]]:
        """Issued job ids above `after` (all by default) with their statuses, in id order.

        At most `limit` of them (None: all, asked page by page). Forgotten jobs are not listed.
        """
        listed: list[tuple[str, JobStatus]] = []
        while limit is None or len(listed) < limit:
            size = LIST_PAGE if limit is None else min(LIST_PAGE, limit - len(listed))
            page = self._call(self._store, m.ListJobs(after, size))
            listed.extend((format_job_id(i), s) for i, s in page)
            if len(page) < size:
                break
            after = page[-1][0]
        return listed

    async def jobs_async(
        self, after: int = 0, limit: int | None = None
    ) -> list[tuple[str, JobStatus]]:
        """`jobs` without blocking the event loop."""
        return [
            (format_job_id(i), s) async for page in self.job_pages(after, limit) for i, s in page
        ]

    async def _jobs_page_async(self, after: int, size: int) -> tuple[tuple[int, JobStatus], ...]:
        page: tuple[tuple[int, JobStatus], ...] = await self._call_async(
            self._store, m.ListJobs(after, size)
        )
        return page

    def cancel(self, job_id: str | int) -> bool:
        """Cancel a queued job: it ends `error` with reason `cancelled`.

        False (and nothing changes) if it is running or finished already.

        Raises:
            UnknownJob: not a job id.
        """
        cancelled: bool = self._call(self._store, m.CancelJob(parse_job_id(job_id)))
        return cancelled

    async def cancel_async(self, job_id: str | int) -> bool:
        """`cancel` without blocking the event loop."""
        cancelled: bool = await self._call_async(self._store, m.CancelJob(parse_job_id(job_id)))
        return cancelled

    def forget(self, job_id: str | int) -> bool:
        """Forget a finished job: its result is dropped and it answers `error`, reason `expired`.

        False (and nothing changes) if it is unfinished, unknown or forgotten already.
        """
        forgotten: bool = self._call(self._store, m.ForgetJob(parse_job_id(job_id)))
        return forgotten

    async def forget_async(self, job_id: str | int) -> bool:
        """`forget` without blocking the event loop."""
        number = parse_job_id(job_id)
        forgotten: bool = await self._call_async(self._store, m.ForgetJob(number))
        if forgotten:  # before the store's push of it reaches the loop, this caller looks again
            self._side().finished.forgotten(number)
        return forgotten

    # --- handles and streams of finished jobs ---------------------------------------------------

    def as_completed(
        self, job_ids: Iterable[str | int], timeout: float | None = None
    ) -> Iterator[tuple[JobId[object], JobOutcome]]:
        """`(job_id, outcome)` of each of `job_ids`, once each, as they finish.

        Those finished already come first (in id order), then each as the store reports it.

        Raises:
            TimeoutError: some were still running `timeout` seconds after the call.
            UnknownJob: one of them was never issued.
        """
        return handles.as_completed(self, self._require(self._store), job_ids, timeout)

    def as_completed_async(
        self, job_ids: Iterable[str | int], timeout: float | None = None
    ) -> AsyncIterator[tuple[JobId[object], JobOutcome]]:
        """`as_completed` as an async iterator (`async for job_id, outcome in ...`)."""
        return handles.as_completed_async(self, self._require(self._store), job_ids, timeout)

    def finished(self) -> AsyncIterator[tuple[JobId[object], JobOutcome]]:
        """Every job that finishes from now on, as an async iterator, until you stop iterating.

        Raises:
            Overloaded: the consumer fell too far behind (`handles.FINISHED_BACKLOG` jobs).
        """
        return handles.finished_stream(self._require(self._store))

    def on_finished(
        self, callback: Callable[[JobId[object], JobOutcome], None]
    ) -> handles.Subscription:
        """Call `callback(job_id, outcome)` for each job that finishes, until `.close()`.

        It runs in the ResultStore's thread: it must be quick and must not block.
        """
        return handles.Subscription(self._require(self._store), callback)

    def num_jobs(self) -> int:
        """How many accepted jobs are unfinished (queued or running)."""
        return self._call(self._store, m.CountPending())

    async def num_jobs_async(self) -> int:
        """`num_jobs` without blocking the event loop."""
        return await self._call_async(self._store, m.CountPending())

    # --- plumbing --------------------------------------------------------------------------------

    def _call(self, ref: pykka.ActorRef[Any] | None, message: m.Request[T]) -> T:
        self._requests.take(self.slot_wait)
        try:
            self._tell(ref, message)
            return message.reply.result()
        finally:
            self._requests.give_back()

    async def _call_async(self, ref: pykka.ActorRef[Any] | None, message: m.Request[T]) -> T:
        side = self._side()
        if not self._requests.try_take():
            await self._requests.take_async(self.slot_wait)
        try:
            self._tell(ref, message)
            return await side.inbox.awaitable(message.reply)
        finally:
            self._requests.give_back()

    def _side(self) -> _LoopSide:
        """The running loop's side of this engine, made (and subscribed) on its first use.

        One loop at a time gets finished jobs pushed: a call from another loop moves the
        subscription there (the old loop's copy then simply stops growing).
        """
        loop = asyncio.get_running_loop()
        side = self._loop_side
        if side is not None and side.inbox.loop is loop:
            return side
        previous, side = side, _LoopSide(loop, self._cache_bytes)
        self._loop_side = side
        store = self._store
        if store is not None and self._cache_bytes > 0:
            with contextlib.suppress(pykka.ActorDeadError):
                if previous is not None:
                    store.tell(m.Unsubscribe(previous.finished.push))
                store.tell(m.Subscribe(side.finished.push))
        return side

    def _tell(self, ref: pykka.ActorRef[Any] | None, message: m.Request[Any]) -> None:
        # Marked running, the reply cannot be cancelled by a caller that gives up, so the actor
        # can always settle it.
        message.reply.set_running_or_notify_cancel()
        try:
            self._require(ref).tell(message)
        except pykka.ActorDeadError as exc:
            raise ShuttingDown from exc

    def _unwatch(self, message: m.WatchJob) -> None:
        """Tell the store a waiter gave up, so that its watcher list does not grow."""
        if self._store is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self._store.tell(m.Unwatch(message.job_id, message.reply))

    @staticmethod
    def _require(ref: pykka.ActorRef[Any] | None) -> pykka.ActorRef[Any]:
        if ref is None:
            raise ShuttingDown
        return ref


class _LoopSide:
    """What one event loop holds of an engine: its inbox for replies, its finished jobs."""

    __slots__ = ("finished", "inbox")

    def __init__(self, loop: asyncio.AbstractEventLoop, cache_bytes: int) -> None:
        self.inbox = LoopInbox(loop)
        # Polls come soon after a job ends: a quarter of the store's cache covers that window.
        self.finished = FinishedOutcomes(self.inbox, cache_bytes // 4)


TAKE_OVER_INTERVAL = 1.0
"""Seconds between two looks, in a shared store, for the jobs of processes that stopped."""


class _TakeOverTicker:
    """A daemon thread asking the ResultStore, every `TAKE_OVER_INTERVAL`, to take over jobs.

    With a shared store (Redis), the jobs of a process that died run here once its heartbeat
    has expired; with a file or memory store the answer is always empty. Stopped when the
    engine begins its shutdown: a drained engine takes nothing more. It takes none of the
    engine's request slots, which are the clients'.
    """

    def __init__(self, store: pykka.ActorRef[Any], dispatcher: pykka.ActorRef[Any]) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="TakeOverTicker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(TAKE_OVER_INTERVAL):
            message = m.TakeOver()
            message.reply.set_running_or_notify_cancel()
            try:
                self._store.tell(message)
                taken = message.reply.result(timeout=TAKE_OVER_INTERVAL * 10)
            except TimeoutError:
                continue  # the store is busy (its server slow): look again at the next tick
            except (pykka.ActorDeadError, ShuttingDown):
                return
            if taken and not self._stop.is_set():
                with contextlib.suppress(pykka.ActorDeadError):
                    self._dispatcher.tell(m.Requeue(taken))


def _ids_or_refusal(numbers: list[int | LeStatsError]) -> list[JobId[object]]:
    """The ids of a `submit_many`, or its first refusal (`PartlyAccepted` if some got in)."""
    accepted = [JobId[object](format_job_id(n)) for n in numbers if isinstance(n, int)]
    refusals = [n for n in numbers if isinstance(n, LeStatsError)]
    if not refusals:
        return accepted
    if accepted:
        raise PartlyAccepted(tuple(accepted), refusals[0])
    raise refusals[0]
