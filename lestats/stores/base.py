"""The store seam: the one interface that owns job ids, statuses, accepted jobs and results.

The ResultStore actor keeps the messages, the watchers and the group commit; everything that
must outlive the process (or be shared by several processes) lives behind a `JobStore`. The
engine takes one (`Engine(store=...)`): `FileStore` (the default for the server: a journal and
one JSON file per result in a directory), `MemoryStore` (no disk: for embedders and tests that
need no durability) and `RedisStore` (several processes, one job space) implement it.

## What every store guarantees

1. **Ids are allocated atomically and never twice**, consecutive from 1 in one job space, also
   across restarts and (for a shared store) across processes. `accept` that raises used up no id.
2. **A job is recorded before its id is answered.** `accept` records the job; once the barrier
   of `commit_barrier` has run, the record survives what the store promises to survive (file
   store: a power failure; memory store: nothing; Redis: what its `appendfsync` promises).
   The engine answers an id only after that barrier.
3. **A job completes exactly once.** `complete` and `fail` return False (and change nothing)
   for a job that is not unfinished any more — finished already, expired, or taken over and
   finished by another owner. The first completion wins; its result never changes afterwards.
4. **A dead owner's unfinished jobs run again.** `open` returns the unfinished jobs found at
   start; a shared store also hands out, through `take_over`, jobs whose owner stopped
   answering for longer than its configured idle time. A job may therefore *run* twice; it is
   still *completed* once (3).
5. **One writer per file store.** `open` takes an exclusive lock (released by `close`, or by the
   death of the process); a second owner gets `StorageError` naming the holder.
6. **Nothing found at start is trusted blindly.** Ids read back are validated and bounded
   (1 <= id < `MAX_JOB_ID`), records that contradict each other are reported once and ignored,
   results are checked to be JSON before they are served as such.
7. **Every view agrees.** `outcome` and `statuses` answer from the same state: a job listed
   `done` is served `done` (or, once its result is found gone, both say `error`).
8. **Transient trouble is not failure.** A full disk, no free descriptors, Redis away: the
   methods raise `StorageError` with `transient=True`, and the caller retries later; nothing
   recorded is lost or half-written meanwhile.

## Batches

A store whose every call is a round trip to a server (Redis) also implements `BatchingStore`:
the ResultStore then records the jobs that arrived together in one call, `accept_many` for new
jobs and `complete_many` for finished ones. Each batch is one step: wholly recorded, or (when
it raises) not at all. The guarantees above hold for each job of a batch as for a single call.

## Threading

A store is used by one thread, the ResultStore actor's, except the callable that
`commit_barrier` returns, which the JournalCommitter runs in its own thread (and which must
therefore touch nothing the owner thread changes), and the `notify` callback given to `open`,
which the store may call from a thread of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lestats.actors.jobs import JobOutcome, JobStatus
    from lestats.data.query import Query


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished jobs are kept: the last `keep_last` ids, or those younger than `max_age`.

    None means no limit. A forgotten job answers `error` with reason `expired`, never `Invalid
    job_id`: its id stays issued.
    """

    keep_last: int | None = None
    max_age: float | None = None
    """Seconds since the job finished."""


NO_RETENTION_LIMIT = Retention()


@dataclass(frozen=True, slots=True)
class Recovered:
    """What `open` found: unfinished jobs to run again, and how many records it ignored."""

    unfinished: tuple[tuple[int, Query], ...]
    ignored: int = 0


class JobStore(Protocol):
    """Job ids, statuses, the record of accepted jobs, and results. See the module docstring."""

    def open(self, notify: Callable[[Sequence[int]], None] | None = None) -> Recovered:
        """Take ownership and read the state; the unfinished jobs to run again.

        `notify`, if given, is called (from any thread) with ids of jobs that another process
        finished, so that local waiters can be answered; a single-process store never calls it.

        Raises:
            StorageError: the store is owned by another live process, or unusable.
        """
        ...

    def accept(self, query: Query) -> int:
        """Allocate the next id and record the job as unfinished; the id.

        The record may not be durable before the next `commit_barrier` has run.

        Raises:
            StorageError: nothing was recorded and no id used up (with `transient` set when
                retrying later may succeed).
        """
        ...

    def commit_barrier(self) -> Callable[[], None] | None:
        """A callable that makes every job accepted so far durable, or None if there is none.

        It runs once, possibly in another thread, and always releases what it holds (such as a
        duplicated descriptor), even when it raises OSError or StorageError.
        """
        ...

    def complete(self, job_id: int, result: bytes) -> bool:
        """Record `result` (the job's data as JSON) and the job done; False if not unfinished.

        Raises:
            StorageError: nothing changed; with `transient`, try again later.
        """
        ...

    def fail(self, job_id: int, reason: str) -> bool:
        """Record the job in error for `reason`; False if it was not unfinished.

        Raises:
            StorageError: nothing changed; with `transient`, try again later.
        """
        ...

    def outcome(self, job_id: int) -> JobOutcome:
        """The job's status, with its result or reason.

        Raises:
            UnknownJob: the id was never issued.
        """
        ...

    def statuses(self, after: int = 0, limit: int | None = None) -> list[tuple[int, JobStatus]]:
        """Issued ids greater than `after`, in order, at most `limit` of them, with statuses."""
        ...

    def last_id(self) -> int:
        """The highest id issued so far (0 when none)."""
        ...

    def unfinished_count(self) -> int:
        """How many accepted jobs are unfinished, in the whole job space."""
        ...

    def take_over(self) -> tuple[tuple[int, Query], ...]:
        """Unfinished jobs of owners that died since, now this owner's to run (shared stores)."""
        ...

    def forget(self, job_id: int) -> bool:
        """Drop a finished job's result: it then answers `error` with reason `expired`.

        False (and nothing changes) if the job is unfinished or was never issued.
        """
        ...

    def expire(self, retention: Retention) -> Sequence[int]:
        """Forget the finished jobs that `retention` no longer keeps; their ids.

        The ids, not a count: the caller tells whoever keeps copies of finished outcomes (the
        event loop's cache) that these jobs now answer `expired`.
        """
        ...

    def close(self) -> None:
        """Make everything durable, release the lock and every resource. Idempotent."""
        ...


@runtime_checkable
class BatchingStore(Protocol):
    """A `JobStore` that records a batch of jobs in one step (one round trip to its server).

    Optional: the ResultStore uses these methods when a store has them, and otherwise calls
    `accept`, `complete` and `fail` once per job.
    """

    def accept_many(self, queries: Sequence[Query]) -> list[int]:
        """`accept` each query, in order; their ids, consecutive.

        Raises:
            StorageError: none was recorded and no id used up (`transient` as for `accept`).
        """
        ...

    def complete_many(self, finished: Sequence[tuple[int, JobOutcome]]) -> list[bool]:
        """Record each job done (with its result) or in error (with its reason), if unfinished.

        For each job, whether it was unfinished and is now recorded (`complete`'s answer).

        Raises:
            StorageError: nothing changed; with `transient`, try again later.
        """
        ...
