"""Every failure a caller can act on is a type here, so each layer raises it and one place maps it.

The HTTP front end turns these into status codes in a single middleware; embedders catch them by
type instead of parsing messages.
"""

from __future__ import annotations


class LeStatsError(Exception):
    """Base of every error this package raises on purpose."""


class DatasetError(LeStatsError):
    """A data file could not be loaded; names the file and what is wrong with it.

    Raised instead of a half-built dataset: loading is all or nothing.
    """

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class InvalidQuery(LeStatsError):  # noqa: N818 - the name reads as what it is, like ValueError
    """A job request that cannot be answered: unknown endpoint, question or state, wrong types.

    `allowed` lists the values that would have been accepted, when there is such a list.
    """

    def __init__(self, reason: str, allowed: tuple[str, ...] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.allowed = allowed


class UnknownJob(LeStatsError):  # noqa: N818
    """A job id that was never issued (or is not a job id at all)."""

    def __init__(self, job_id: object) -> None:
        super().__init__(f"Invalid job_id: {job_id!r}")
        self.job_id = job_id


class Overloaded(LeStatsError):  # noqa: N818
    """Too much work is waiting (pending jobs or requests in flight); retry after `retry_after` s.

    Nothing was accepted: no job id was used up.
    """

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ShuttingDown(LeStatsError):  # noqa: N818
    """The engine is draining for shutdown and takes no new jobs; nothing was accepted."""

    def __init__(self) -> None:
        super().__init__("shutting down")


class StorageError(LeStatsError):
    """The job store cannot do what was asked right now; nothing changed.

    `transient` says that the cause may pass (a full disk, no free descriptors, a store server
    away): retry after `retry_after` seconds. Otherwise the store is unusable as configured.
    `doing` says what failed, as the message's first words (a read is not a job recorded).
    """

    def __init__(
        self,
        problem: str,
        retry_after: float = 1.0,
        *,
        transient: bool = False,
        doing: str = "cannot record the job",
    ) -> None:
        super().__init__(f"{doing}: {problem}")
        self.problem = problem
        self.retry_after = retry_after
        self.transient = transient


class JobFailed(LeStatsError):  # noqa: N818
    """A job ended in `error`; `reason` says why. Raised by the blocking result getters."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"{job_id}: {reason}")
        self.job_id = job_id
        self.reason = reason


class PartlyAccepted(LeStatsError):  # noqa: N818
    """`submit_many` had some jobs accepted, then one refused (`error`, e.g. `Overloaded`).

    The accepted jobs run as any other: `accepted` holds their ids, in submission order.
    """

    def __init__(self, accepted: tuple[str, ...], error: LeStatsError) -> None:
        super().__init__(f"{len(accepted)} jobs accepted, then: {error}")
        self.accepted = accepted
        self.error = error
