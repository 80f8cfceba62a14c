"""The job table: every issued id's status in one byte, for the stores that live in one process.

`FileStore` and `MemoryStore` keep their state here; it is the one source of truth that both
`outcome` and `statuses` answer from (a job listed `done` is served `done`, and once its result
is found gone, both say `error`). A million issued ids cost a million bytes of statuses and
four million of finish times; failed jobs add their reasons, unfinished ones their queries.

Retention is applied by two cursors that walk the ids in order (the last `keep_last` ids, and
those finished less than `max_age` ago: ids finish roughly in order), so expiring costs what
it expires, never a scan per finished job. Unfinished jobs the cursors pass wait in a small
set and are expired when they finish. Once most of the table is expired, its expired head is
dropped: the ids below `floor` all answer `expired`.

Not thread-safe: the store that holds it is used by one thread.
"""

from __future__ import annotations

import re
import time
from array import array
from itertools import compress
from typing import TYPE_CHECKING

from lestats.actors.jobs import EXPIRED as EXPIRED_OUTCOME
from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus
from lestats.errors import UnknownJob

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from lestats.data.query import Query
    from lestats.stores.base import Retention

UNISSUED, UNFINISHED, DONE, FAILED, GONE, EXPIRED = range(6)
"""A job's code in the table: never issued, running, done, failed (reason kept), result gone,
forgotten."""

_STATUS = {
    UNFINISHED: JobStatus.RUNNING,
    DONE: JobStatus.DONE,
    FAILED: JobStatus.ERROR,
    GONE: JobStatus.ERROR,
}
_STATUS_OF_CODE: list[JobStatus] = [_STATUS.get(code) for code in range(256)]  # type: ignore[misc]
"""The status of each code (None for the unlisted ones, which `_LISTED` filters out)."""
_LISTED = bytes(code in _STATUS for code in range(256))
"""1 for the codes that are listed, 0 for the others (a `bytes.translate` table)."""
_EXPIRED_RUN = re.compile(re.escape(bytes([EXPIRED])) + b"+")
_TRIM_AT = 1 << 16
"""Drop the expired head once it is this many ids long (and half the table)."""


class JobTable:
    """Statuses of the ids from `floor` to `next_id`; reasons; queries of unfinished jobs."""

    def __init__(self, next_id: int = 1, floor: int = 1, fill: int = UNISSUED) -> None:
        self.floor = floor
        self.codes = bytearray([fill]) * (next_id - floor)
        self.finished_at = array("I", [0]) * (next_id - floor)
        """Seconds since `epoch` (+1) at which each job finished; 0 if not known."""
        self.epoch = time.time()
        self.unfinished: dict[int, Query] = {}
        self.reasons: dict[int, str] = {}
        self._count_cursor = floor
        self._age_cursor = floor
        self._passed: set[int] = set()
        """Unfinished ids a retention cursor went past: expired as soon as they finish."""
        self._expired_since_trim = 0

    @property
    def next_id(self) -> int:
        """The next id to issue."""
        return self.floor + len(self.codes)

    def code(self, job_id: int) -> int:
        """The code of `job_id` (EXPIRED below the floor, UNISSUED outside the ids issued)."""
        index = job_id - self.floor
        if index < 0:
            return EXPIRED if job_id >= 1 else UNISSUED
        if index >= len(self.codes):
            return UNISSUED
        return self.codes[index]

    def set(self, job_id: int, code: int) -> None:
        """Give `job_id` (issued, at or above the floor) the `code`."""
        self.codes[job_id - self.floor] = code

    def issue(self, query: Query) -> int:
        """Issue the next id to an unfinished job."""
        job_id = self.next_id
        self.codes.append(UNFINISHED)
        self.finished_at.append(0)
        self.unfinished[job_id] = query
        return job_id

    def finish(self, job_id: int, reason: str | None = None) -> None:
        """Mark an unfinished job done (no reason) or failed (for `reason`), finished now."""
        index = job_id - self.floor
        del self.unfinished[job_id]
        if reason is None:
            self.codes[index] = DONE
        else:
            self.codes[index] = FAILED
            self.reasons[job_id] = reason
        self.finished_at[index] = int(time.time() - self.epoch) + 1

    def outcome(self, job_id: int) -> JobOutcome | None:
        """The outcome, or None for a done job (whose result the store reads itself).

        Raises:
            UnknownJob: never issued.
        """
        code = self.code(job_id)
        if code == UNFINISHED:
            return RUNNING
        if code == DONE:
            return None
        if code == FAILED:
            return JobOutcome(JobStatus.ERROR, reason=self.reasons[job_id])
        if code == GONE:
            return JobOutcome(JobStatus.ERROR, reason=f"the result file of job_id_{job_id} is gone")
        if code == EXPIRED:
            return EXPIRED_OUTCOME
        raise UnknownJob(job_id)

    def mark_gone(self, job_id: int, reason: str | None = None) -> None:
        """A done job whose result turned out missing (or, with `reason`, unusable)."""
        if reason is None:
            self.set(job_id, GONE)
        else:
            self.set(job_id, FAILED)
            self.reasons[job_id] = reason

    def statuses(self, after: int, limit: int | None) -> list[tuple[int, JobStatus]]:
        """Listed ids above `after` (not expired, not unissued), at most `limit`, with statuses."""
        start = max(after + 1, self.floor) - self.floor
        codes = self.codes
        end = len(codes)
        if start >= end or limit == 0:
            return []
        listed: list[tuple[int, JobStatus]] = []
        floor = self.floor
        wanted = end if limit is None else limit
        # Slices of at most `wanted` ids cost what they return, unless most ids are expired;
        # each slice is turned into pairs in C (zip, map, compress), not one id at a time.
        while start < end and len(listed) < wanted:
            stop = min(end, start + max(wanted - len(listed), 1024))
            chunk = codes[start:stop]
            statuses = map(_STATUS_OF_CODE.__getitem__, chunk)
            pairs = zip(range(floor + start, floor + stop), statuses, strict=True)
            listed.extend(compress(pairs, chunk.translate(_LISTED)))
            start = stop
        del listed[wanted:]
        return listed

    def unlisted(self) -> Iterable[tuple[int, int]]:
        """Runs `[first, end)` of expired ids at or above the floor, in order."""
        for run in _EXPIRED_RUN.finditer(self.codes):
            yield self.floor + run.start(), self.floor + run.end()

    # --- retention -------------------------------------------------------------------------------

    def expired_by(
        self, retention: Retention, finished_at: Callable[[int], float | None]
    ) -> list[int]:
        """Finished ids that `retention` no longer keeps (not yet marked expired).

        `finished_at(job_id)` gives the finish time (seconds since the epoch) of a job finished
        before this table was built, or None when it cannot tell.
        """
        expired: list[int] = []
        next_id = self.next_id
        if retention.keep_last is not None:
            limit = next_id - retention.keep_last
            cursor = self._count_cursor = max(self._count_cursor, self.floor)
            while cursor < limit:
                self._take(cursor, expired)
                cursor += 1
            self._count_cursor = cursor
        if retention.max_age is not None:
            cutoff = time.time() - retention.max_age
            cursor = self._age_cursor = max(self._age_cursor, self.floor)
            while cursor < next_id:
                code = self.codes[cursor - self.floor]
                if code in {DONE, FAILED, GONE} and not self._older(cursor, cutoff, finished_at):
                    break
                self._take(cursor, expired)
                cursor += 1
            self._age_cursor = cursor
        for job_id in tuple(self._passed):
            if self.code(job_id) != UNFINISHED:
                self._passed.discard(job_id)
                if self._beyond(job_id, retention, finished_at):
                    self._take(job_id, expired)
        return expired

    def _take(self, job_id: int, expired: list[int]) -> None:
        code = self.code(job_id)
        if code == UNFINISHED:
            self._passed.add(job_id)
        elif code in {DONE, FAILED, GONE}:
            expired.append(job_id)

    def _older(
        self, job_id: int, cutoff: float, finished_at: Callable[[int], float | None]
    ) -> bool:
        stamp = self.finished_at[job_id - self.floor]
        when = self.epoch + stamp - 1 if stamp else finished_at(job_id)
        return when is None or when < cutoff

    def _beyond(
        self, job_id: int, retention: Retention, finished_at: Callable[[int], float | None]
    ) -> bool:
        if retention.keep_last is not None and job_id < self.next_id - retention.keep_last:
            return True
        return retention.max_age is not None and self._older(
            job_id, time.time() - retention.max_age, finished_at
        )

    def retry_expiry(self, job_ids: Iterable[int]) -> None:
        """Finished ids that could not be forgotten now: try again at the next `expired_by`."""
        self._passed.update(job_ids)

    def expire(self, job_id: int) -> None:
        """Mark a finished job forgotten; drop the table's expired head once it is long."""
        self.set(job_id, EXPIRED)
        self.reasons.pop(job_id, None)
        self._expired_since_trim += 1
        if self._expired_since_trim > _TRIM_AT and self._expired_since_trim > len(self.codes) // 2:
            self._expired_since_trim = 0
            self._trim()

    def _trim(self) -> None:
        head = len(self.codes) - len(self.codes.lstrip(bytes([EXPIRED])))
        if head:
            del self.codes[:head]
            del self.finished_at[:head]
            self.floor += head


class TableViews:
    """The reads a single-process store answers straight from its `JobTable` (files, memory).

    One process owns such a store, so nobody else's jobs are ever there to take over.
    """

    _table: JobTable

    def statuses(self, after: int = 0, limit: int | None = None) -> list[tuple[int, JobStatus]]:
        """Issued, not forgotten ids above `after`, in order, with their statuses."""
        return self._table.statuses(after, limit)

    def last_id(self) -> int:
        """The highest id issued so far."""
        return self._table.next_id - 1

    def unfinished_count(self) -> int:
        """How many accepted jobs are unfinished."""
        return len(self._table.unfinished)

    def take_over(self) -> tuple[tuple[int, Query], ...]:
        """Nothing: no other process shares this store."""
        return ()
