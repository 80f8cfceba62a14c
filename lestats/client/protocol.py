"""What the client says to the server and what it makes of the answers, free of any I/O.

Each call of the client is a *plan*: a generator that yields the HTTP requests it needs and gets
their answers sent back, then returns the call's value (or raises the library's exception for
the answer). The synchronous and the asyncio client run the same plans, each with its own
transport, so that both behave alike by construction: one place maps answers to exceptions,
one place decides what to retry and how long to wait.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from lestats import jsonio
from lestats.actors.jobs import JobOutcome, JobStatus, format_job_id, parse_job_id
from lestats.client.errors import RemoteError
from lestats.data.query import Query
from lestats.data.statistics import COURSE_STATISTICS
from lestats.errors import (
    InvalidQuery,
    LeStatsError,
    Overloaded,
    ShuttingDown,
    StorageError,
    UnknownJob,
)

if TYPE_CHECKING:
    from collections.abc import Generator

Jobs = list[tuple[str, JobStatus]]
"""Job ids with their statuses, as `Engine.jobs` lists them."""

MAX_WAIT = 30.0
"""The longest `?wait=` the server takes (spec §4); longer waits are several long-polls."""

_DONE_PREFIX = b'{"status": "done", "data": '
_SHUTTING_DOWN = "shutting down"
_STORAGE_PREFIX = "cannot record the job: "
_UNKNOWN_JOB = "Invalid job_id"
_NO_ROUTE = "no such route (see GET / for the list)"
V2_JOBS = "/api/v2/jobs"
"""Where a query other than a course statistic's is posted (docs/queries.md)."""
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request: `path` includes the query string; `wait` is its long-poll, if any."""

    method: str
    path: str
    body: bytes | None = None
    wait: float = 0.0

    @property
    def headers(self) -> dict[str, str]:
        """The request's headers: a JSON body says so."""
        return _JSON if self.body is not None else {}


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, body, and the `Retry-After` header as sent."""

    status: int
    body: bytes
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait on `503` + `Retry-After` before giving up.

    Nothing is accepted by a refused request, so retrying cannot duplicate a job. Each wait is
    the server's `Retry-After` stretched by a random 0-50 % (so that the clients refused together
    do not all come back together), at most `max_delay` seconds.
    """

    retries: int = 3
    max_delay: float = 30.0

    def delay(self, answer: Answer, attempt: int) -> float | None:
        """Seconds to wait before sending again, or None to give up and raise."""
        if attempt >= self.retries or answer.status != 503 or answer.retry_after is None:  # noqa: PLR2004
            return None
        return min(self.max_delay, _seconds(answer.retry_after) * random.uniform(1.0, 1.5))  # noqa: S311 - jitter


def _seconds(retry_after: str | None) -> float:
    """`Retry-After` in seconds (we send integral seconds; an HTTP date counts as 1 s)."""
    try:
        return max(0.0, float(retry_after or "1"))
    except ValueError:
        return 1.0


# --- answers ---------------------------------------------------------------------------------


def _body(answer: Answer) -> dict[str, object]:
    try:
        body = json.loads(answer.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RemoteError(answer.status, f"not a JSON object: {answer.body[:200]!r}")
    return body


def error_for(answer: Answer, job_id: int | None = None) -> LeStatsError:  # noqa: PLR0911
    """The library's exception for an error answer (the inverse of the server's mapping).

    `job_id` is the number of the job asked about, if any (what the engine's `UnknownJob` holds).
    """
    try:
        body = _body(answer)
    except RemoteError as exc:
        return exc
    reason = str(body.get("reason", ""))
    status = answer.status
    if status == 400 or status == 413:  # noqa: PLR1714, PLR2004 - the statuses of bad requests
        allowed = body.get("allowed")
        return InvalidQuery(reason, tuple(map(str, allowed)) if isinstance(allowed, list) else None)
    if status == 404 and reason == _UNKNOWN_JOB and job_id is not None:  # noqa: PLR2004
        return UnknownJob(job_id)
    if status == 503:  # noqa: PLR2004
        if reason == _SHUTTING_DOWN:
            return ShuttingDown()
        retry_after = _seconds(answer.retry_after)
        if reason.startswith(_STORAGE_PREFIX):
            return StorageError(reason.removeprefix(_STORAGE_PREFIX), retry_after, transient=True)
        return Overloaded(reason, retry_after)
    return RemoteError(status, reason or answer.body[:200].decode(errors="replace"))


def _ok(answer: Answer, job_id: int | None = None) -> dict[str, object]:
    """The body of a 200 answer; the mapped exception for any other."""
    if answer.status != 200:  # noqa: PLR2004
        raise error_for(answer, job_id)
    return _body(answer)


def outcome_of(answer: Answer, job_id: int) -> JobOutcome:
    """A `get_results` answer as the engine's `JobOutcome` (the result as encoded JSON)."""
    body = _ok(answer, job_id)
    try:
        status = JobStatus(body.get("status"))
    except ValueError:
        raise RemoteError(answer.status, f"unknown job status {body.get('status')!r}") from None
    if status is JobStatus.DONE:
        raw = answer.body
        if raw.startswith(_DONE_PREFIX) and raw.endswith(b"}"):  # the server's own framing
            return JobOutcome(status, raw[len(_DONE_PREFIX) : -1])
        return JobOutcome(status, jsonio.dumps(body.get("data")))
    if status is JobStatus.ERROR:
        return JobOutcome(status, reason=str(body.get("reason", "")))
    return JobOutcome(status)


# --- plans -----------------------------------------------------------------------------------


def _encodable(value: object) -> object:
    """What stands for a value JSON cannot encode: a list, which the server refuses by type."""
    return [repr(value)]


def submit(
    kind: str | Query, question: object = None, state: object = None, **params: object
) -> Generator[Request, Answer, str]:
    """POST a job; its id.

    A course statistic goes to its course route (`POST /api/<name>`, body `question`, `state`);
    any other query, as one JSON object, to `POST /api/v2/jobs`. A server without the route
    answers 404: for a job, that is a statistic it does not know, as the engine would say.
    """
    if isinstance(kind, Query):
        name, fields = kind.kind, kind.to_json()
    else:
        name = kind
        fields = {"kind": kind, "question": question, "state": state, **params}
    fields = {key: value for key, value in fields.items() if value is not None}
    if name in COURSE_STATISTICS and set(fields) <= {"kind", "question", "state"}:
        del fields["kind"]
        path = f"/api/{name}"
    else:
        path = V2_JOBS
    answer = yield Request("POST", path, json.dumps(fields, default=_encodable).encode())
    if answer.status == 404 and _reason(answer) == _NO_ROUTE:  # noqa: PLR2004
        raise InvalidQuery(f"unknown endpoint {name!r}", COURSE_STATISTICS)
    job_id = _ok(answer).get("job_id")
    if not isinstance(job_id, str):
        raise RemoteError(answer.status, f"no job id in {answer.body[:200]!r}")
    return job_id


def _reason(answer: Answer) -> str | None:
    try:
        return str(_body(answer).get("reason"))
    except RemoteError:
        return None


def outcome(job_id: str | int) -> Generator[Request, Answer, JobOutcome]:
    """GET the job's outcome now."""
    number = parse_job_id(job_id)  # the engine's check, before any request
    answer = yield Request("GET", f"/api/get_results/{format_job_id(number)}")
    return outcome_of(answer, number)


def wait(job_id: str | int, timeout: float | None = None) -> Generator[Request, Answer, JobOutcome]:
    """Long-poll until the job leaves `running`, or `timeout` seconds have passed."""
    number = parse_job_id(job_id)
    path = f"/api/get_results/{format_job_id(number)}"
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = MAX_WAIT if deadline is None else min(MAX_WAIT, deadline - time.monotonic())
        if left <= 0:
            answer = yield Request("GET", path)
            return outcome_of(answer, number)
        seconds = max(left, 0.001)
        answer = yield Request("GET", f"{path}?wait={seconds:.3f}", wait=seconds)
        found = outcome_of(answer, number)
        if found.status is not JobStatus.RUNNING or (
            deadline is not None and time.monotonic() >= deadline
        ):
            return found


def jobs(after: int = 0, limit: int | None = None) -> Generator[Request, Answer, Jobs]:
    """GET the jobs above `after` with their statuses, in id order, at most `limit` of them."""
    query = {"after": str(after)} if after else {}
    if limit is not None:
        query["limit"] = str(limit)
    answer = yield Request("GET", "/api/jobs" + (f"?{urlencode(query)}" if query else ""))
    listed = _ok(answer).get("data")
    if not isinstance(listed, list):
        raise RemoteError(answer.status, "no job list in the answer")
    found = [
        (job_id, JobStatus(status))
        for entry in listed
        if isinstance(entry, dict)
        for job_id, status in entry.items()
        if parse_job_id(job_id) > after  # a server that does not page answers every job
    ]
    return found if limit is None else found[:limit]


def job_action(job_id: str | int, action: str, answer: str) -> Generator[Request, Answer, bool]:
    """POST a job's `action` (`cancel`, `forget`); the boolean the server answers."""
    number = parse_job_id(job_id)
    reply = yield Request("POST", f"/api/jobs/{format_job_id(number)}/{action}", b"{}")
    done = _ok(reply, number).get(answer)
    if not isinstance(done, bool):
        raise RemoteError(reply.status, f"no {answer!r} in the answer")
    return done


def num_jobs() -> Generator[Request, Answer, int]:
    """GET the number of unfinished jobs."""
    answer = yield Request("GET", "/api/num_jobs")
    count = _ok(answer).get("num_jobs")
    if not isinstance(count, int):
        raise RemoteError(answer.status, "no num_jobs in the answer")
    return count


def graceful_shutdown() -> Generator[Request, Answer, bool]:
    """Ask the server to stop accepting jobs; whether every accepted job has finished."""
    answer = yield Request("GET", "/api/graceful_shutdown")
    return _ok(answer).get("status") == "done"


def health() -> Generator[Request, Answer, dict[str, object]]:
    """GET the server's health (accepting, workers, num_jobs)."""
    answer = yield Request("GET", "/api/health")
    return _ok(answer)


def drained() -> Generator[Request, Answer, None]:
    """Ask the server to stop accepting jobs, then wait (long-polling) until all have finished."""
    while not (yield from graceful_shutdown()):
        for job_id, status in (yield from jobs()):
            if status is JobStatus.RUNNING:
                yield from wait(job_id)
