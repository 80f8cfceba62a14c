"""The typed job methods the embedded `Engine` and the HTTP `Client` share, written once.

A program moves from one to the other by changing the line that makes it, so both must take the
same arguments and give the same types. Each subclass says only how to submit a job, read its
outcome, cancel it and read a page of the job list (`_submit`, `outcome`, `wait`, `cancel`,
`_jobs_page_async` and their twins); submitting with the typed overloads, the status, the
decoded result, the job handles and the paged listing are the same code for both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from lestats import jsonio
from lestats.actors.handles import Job
from lestats.actors.jobs import JobOutcome, JobStatus, format_job_id, parse_job_id
from lestats.errors import JobFailed
from lestats.results import JobId

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from lestats.data.query import ParamValue, Query
    from lestats.data.statistics import OneStateStatistic, RankingStatistic
    from lestats.results import CategoryMeans, GlobalMean, StateCategoryMeans, StateMeans

R = TypeVar("R")

LIST_PAGE = 2_000
"""Jobs listed per message to the ResultStore: other messages get through between pages, and
the event loop encodes one page (about a millisecond) between two of its other tasks."""


class JobsFacade(ABC):
    """Submit jobs and read their results; the subclass says where the jobs go."""

    @abstractmethod
    def _submit(
        self, kind: str | Query, question: object, state: object, params: Mapping[str, object]
    ) -> str:
        """Accept one job; its id (`job_id_N`)."""

    @abstractmethod
    async def _submit_async(
        self, kind: str | Query, question: object, state: object, params: Mapping[str, object]
    ) -> str:
        """`_submit` without blocking the event loop."""

    @abstractmethod
    def outcome(self, job_id: str | int) -> JobOutcome:
        """The job's status now, with its JSON result or error reason."""

    @abstractmethod
    async def outcome_async(self, job_id: str | int) -> JobOutcome:
        """`outcome` without blocking the event loop."""

    @abstractmethod
    def wait(self, job_id: str | int, timeout: float | None = None) -> JobOutcome:
        """The outcome once the job is no longer running, or RUNNING after `timeout` seconds."""

    @abstractmethod
    async def wait_async(self, job_id: str | int, timeout: float | None = None) -> JobOutcome:
        """`wait` without blocking the event loop."""

    @abstractmethod
    def cancel(self, job_id: str | int) -> bool:
        """Cancel a queued job: it ends `error` with reason `cancelled`."""

    @abstractmethod
    async def cancel_async(self, job_id: str | int) -> bool:
        """`cancel` without blocking the event loop."""

    @abstractmethod
    async def _jobs_page_async(self, after: int, size: int) -> tuple[tuple[int, JobStatus], ...]:
        """At most `size` issued jobs above `after`, in id order (fewer: the last page)."""

    @overload
    def submit(self, kind: RankingStatistic, question: str) -> JobId[StateMeans]: ...
    @overload
    def submit(self, kind: OneStateStatistic, question: str, state: str) -> JobId[StateMeans]: ...
    @overload
    def submit(self, kind: Literal["global_mean"], question: str) -> JobId[GlobalMean]: ...
    @overload
    def submit(self, kind: Literal["mean_by_category"], question: str) -> JobId[CategoryMeans]: ...
    @overload
    def submit(
        self, kind: Literal["state_mean_by_category"], question: str, state: str
    ) -> JobId[StateCategoryMeans]: ...
    @overload
    def submit(self, kind: Query) -> JobId[object]: ...
    @overload
    def submit(
        self,
        kind: str,
        *,
        question: str | None = None,
        state: str | None = None,
        **params: ParamValue | list[str] | list[int],
    ) -> JobId[object]: ...
    def submit(
        self, kind: str | Query, question: object = None, state: object = None, **params: object
    ) -> JobId[object]:
        """Accept a job and return its id (`job_id_N`) once it is journaled.

        `kind` is a statistic's name with its arguments (a course statistic takes `question`
        and, for the `state_*` ones, `state`, positionally; any other statistic takes keywords),
        or a `Query` made by `query`. The id is a `str`; for type checkers it also tells the
        type of the job's data (`result` returns it).

        Raises:
            InvalidQuery, Overloaded, ShuttingDown, StorageError: nothing was accepted.
        """
        return JobId(self._submit(kind, question, state, params))

    @overload
    async def submit_async(self, kind: RankingStatistic, question: str) -> JobId[StateMeans]: ...
    @overload
    async def submit_async(
        self, kind: OneStateStatistic, question: str, state: str
    ) -> JobId[StateMeans]: ...
    @overload
    async def submit_async(
        self, kind: Literal["global_mean"], question: str
    ) -> JobId[GlobalMean]: ...
    @overload
    async def submit_async(
        self, kind: Literal["mean_by_category"], question: str
    ) -> JobId[CategoryMeans]: ...
    @overload
    async def submit_async(
        self, kind: Literal["state_mean_by_category"], question: str, state: str
    ) -> JobId[StateCategoryMeans]: ...
    @overload
    async def submit_async(self, kind: Query) -> JobId[object]: ...
    @overload
    async def submit_async(
        self,
        kind: str,
        *,
        question: str | None = None,
        state: str | None = None,
        **params: ParamValue | list[str] | list[int],
    ) -> JobId[object]: ...
    async def submit_async(
        self, kind: str | Query, question: object = None, state: object = None, **params: object
    ) -> JobId[object]:
        """`submit` without blocking the event loop."""
        return JobId(await self._submit_async(kind, question, state, params))

    def status(self, job_id: str | int) -> JobStatus:
        """The job's status now."""
        return self.outcome(job_id).status

    async def status_async(self, job_id: str | int) -> JobStatus:
        """`status` without blocking the event loop."""
        return (await self.outcome_async(job_id)).status

    @overload
    def result(self, job_id: JobId[R], timeout: float | None = None) -> R: ...
    @overload
    def result(self, job_id: str | int, timeout: float | None = None) -> object: ...
    def result(self, job_id: str | int, timeout: float | None = None) -> object:
        """Wait for the job and return its data (decoded JSON; typed by a `JobId`).

        Raises:
            JobFailed: the job ended in error.
            TimeoutError: still running after `timeout` seconds.
        """
        return job_data(format_job_id(parse_job_id(job_id)), self.wait(job_id, timeout))

    @overload
    async def result_async(self, job_id: JobId[R], timeout: float | None = None) -> R: ...
    @overload
    async def result_async(self, job_id: str | int, timeout: float | None = None) -> object: ...
    async def result_async(self, job_id: str | int, timeout: float | None = None) -> object:
        """`result` without blocking the event loop."""
        outcome = await self.wait_async(job_id, timeout)
        return job_data(format_job_id(parse_job_id(job_id)), outcome)

    async def job_pages(
        self, after: int = 0, limit: int | None = None
    ) -> AsyncIterator[tuple[tuple[int, JobStatus], ...]]:
        """`jobs_async` a page at a time, with ids as numbers (for streaming a long list)."""
        given = 0
        while limit is None or given < limit:
            size = LIST_PAGE if limit is None else min(LIST_PAGE, limit - given)
            page = await self._jobs_page_async(after, size)
            if page:
                yield page
                given += len(page)
            if len(page) < size:
                return
            after = page[-1][0]

    @overload
    def job(self, job_id: JobId[R]) -> Job[R]: ...
    @overload
    def job(self, job_id: str | int) -> Job[object]: ...
    def job(self, job_id: str | int) -> Job[Any]:
        """A handle on an accepted job: `job.result()`, `await job`, `job.cancel()`, ...

        Raises:
            UnknownJob: not a job id (whether it was issued is checked when the handle is used).
        """
        return Job(self, JobId(format_job_id(parse_job_id(job_id))))


def job_data(job_id: str, outcome: JobOutcome) -> object:
    """A finished job's data; `JobFailed` for an error; `TimeoutError` while it runs."""
    if outcome.status is JobStatus.DONE:
        return jsonio.loads(outcome.result or b"null")
    if outcome.status is JobStatus.ERROR:
        raise JobFailed(job_id, outcome.reason or "unknown error")
    raise TimeoutError(f"{job_id} is still running")
