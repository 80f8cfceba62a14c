"""Every message the actors exchange: frozen dataclasses, the engine's public wire format.

Message-level tests and embedders send these straight to actors. Requests that expect an answer
carry `reply`, a `concurrent.futures.Future` the receiving actor settles: a thread may wait on it
with `reply.result(timeout)`, asyncio code with `await asyncio.wrap_future(reply)`, and neither
blocks the event loop. (pykka's own futures block the loop when awaited.)

Job ids are ints inside the engine; `jobs.format_job_id` gives the public `job_id_N` form.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from lestats.actors.jobs import JobOutcome, JobStatus
    from lestats.data.query import Query

T = TypeVar("T")
log = logging.getLogger(__name__)

QueuedJob = tuple[int, "Query"]
"""An accepted job's id and question, as moved between actors when jobs are (re)assigned."""


def _reply() -> Future:  # type: ignore[type-arg]
    return Future()


def answer(reply: Future[T], value: T) -> None:
    """Settle `reply` with `value`; a caller that gave up (cancelled) is not an error."""
    try:
        reply.set_result(value)
    except InvalidStateError:
        log.debug("reply already settled or cancelled: %r", reply)


def refuse(reply: Future[T], error: BaseException) -> None:
    """Settle `reply` with `error`; a caller that gave up (cancelled) is not an error."""
    try:
        reply.set_exception(error)
    except InvalidStateError:
        log.debug("reply already settled or cancelled: %r", reply)


# --- Jobs: front end -> Dispatcher -> ResultStore / Worker ---------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitJob:
    """Client -> Dispatcher: accept a job. Replies its id once recorded in the journal.

    Refused with `ShuttingDown` after the poison, `Overloaded` past the pending limit, and
    `StorageError` when the journal cannot be written; a refused job used up no id.
    """

    query: Query
    reply: Future[int] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class RegisterJob:
    """Dispatcher -> ResultStore: assign an id, journal the job, note which worker runs it."""

    query: Query
    worker: str
    reply: Future[int] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class RunJob:
    """Dispatcher -> Worker: compute this job and report it to the ResultStore."""

    job_id: int
    query: Query


@dataclass(frozen=True, slots=True)
class JobDone:
    """Worker -> ResultStore: the job's `data`, JSON-encoded; saved before the job reads done."""

    job_id: int
    result: bytes


@dataclass(frozen=True, slots=True)
class JobFailed:
    """Worker or Dispatcher -> ResultStore: the job ends in error for `reason`."""

    job_id: int
    reason: str


# --- Queries: client -> ResultStore --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetOutcome:
    """Client -> ResultStore: the job's status now, with its result or reason.

    Refused with `UnknownJob` for an id never issued.
    """

    job_id: int
    reply: Future[JobOutcome] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class WatchJob:
    """Client -> ResultStore: reply with the outcome as soon as the job is no longer running.

    The store keeps the reply until then; a client that stops waiting just ignores it.
    """

    job_id: int
    reply: Future[JobOutcome] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class ListJobs:
    """Client -> ResultStore: every issued job id with its status, in id order."""

    reply: Future[tuple[tuple[int, JobStatus], ...]] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class CountPending:
    """Client -> ResultStore: how many accepted jobs are unfinished (queued or running)."""

    reply: Future[int] = field(default_factory=_reply, compare=False)


# --- Shutdown: the poison cascade ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poison:
    """Shutdown, travelling behind the work: client -> Dispatcher -> each Worker.

    Everything sent before it is handled before it. `drained` is settled once every worker has
    finished its queue and stopped and the ResultStore has flushed its journal.
    """

    drained: Future[None] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class WorkerStopped:
    """Worker -> Dispatcher: drained its queue up to the poison and is stopping."""

    worker: str


@dataclass(frozen=True, slots=True)
class EngineDrained:
    """Dispatcher -> ResultStore: every worker has stopped; flush, then settle `drained`.

    Jobs still unfinished (only after a shutdown without drain) stay in the journal.
    """

    drained: Future[None] = field(default_factory=_reply, compare=False)


# --- Supervision and recovery --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerDied:
    """Worker (from its failure hook) -> Dispatcher: it is dead; `job_id` is the job it ran."""

    worker: str
    job_id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Reassign:
    """Dispatcher -> ResultStore: fail the crashed job; move the dead worker's other jobs.

    Replies with the moved jobs, in id order, for the Dispatcher to send to `replacement`.
    """

    dead: str
    crashed_job: int | None
    reason: str
    replacement: str
    reply: Future[tuple[QueuedJob, ...]] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class Requeue:
    """Client -> Dispatcher: run already-accepted jobs (recovered from the journal at start)."""

    jobs: tuple[QueuedJob, ...]


@dataclass(frozen=True, slots=True)
class AssignJobs:
    """Dispatcher -> ResultStore: which worker now holds each of these accepted jobs."""

    assignments: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class TakeRecovered:
    """Client -> ResultStore: the unfinished jobs found in the journal at start (once)."""

    reply: Future[tuple[QueuedJob, ...]] = field(default_factory=_reply, compare=False)
