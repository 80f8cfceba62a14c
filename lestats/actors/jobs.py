"""The job model shared by the actors and their clients: status, id format, outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from lestats.errors import UnknownJob


class JobStatus(Enum):
    """Where an accepted job is. Every accepted job ends DONE or ERROR."""

    RUNNING = "running"  # accepted: queued behind other jobs or being computed
    DONE = "done"  # its result file is written; the result can be read
    ERROR = "error"  # it failed; the outcome carries the reason


MAX_JOB_ID = 10**18
"""Ids stay below this (18 digits); anything larger is not a job id, as int or as text."""
_JOB_ID = re.compile(r"(?:job_id_)?([1-9][0-9]{0,17})")


def format_job_id(number: int) -> str:
    """The public form of a job id: `job_id_N`."""
    return f"job_id_{number}"


def parse_job_id(job_id: object) -> int:
    """The number of a job id given as `job_id_N`, `N` or an int.

    Anything else (path separators, signs, spaces, leading zeros, huge numbers) is refused before it
    can reach a file name.

    Raises:
        UnknownJob: `job_id` is not of either form.
    """
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        if 1 <= job_id < MAX_JOB_ID:
            return job_id
        raise UnknownJob(job_id)
    if isinstance(job_id, str) and (match := _JOB_ID.fullmatch(job_id)):
        return int(match.group(1))
    raise UnknownJob(job_id)


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """A job's state as the ResultStore answers it.

    `result` is the job's `data` already encoded as JSON (done jobs only), so that it can be
    served without decoding; `reason` says why a job is in error.
    """

    status: JobStatus
    result: bytes | None = None
    reason: str | None = None


RUNNING = JobOutcome(JobStatus.RUNNING)
"""The outcome of every job not yet finished."""

EXPIRED = JobOutcome(JobStatus.ERROR, reason="expired")
"""The outcome of a job forgotten (by hand or by retention): its id stays issued."""
