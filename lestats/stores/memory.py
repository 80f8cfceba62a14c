"""`MemoryStore`: job state and results in this process's memory, for embedders and tests.

Nothing survives the process, so `open` recovers nothing and `commit_barrier` has nothing to
make durable. Memory grows with the results kept: give the engine a `Retention` to bound it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lestats.actors.jobs import JobOutcome, JobStatus
from lestats.stores.base import Recovered
from lestats.stores.table import DONE, FAILED, GONE, UNFINISHED, JobTable, TableViews

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lestats.data.query import Query
    from lestats.stores.base import Retention


class MemoryStore(TableViews):
    """Ids, statuses and results in dicts and a `JobTable`. Used by one thread (the owner's)."""

    def __init__(self) -> None:
        self._table = JobTable()
        self._results: dict[int, bytes] = {}

    def open(self, notify: Callable[[Sequence[int]], None] | None = None) -> Recovered:
        """Nothing to read: a fresh job space."""
        del notify
        return Recovered(())

    def accept(self, query: Query) -> int:
        """The next id, for an unfinished job."""
        return self._table.issue(query)

    def commit_barrier(self) -> Callable[[], None] | None:
        """None: nothing here outlives the process anyway."""
        return None

    def complete(self, job_id: int, result: bytes) -> bool:
        """Keep the result; the job is done."""
        if self._table.code(job_id) != UNFINISHED:
            return False
        self._results[job_id] = result
        self._table.finish(job_id)
        return True

    def fail(self, job_id: int, reason: str) -> bool:
        """The job is failed for `reason`."""
        if self._table.code(job_id) != UNFINISHED:
            return False
        self._table.finish(job_id, reason)
        return True

    def outcome(self, job_id: int) -> JobOutcome:
        """The job's outcome, with its result when done."""
        outcome = self._table.outcome(job_id)
        if outcome is None:
            return JobOutcome(JobStatus.DONE, self._results[job_id])
        return outcome

    def forget(self, job_id: int) -> bool:
        """Drop a finished job's result; it then answers `expired`."""
        if self._table.code(job_id) not in {DONE, FAILED, GONE}:
            return False
        self._forget(job_id)
        return True

    def expire(self, retention: Retention) -> list[int]:
        """Forget what `retention` no longer keeps; the ids forgotten."""
        expired = self._table.expired_by(retention, lambda _job_id: None)
        for job_id in expired:
            self._forget(job_id)
        return expired

    def _forget(self, job_id: int) -> None:
        self._results.pop(job_id, None)
        self._table.expire(job_id)

    def close(self) -> None:
        """Nothing to release."""
