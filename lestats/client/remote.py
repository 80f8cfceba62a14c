"""`Client`: a server's job API behind the embedded `Engine`'s methods.

A program that works with an `Engine` works with a `Client` when its one line that makes the
engine makes a client instead: same methods (each blocking one with its `_async` twin), same
arguments, same return types, same exceptions. What differs is inherent to a remote server:
`with Client(...)` closes the client's connections at the end, it does not stop the server
(`shutdown` asks the server to drain, as `GET /api/graceful_shutdown` does); a server that
cannot be reached raises `ConnectionFailed`; and a `503` with `Retry-After` is retried a few
times (with jitter) before `Overloaded` is raised.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Self, TypeVar
from urllib.parse import urlsplit

from lestats.actors.facade import JobsFacade
from lestats.actors.jobs import JobStatus, format_job_id, parse_job_id
from lestats.client import protocol
from lestats.client.async_transport import SessionPerLoop
from lestats.client.protocol import RetryPolicy
from lestats.client.sync_transport import ConnectionPool
from lestats.errors import LeStatsError, PartlyAccepted
from lestats.results import JobId

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Generator,
        Iterable,
        Iterator,
        Mapping,
    )
    from types import TracebackType

    from lestats.actors.jobs import JobOutcome
    from lestats.client.protocol import Answer, Request
    from lestats.data.query import Query

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:5000"
DEFAULT_TIMEOUT = 30.0
"""Seconds any answer may take (a long-poll gets its `wait` on top)."""


class Client(JobsFacade):
    """The HTTP API of a Le Stats Sportif server, with the methods of `Engine`.

    Thread-safe: threads share kept-alive connections. The `_async` methods may be awaited from
    any event loop; each loop gets its own kept-alive aiohttp session, closed with the loop (or
    by `close_async`). Results are awaited by long-polls (`?wait=`), never by busy polling.

    Args:
        url: the server's base URL (`http://host:port`, optionally with a path prefix).
        timeout: seconds any one answer may take before `ConnectionFailed`.
        retries: how many times a request refused with `503` + `Retry-After` is sent again.
        max_retry_delay: the longest wait before such a retry, whatever `Retry-After` says.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        max_retry_delay: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// URL of a server: {url!r}")
        self.url = url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self._retry = RetryPolicy(retries, max_retry_delay)
        self._pool = ConnectionPool(parts.hostname, parts.port or 80, timeout)
        self._sessions = SessionPerLoop(f"http://{parts.netloc}", timeout)
        self._drained: Future[None] | None = None
        self._lock = threading.Lock()

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Check that the server answers (`GET /api/health`); the client is usable at once."""
        self._run(protocol.health())
        return self

    async def start_async(self) -> Self:
        """`start` without blocking the event loop."""
        await self._run_async(protocol.health())
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close_async()

    def close(self) -> None:
        """Close the kept-alive connections of the blocking methods (the server runs on)."""
        self._pool.close()

    async def close_async(self) -> None:
        """Close this event loop's session and the blocking methods' connections."""
        self._pool.close()
        await self._sessions.close()

    def begin_shutdown(self) -> Future[None]:
        """Make the server stop accepting jobs; a future settled once all of them finished.

        When this returns the server takes no new job. Idempotent. The future is settled by a
        background thread that long-polls the unfinished jobs.
        """
        with self._lock:
            if self._drained is None:
                drained: Future[None] = Future()
                drained.set_running_or_notify_cancel()
                if self._run(protocol.graceful_shutdown()):
                    drained.set_result(None)
                else:
                    threading.Thread(
                        target=self._settle,
                        args=(drained,),
                        name="lestats-client-drain",
                        daemon=True,
                    ).start()
                self._drained = drained
            return self._drained

    def _settle(self, drained: Future[None]) -> None:
        try:
            self._run(protocol.drained())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            drained.set_exception(exc)
        else:
            drained.set_result(None)

    def shutdown(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """Make the server drain: stop accepting, and wait until every accepted job finished.

        A server always runs the jobs it accepted; `drain=False` only skips the waiting here.
        Then the client's connections are closed.

        Raises:
            TimeoutError: the jobs did not finish within `timeout` seconds.
        """
        drained = self.begin_shutdown()
        if drain:
            drained.result(timeout)
        self.close()

    async def shutdown_async(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """`shutdown` without blocking the event loop."""
        if drain:
            await asyncio.wait_for(self._run_async(protocol.drained()), timeout)
        else:
            await self._run_async(protocol.graceful_shutdown())
        await self.close_async()

    # --- jobs ------------------------------------------------------------------------------------

    def _submit(
        self, kind: str | Query, question: object, state: object, params: Mapping[str, object]
    ) -> str:
        return self._run(protocol.submit(kind, question, state, **params))

    async def _submit_async(
        self, kind: str | Query, question: object, state: object, params: Mapping[str, object]
    ) -> str:
        return await self._run_async(protocol.submit(kind, question, state, **params))

    def outcome(self, job_id: str | int) -> JobOutcome:
        """The job's status now, with its JSON result or error reason.

        Raises:
            UnknownJob: never issued.
        """
        return self._run(protocol.outcome(job_id))

    async def outcome_async(self, job_id: str | int) -> JobOutcome:
        """`outcome` without blocking the event loop."""
        return await self._run_async(protocol.outcome(job_id))

    def wait(self, job_id: str | int, timeout: float | None = None) -> JobOutcome:
        """The outcome once the job is no longer running, or RUNNING after `timeout` seconds."""
        return self._run(protocol.wait(job_id, timeout))

    async def wait_async(self, job_id: str | int, timeout: float | None = None) -> JobOutcome:
        """`wait` without blocking the event loop."""
        return await self._run_async(protocol.wait(job_id, timeout))

    def jobs(self, after: int = 0, limit: int | None = None) -> list[tuple[str, JobStatus]]:
        """Issued job ids above `after` (all by default) with their statuses, in id order.

        At most `limit` of them (None: all). Forgotten jobs are not listed.
        """
        return self._run(protocol.jobs(after, limit))

    async def jobs_async(
        self, after: int = 0, limit: int | None = None
    ) -> list[tuple[str, JobStatus]]:
        """`jobs` without blocking the event loop."""
        return await self._run_async(protocol.jobs(after, limit))

    async def _jobs_page_async(self, after: int, size: int) -> tuple[tuple[int, JobStatus], ...]:
        return tuple(
            (parse_job_id(job_id), status)
            for job_id, status in await self._run_async(protocol.jobs(after, size))
        )

    def cancel(self, job_id: str | int) -> bool:
        """Cancel a queued job: it ends `error` with reason `cancelled`.

        False (and nothing changes) if it is running or finished already.

        Raises:
            UnknownJob: not a job id.
        """
        return self._run(protocol.job_action(job_id, "cancel", "cancelled"))

    async def cancel_async(self, job_id: str | int) -> bool:
        """`cancel` without blocking the event loop."""
        return await self._run_async(protocol.job_action(job_id, "cancel", "cancelled"))

    def forget(self, job_id: str | int) -> bool:
        """Forget a finished job: its result is dropped and it answers `error`, reason `expired`.

        False (and nothing changes) if it is unfinished, unknown or forgotten already.
        """
        return self._run(protocol.job_action(job_id, "forget", "forgotten"))

    async def forget_async(self, job_id: str | int) -> bool:
        """`forget` without blocking the event loop."""
        return await self._run_async(protocol.job_action(job_id, "forget", "forgotten"))

    def submit_many(self, queries: Iterable[Query]) -> list[JobId[object]]:
        """Submit many jobs (as `Query` values); their ids, in the same order.

        Sent one after the other on one connection; the server checks each as it comes.

        Raises:
            InvalidQuery, Overloaded, ShuttingDown, StorageError: nothing was accepted.
            PartlyAccepted: some jobs were accepted (`accepted`), then one was refused.
        """
        accepted: list[JobId[object]] = []
        for query in queries:
            try:
                accepted.append(JobId(self._run(protocol.submit(query))))
            except LeStatsError as refusal:
                if accepted:
                    raise PartlyAccepted(tuple(accepted), refusal) from refusal
                raise
        return accepted

    async def submit_many_async(self, queries: Iterable[Query]) -> list[JobId[object]]:
        """`submit_many` without blocking the event loop."""
        accepted: list[JobId[object]] = []
        for query in queries:
            try:
                accepted.append(JobId(await self._run_async(protocol.submit(query))))
            except LeStatsError as refusal:
                if accepted:
                    raise PartlyAccepted(tuple(accepted), refusal) from refusal
                raise
        return accepted

    def as_completed(
        self, job_ids: Iterable[str | int], timeout: float | None = None
    ) -> Iterator[tuple[JobId[object], JobOutcome]]:
        """`(job_id, outcome)` of each of `job_ids`, once each, as they finish.

        Those finished already come first (in id order), then each as its long-poll answers
        (one per job, concurrently, on a private event loop).

        Raises:
            TimeoutError: some were still running `timeout` seconds after the call.
            UnknownJob: one of them was never issued.
        """
        loop = asyncio.new_event_loop()
        stream = self._completions(job_ids, timeout)
        try:
            while True:
                try:
                    yield loop.run_until_complete(anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(stream.aclose())
            loop.run_until_complete(self._sessions.close())
            loop.close()

    def as_completed_async(
        self, job_ids: Iterable[str | int], timeout: float | None = None
    ) -> AsyncIterator[tuple[JobId[object], JobOutcome]]:
        """`as_completed` as an async iterator (`async for job_id, outcome in ...`)."""
        return self._completions(job_ids, timeout)

    async def _completions(
        self, job_ids: Iterable[str | int], timeout: float | None
    ) -> AsyncGenerator[tuple[JobId[object], JobOutcome], None]:
        numbers = sorted({parse_job_id(job_id) for job_id in job_ids})
        deadline = None if timeout is None else time.monotonic() + timeout
        now = await asyncio.gather(*(self.outcome_async(number) for number in numbers))
        running = []
        for number, outcome in zip(numbers, now, strict=True):
            if outcome.status is JobStatus.RUNNING:
                running.append(number)
            else:
                yield JobId(format_job_id(number)), outcome
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        waits = {asyncio.ensure_future(self.wait_async(n, left)): n for n in running}
        pending = set(waits)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=waits.__getitem__):
                    outcome = task.result()
                    if outcome.status is JobStatus.RUNNING:
                        raise TimeoutError(f"jobs still running after {timeout} s")
                    yield JobId(format_job_id(waits[task])), outcome
        finally:
            for task in pending:
                task.cancel()

    def num_jobs(self) -> int:
        """How many accepted jobs are unfinished (queued or running)."""
        return self._run(protocol.num_jobs())

    async def num_jobs_async(self) -> int:
        """`num_jobs` without blocking the event loop."""
        return await self._run_async(protocol.num_jobs())

    # --- plumbing: running a plan ----------------------------------------------------------------

    def _run(self, plan: Generator[Request, Answer, T]) -> T:
        try:
            request = next(plan)
            while True:
                request = plan.send(self._send(request))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]  # the plan's return value is a T

    def _send(self, request: Request) -> Answer:
        attempt = 0
        while True:
            answer = self._pool.request(self._prefixed(request))
            delay = self._retry.delay(answer, attempt)
            if delay is None:
                return answer
            time.sleep(delay)
            attempt += 1

    async def _run_async(self, plan: Generator[Request, Answer, T]) -> T:
        try:
            request = next(plan)
            while True:
                request = plan.send(await self._send_async(request))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _send_async(self, request: Request) -> Answer:
        attempt = 0
        while True:
            answer = await self._sessions.request(self._prefixed(request))
            delay = self._retry.delay(answer, attempt)
            if delay is None:
                return answer
            await asyncio.sleep(delay)
            attempt += 1

    def _prefixed(self, request: Request) -> Request:
        if not self._prefix:
            return request
        return protocol.Request(
            request.method, self._prefix + request.path, request.body, request.wait
        )
