"""Every message the actors exchange: frozen dataclasses, the engine's public wire format.

Message-level tests and embedders send these straight to actors. Requests that expect an answer
carry `reply`, a `concurrent.futures.Future` the receiving actor settles: a thread may wait on it
with `reply.result(timeout)`, asyncio code with `await asyncio.wrap_future(reply)`, and neither
blocks the event loop. (pykka's own futures block the loop when awaited.) pykka's `ref.ask(request)`
works too: the engine's actors answer it with the request's reply (`refs.RequestRef`), and asking
a one-way message is refused with a `TypeError` rather than answered with a silent None.

Stable API: the names and fields of the messages below; new fields come with defaults.

Job ids are ints inside the engine; `jobs.format_job_id` gives the public `job_id_N` form.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    import pykka

    from lestats.actors.jobs import JobOutcome, JobStatus
    from lestats.data.query import Query

T = TypeVar("T")
log = logging.getLogger(__name__)


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


class _Inbox(Protocol):
    """What `refuse_queued` needs of an actor's inbox (pykka's `ActorInbox`)."""

    def put(self, envelope: Any, /) -> None: ...  # noqa: ANN401
    def get(self) -> Any: ...  # noqa: ANN401
    def empty(self) -> bool: ...


def refuse_queued(inbox: _Inbox, error: BaseException) -> None:
    """Refuse every request still queued in a stopping actor's `inbox`.

    pykka drops the messages left behind a stop; a request among them would leave its sender
    waiting forever on its `reply`. Anything else (pykka's own stop or ask envelopes) goes back
    into the inbox for pykka to answer as it always does.
    """
    others = []
    while not inbox.empty():  # only the stopping actor's own thread takes from its inbox
        envelope = inbox.get()
        reply = getattr(envelope.message, "reply", None)
        if isinstance(reply, Future):
            refuse(reply, error)
        else:
            others.append(envelope)
    for envelope in others:
        inbox.put(envelope)


class Message:
    """The base of every message the engine's actors exchange (a marker: it has no fields)."""

    __slots__ = ()


class Request(Protocol[T]):
    """A message carrying the `reply` future its actor settles with a `T` (or refuses)."""

    @property
    def reply(self) -> Future[T]:
        """Settled by the receiving actor with the answer, or with the refusal."""
        ...


def is_request(message: object) -> TypeGuard[Request[Any]]:
    """Whether `message` is one of ours that carries a `reply` future to settle."""
    return isinstance(message, Message) and isinstance(getattr(message, "reply", None), Future)


# --- Jobs: client -> Dispatcher -> ResultStore -> Worker -> ResultStore --------------------------


@dataclass(frozen=True, slots=True)
class SubmitJob(Message):
    """Client -> Dispatcher: accept a job. Replies its id once the journal holds it on disk.

    Refused with `ShuttingDown` after the poison, `Overloaded` past the pending limit, and
    `StorageError` when the journal cannot be written; a refused job used up no id.
    """

    query: Query
    reply: Future[int] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class RegisterJob(Message):
    """Dispatcher -> ResultStore: assign an id and journal the job, for `worker` to run.

    After the group commit that makes the job durable, it is sent to `worker` and its id
    answered on `reply` (the client's).
    """

    query: Query
    worker: pykka.ActorRef[Any]
    reply: Future[int] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class RunJob(Message):
    """JournalCommitter or ResultStore -> Worker: compute this job, report it to the ResultStore."""

    job_id: int
    query: Query


@dataclass(frozen=True, slots=True)
class JobDone(Message):
    """Worker -> ResultStore: the job's `data`, JSON-encoded; saved before the job reads done.

    `started` and `ended` are the Worker's `time.monotonic()` when it began and finished
    computing (0.0: not stamped), for the queue and run time metrics; not part of equality.
    """

    job_id: int
    result: bytes
    started: float = field(default=0.0, compare=False)
    ended: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class JobErrored(Message):
    """Worker -> ResultStore: the job ends in error for `reason` (stamped as `JobDone` is)."""

    job_id: int
    reason: str
    started: float = field(default=0.0, compare=False)
    ended: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class HeldJob:
    """An accepted job journaled but not yet on disk: not run, its id not yet answered."""

    reply: Future[int]
    job_id: int
    worker: pykka.ActorRef[Any]
    query: Query


@dataclass(frozen=True, slots=True)
class Commit(Message):
    """ResultStore -> JournalCommitter: run `barrier`, then release these jobs.

    `barrier` is the store's `commit_barrier()`: it makes every job accepted so far durable,
    and runs once, in the committer's thread.
    """

    barrier: Callable[[], None]
    jobs: tuple[HeldJob, ...]


@dataclass(frozen=True, slots=True)
class RetrySaves(Message):
    """ResultStore's retry timer -> ResultStore: try again to record the finished jobs it holds.

    Sent after a transient storage error (a full disk, no free descriptors), with backoff.
    """


@dataclass(frozen=True, slots=True)
class FlushBatches(Message):
    """ResultStore -> itself, at the first job of a batch: record the batch now.

    The inbox is FIFO, so this arrives behind every message queued with the batch's first job:
    the jobs registered or finished meanwhile go to the store together, in one step.
    """


@dataclass(frozen=True, slots=True)
class TakeOver(Message):
    """Engine's ticker -> ResultStore: take over the jobs of processes that stopped; their ids.

    A shared store hands them out (`JobStore.take_over`); they then run here like any other.
    """

    reply: Future[tuple[int, ...]] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class FinishedElsewhere(Message):
    """Store (from its own thread) -> ResultStore: another process finished these jobs."""

    job_ids: tuple[int, ...]


# --- Queries: client -> ResultStore --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetOutcome(Message):
    """Client -> ResultStore: the job's status now, with its result or reason.

    Refused with `UnknownJob` for an id never issued.
    """

    job_id: int
    reply: Future[JobOutcome] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class WatchJob(Message):
    """Client -> ResultStore: reply with the outcome as soon as the job is no longer running."""

    job_id: int
    reply: Future[JobOutcome] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class Unwatch(Message):
    """Client -> ResultStore: the client stopped waiting on `reply` (a `WatchJob`'s); forget it."""

    job_id: int
    reply: Future[JobOutcome]


@dataclass(frozen=True, slots=True)
class ListJobs(Message):
    """Client -> ResultStore: issued job ids above `after` with their statuses, in id order.

    At most `limit` of them (None: all). A client listing many jobs asks page by page, so that
    other messages get through between the pages. Forgotten jobs are not listed.
    """

    after: int = 0
    limit: int | None = None
    reply: Future[tuple[tuple[int, JobStatus], ...]] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class CancelJob(Message):
    """Client -> ResultStore: end a queued job in error with reason `cancelled`.

    Replies True if it was cancelled, False if it is running, finished or unknown (unchanged).
    """

    job_id: int
    reply: Future[bool] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class ForgetJob(Message):
    """Client -> ResultStore: drop a finished job's result; it then answers `expired`.

    Replies True if it was forgotten, False if it is unfinished, unknown or forgotten already.
    """

    job_id: int
    reply: Future[bool] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class CountPending(Message):
    """Client -> ResultStore: how many accepted jobs are unfinished (queued or running)."""

    reply: Future[int] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    """Client -> ResultStore: from now on, call `push` with each batch of jobs that finish.

    `push` gets `(job_id, outcome)` pairs in the store's thread, a batch whenever the store has
    nothing else queued; it must not block. A `push` that raises `RuntimeError` (its event loop
    is closed) is dropped.
    """

    push: Callable[[tuple[tuple[int, JobOutcome], ...]], None]


@dataclass(frozen=True, slots=True)
class Unsubscribe(Message):
    """Client -> ResultStore: stop calling `push` (a `Subscribe`'s)."""

    push: Callable[[tuple[tuple[int, JobOutcome], ...]], None]


# --- Shutdown: the poison cascade ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poison(Message):
    """Shutdown, travelling behind the work: client -> Dispatcher -> ResultStore -> Workers.

    Everything sent before it is handled before it. `drained` is settled once every worker has
    finished its queue and stopped and the ResultStore has flushed its journal.
    """

    drained: Future[None] = field(default_factory=_reply, compare=False)


@dataclass(frozen=True, slots=True)
class ForwardPoison(Message):
    """Dispatcher -> ResultStore -> JournalCommitter: send `poison` to these workers.

    Routed like the jobs, it reaches each worker behind every job accepted before it.
    """

    workers: tuple[pykka.ActorRef[Any], ...]
    poison: Poison


@dataclass(frozen=True, slots=True)
class WorkerStopped(Message):
    """Worker -> Dispatcher: drained its queue up to the poison and is stopping."""

    worker: str


@dataclass(frozen=True, slots=True)
class EngineDrained(Message):
    """Dispatcher -> ResultStore: every worker has stopped; flush, then settle `drained`.

    Jobs still unfinished (only after a shutdown without drain) stay in the journal.
    """

    drained: Future[None] = field(default_factory=_reply, compare=False)


# --- Supervision and recovery --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerDied(Message):
    """Worker (from its failure hook) -> Dispatcher: it is dead; `job_id` is the job it ran."""

    worker: str
    job_id: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Reassign(Message):
    """Dispatcher -> ResultStore: send the dead worker's unfinished jobs to `replacement`.

    With `poison` (a drain is under way), the poison follows them.
    """

    dead: str
    replacement: pykka.ActorRef[Any]
    poison: Poison | None = None


@dataclass(frozen=True, slots=True)
class MoveJobs(Message):
    """ResultStore -> JournalCommitter: send these jobs of a dead worker to its `replacement`.

    Behind the commits that made them durable; with `poison`, the poison follows them.
    """

    jobs: tuple[tuple[int, Query], ...]
    replacement: pykka.ActorRef[Any]
    poison: Poison | None = None


@dataclass(frozen=True, slots=True)
class Requeue(Message):
    """Client -> Dispatcher: run these accepted jobs again (recovered from the journal at start)."""

    job_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AssignJobs(Message):
    """Dispatcher -> ResultStore: send each of these accepted jobs to its worker."""

    assignments: tuple[tuple[int, pykka.ActorRef[Any]], ...]


@dataclass(frozen=True, slots=True)
class TakeRecovered(Message):
    """Client -> ResultStore: ids of the unfinished jobs found in the journal at start (once)."""

    reply: Future[tuple[int, ...]] = field(default_factory=_reply, compare=False)
