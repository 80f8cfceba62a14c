"""The ResultStore actor: the one owner of job state, through the `JobStore` it is given.

The store (files, memory, Redis: see `lestats.stores.base`) owns ids, statuses, the record of
accepted jobs and results. This actor keeps what only the running process needs: the messages,
who waits on which job, the replies held for the group commit, the subscribers, and which
Worker runs which unfinished job (bounded by the pending limit).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from lestats import messages as m
from lestats.actors.claims import JobClaims
from lestats.actors.committer import JournalCommitter, release, send
from lestats.actors.jobs import EXPIRED, RUNNING, JobOutcome, JobStatus
from lestats.actors.refs import RequestActor
from lestats.errors import Overloaded, ShuttingDown, StorageError, UnknownJob
from lestats.stores.base import NO_RETENTION_LIMIT, BatchingStore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from concurrent.futures import Future

    from lestats.data.query import Query
    from lestats.metrics_stats import JobStats
    from lestats.stores.base import JobStore, Retention

log = logging.getLogger(__name__)

COMMIT_BATCH = 256
"""Hand held replies to the committer once this many are waiting, even if more work is queued."""
COMMIT_DELAY = 0.002
"""...or once the oldest has waited this many seconds."""
RETRY_FIRST = 0.05
"""Seconds before the first retry of results the store could not record (a full disk)..."""
RETRY_MAX = 2.0
"""...doubling up to this."""
CANCELLED = "cancelled"
"""The reason of a job cancelled before it ran."""


class ResultStore(RequestActor):
    """Numbers and records accepted jobs, hands them out once durable, answers about them.

    A job's id is answered only once the store's commit barrier has run (group commit, through
    the JournalCommitter). A result is recorded before its job reads `done`. With a
    `BatchingStore` (Redis), the jobs registered or finished while earlier messages were being
    handled go to the store in one call each way (see `FlushBatches`), not one call per job.
    When the store cannot record a finished job for a while (a full disk), the job stays
    `running` and is retried with backoff until it can, or the engine stops. Handlers never
    raise: a request that cannot be served is refused on its `reply`.
    """

    def __init__(
        self,
        store: JobStore,
        max_pending: int,
        retention: Retention = NO_RETENTION_LIMIT,
        claims: JobClaims | None = None,
        stats: JobStats | None = None,
    ) -> None:
        """Open the store (in the caller's thread, so a bad store fails `start`).

        `stats`, if given, counts jobs and times them for the metrics (written here only).
        """
        super().__init__()
        self._stats = stats
        self._store = store
        self._max_pending = max_pending
        self._retention = retention
        self._expiring = retention.keep_last is not None or retention.max_age is not None
        self._claims = claims or JobClaims()
        recovered = store.open(self._finished_elsewhere)
        try:
            if self._expiring:
                store.expire(retention)
        except BaseException:
            store.close()
            raise
        self._running: dict[int, tuple[Query, str]] = {
            job_id: (query, "") for job_id, query in recovered.unfinished
        }
        self._recovered = tuple(self._running)
        self._watchers: defaultdict[int, list[Future[JobOutcome]]] = defaultdict(list)
        self._held: list[m.HeldJob] = []
        self._held_since = 0.0
        self._subscribers: list[Callable[[tuple[tuple[int, JobOutcome], ...]], None]] = []
        self._finished: dict[int, JobOutcome] = {}
        """Jobs finished (or forgotten) since the last publication to the subscribers..."""
        self._published: dict[int, JobOutcome] = {}
        """...and in the one before: the loop may still ask about these, its copy not yet made."""
        self._finished_since_expiry = 0
        self._unrecorded: dict[int, m.JobDone | m.JobErrored] = {}
        """Finished jobs the store could not record yet (transient trouble), in finish order."""
        self._trouble = ""
        """What the store said at the last transient refusal."""
        self._retry_delay = RETRY_FIRST
        self._retries = 0
        self._retry_timer: threading.Timer | None = None
        self._committer: pykka.ActorRef[Any] | None = None
        self._batching = store if isinstance(store, BatchingStore) else None
        self._accepting: list[m.RegisterJob] = []
        """Registrations waiting for the batch's `FlushBatches` (a batching store only)."""
        self._completing: dict[int, m.JobDone | m.JobErrored] = {}
        """Finished jobs waiting for it, in finish order."""
        self._flush_told = False

    def on_start(self) -> None:
        """Start the committer this store hands its journal batches to."""
        self._committer = JournalCommitter.start(self.actor_ref, self._stats)

    def on_receive(self, message: Any) -> None:  # noqa: ANN401 - any message may arrive
        """Handle one message, then pass on held replies and finished jobs if it is time."""
        handler = self._handlers.get(type(message))
        if handler is None:
            super().on_receive(message)
        else:
            try:
                handler(self, message)
            except StorageError as exc:  # a read the store cannot serve now (its server away)
                log.warning("ResultStore cannot answer %s: %s", type(message).__name__, exc)
                reply = getattr(message, "reply", None)
                if reply is not None:
                    m.refuse(reply, exc)
            except Exception:
                log.exception("ResultStore failed to handle %r", message)
                reply = getattr(message, "reply", None)
                if reply is not None:
                    m.refuse(reply, StorageError("internal error in the result store"))
        if not (self._held or self._finished or self._finished_since_expiry):
            return
        idle = self.actor_inbox.empty()  # asked once: it takes the inbox's lock
        if self._held and (
            idle
            or len(self._held) >= COMMIT_BATCH
            or time.monotonic() - self._held_since >= COMMIT_DELAY
        ):
            self._release_held()
        if self._finished and (idle or len(self._finished) >= COMMIT_BATCH):
            self._publish_finished()
        if self._finished_since_expiry and (idle or self._finished_since_expiry >= COMMIT_BATCH):
            self._expire()

    def on_failure(self, *exc_info: object) -> None:
        """Do not leave the committer running, nor the store locked, if this actor dies anyway."""
        del exc_info
        self._stop_retrying()
        if self._committer is not None:
            self._committer.stop(block=False)
        self._store.close()

    def on_stop(self) -> None:
        """Commit and answer what is held, refuse what is queued, close the store."""
        m.refuse_queued(self.actor_inbox, ShuttingDown())
        self._flush_batches()
        self._commit_here()
        self._flush_batches()  # the jobs of a commit that failed just now, in error
        self._stop_retrying()
        for watchers in self._watchers.values():
            for reply in watchers:
                m.answer(reply, RUNNING)
        self._watchers.clear()
        if self._unrecorded:
            log.warning(
                "%d finished jobs could not be recorded; they run again at the next start",
                len(self._unrecorded),
            )
        try:
            self._store.close()  # first: once the committer is gone, the store is free again
        finally:
            if self._committer is not None:
                self._committer.stop(block=True)

    # --- jobs ------------------------------------------------------------------------------------

    def _register(self, message: m.RegisterJob) -> None:
        if len(self._running) + len(self._accepting) >= self._max_pending:
            limit = self._max_pending
            m.refuse(
                message.reply, Overloaded(f"too many jobs pending (at most {limit}); retry later")
            )
            return
        if self._batching is not None:
            self._accepting.append(message)
            self._flush_soon()
            return
        try:
            job_id = self._store.accept(message.query)
        except StorageError as exc:
            log.error("cannot record a job: %s", exc.problem)  # noqa: TRY400 - it says it all
            m.refuse(message.reply, exc)
            return
        self._hold(message, job_id)

    def _hold(self, message: m.RegisterJob, job_id: int) -> None:
        """A job recorded: hold its reply (and its run) for the next commit."""
        self._running[job_id] = (message.query, message.worker.actor_urn)
        if self._stats is not None:
            self._stats.job_accepted(job_id, message.query.kind)
        if not self._held:
            self._held_since = time.monotonic()
        self._held.append(m.HeldJob(message.reply, job_id, message.worker, message.query))

    def _done(self, message: m.JobDone | m.JobErrored) -> None:
        if message.job_id not in self._running or message.job_id in self._completing:
            log.warning("report of job %d, which is not running; ignored", message.job_id)
            return
        if self._unrecorded:  # an episode of trouble: keep the order, retry together
            self._unrecorded[message.job_id] = message
            return
        if self._batching is not None:
            self._completing[message.job_id] = message
            self._flush_soon()
            return
        if not self._record(message):
            self._retry_later((message,))

    # --- batches (a batching store) --------------------------------------------------------------

    def _flush_soon(self) -> None:
        """Have the batch recorded behind the messages queued now (the first job of a batch)."""
        if not self._flush_told:
            self._flush_told = True
            try:
                self.actor_ref.tell(m.FlushBatches())
            except pykka.ActorDeadError:  # stopping: `on_stop` flushes what it can
                log.debug("a batch begun while the store stops")

    def _flush(self, message: m.FlushBatches) -> None:
        del message
        self._flush_batches()

    def _flush_batches(self) -> None:
        """Record the jobs registered and finished since the last flush, one call each way."""
        self._flush_told = False
        if self._accepting and self._batching is not None:
            self._accept_batch(self._batching)
        if self._completing:
            batch, self._completing = tuple(self._completing.values()), {}
            if self._unrecorded:  # trouble began meanwhile (a refused commit): keep the order
                self._unrecorded.update((finished.job_id, finished) for finished in batch)
                return
            recorded = self._record_all(batch)
            if recorded < len(batch):
                self._retry_later(batch[recorded:])

    def _accept_batch(self, store: BatchingStore) -> None:
        """Record the waiting registrations in one step; refuse them all if it fails."""
        batch, self._accepting = self._accepting, []
        try:
            job_ids = store.accept_many([message.query for message in batch])
        except StorageError as exc:
            log.error("cannot record %d jobs: %s", len(batch), exc.problem)  # noqa: TRY400
            for message in batch:
                m.refuse(message.reply, exc)
            return
        for message, job_id in zip(batch, job_ids, strict=True):
            self._hold(message, job_id)
        self._release_held()  # the batch is one commit already: no reason to wait for more

    def _record_all(self, finished: Sequence[m.JobDone | m.JobErrored]) -> int:
        """Record finished jobs, a batch per store call if it can; how many, in order, were.

        The rest met transient trouble (retry them later). A batch the store refuses for good
        (say, one result it cannot take) is recorded one job at a time, so that only the job at
        fault ends in error.
        """
        if self._batching is None:
            return self._record_each(finished)
        done = 0
        while done < len(finished):
            batch = finished[done : done + COMMIT_BATCH]
            outcomes = [(message.job_id, _outcome(message)) for message in batch]
            try:
                recorded = self._batching.complete_many(outcomes)
            except StorageError as exc:
                if exc.transient:
                    self._trouble = exc.problem
                    return done
                log.warning("cannot record %d finished jobs at once (%s)", len(batch), exc.problem)
                recorded_each = self._record_each(batch)
                done += recorded_each
                if recorded_each < len(batch):
                    return done
                continue
            for message, (_, outcome), ok in zip(batch, outcomes, recorded, strict=True):
                self._settle(message, outcome, recorded=ok)
            done += len(batch)
        return done

    def _record_each(self, finished: Sequence[m.JobDone | m.JobErrored]) -> int:
        """Record finished jobs one store call each; how many, in order, were."""
        for count, message in enumerate(finished):
            if not self._record(message):
                return count
        return len(finished)

    # --- recording one job ----------------------------------------------------------------------

    def _record(self, message: m.JobDone | m.JobErrored) -> bool:
        """Record a finished job in the store; False on transient trouble (retry later)."""
        job_id = message.job_id
        outcome = _outcome(message)
        try:
            if isinstance(message, m.JobDone):
                recorded = self._store.complete(job_id, message.result)
            else:
                recorded = self._store.fail(job_id, message.reason)
        except StorageError as exc:
            if exc.transient:
                self._trouble = exc.problem
                return False
            if isinstance(message, m.JobDone):
                log.error("cannot save the result of job %d: %s", job_id, exc.problem)  # noqa: TRY400
                return self._record(m.JobErrored(job_id, exc.problem))
            log.exception("cannot record the failure of job %d; it runs at the next start", job_id)
            recorded, outcome = False, RUNNING
        self._settle(message, outcome, recorded=recorded)
        return True

    def _settle(
        self, message: m.JobDone | m.JobErrored, outcome: JobOutcome, *, recorded: bool
    ) -> None:
        """A finished job was recorded (or found finished already): not running here any more."""
        job_id = message.job_id
        running = self._running.pop(job_id, None)  # None: finished elsewhere meanwhile
        if self._stats is not None and recorded and running is not None:
            self._stats.job_finished(
                job_id,
                running[0].kind,
                ok=outcome.status is JobStatus.DONE,
                started=message.started,
                ended=message.ended,
            )
        self._claims.finished(job_id)
        if recorded:
            self._notify(job_id, outcome)

    def _retry_later(self, unrecorded: Sequence[m.JobDone | m.JobErrored]) -> None:
        """Finished jobs the store could not record now: they stay running, retried in order."""
        self._unrecorded.update((finished.job_id, finished) for finished in unrecorded)
        log.warning(
            "cannot record finished jobs (%s); they stay running and are retried", self._trouble
        )
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        timer = threading.Timer(self._retry_delay, self._tell_retry)
        timer.daemon = True
        timer.name = "ResultStoreRetry"
        self._retry_timer = timer
        timer.start()

    def _tell_retry(self) -> None:
        try:
            self.actor_ref.tell(m.RetrySaves())
        except pykka.ActorDeadError:
            log.debug("retry timer fired after the store stopped")

    def _retry(self, message: m.RetrySaves) -> None:
        del message
        self._retry_timer = None
        self._retries += 1
        waiting = tuple(self._unrecorded.values())
        recorded = self._record_all(waiting)
        for finished in waiting[:recorded]:
            del self._unrecorded[finished.job_id]
        if self._unrecorded:
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
            self._schedule_retry()
            return
        log.warning("finished jobs recorded again, after %d retries", self._retries)
        self._retries, self._retry_delay = 0, RETRY_FIRST

    def _stop_retrying(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None

    def _notify(self, job_id: int, outcome: JobOutcome) -> None:
        for reply in self._watchers.pop(job_id, ()):
            m.answer(reply, outcome)
        if self._keeps_finished():
            self._finished[job_id] = outcome
        if self._expiring:
            self._finished_since_expiry += 1

    def _cancel(self, message: m.CancelJob) -> None:
        job_id = message.job_id
        if job_id not in self._running or job_id in self._unrecorded or job_id in self._completing:
            m.answer(message.reply, False)  # noqa: FBT003 - a reply value
            return
        if not self._claims.cancel(job_id):
            m.answer(message.reply, False)  # noqa: FBT003
            return
        try:
            recorded = self._store.fail(job_id, CANCELLED)
        except StorageError as exc:
            self._claims.uncancel(job_id)
            m.refuse(message.reply, exc)
            return
        query = self._running.pop(job_id)[0]
        self._claims.finished(job_id)
        if self._stats is not None and recorded:
            self._stats.job_finished(job_id, query.kind, ok=False, started=0.0, ended=0.0)
        if recorded:
            self._notify(job_id, JobOutcome(JobStatus.ERROR, reason=CANCELLED))
        m.answer(message.reply, recorded)

    def _forget(self, message: m.ForgetJob) -> None:
        try:
            forgotten = self._store.forget(message.job_id)
        except StorageError as exc:
            m.refuse(message.reply, exc)
            return
        if forgotten and self._keeps_finished():
            self._finished[message.job_id] = EXPIRED
        m.answer(message.reply, forgotten)

    def _expire(self) -> None:
        self._finished_since_expiry = 0
        try:
            expired = self._store.expire(self._retention)
        except StorageError as exc:
            log.warning("cannot forget old jobs now: %s", exc.problem)
            return
        if expired and self._keeps_finished():
            self._finished.update(dict.fromkeys(expired, EXPIRED))
            self._publish_finished()

    def _finished_elsewhere(self, job_ids: Sequence[int]) -> None:
        """The store's `notify`: runs in any thread, so it only tells this actor."""
        try:
            self.actor_ref.tell(m.FinishedElsewhere(tuple(job_ids)))
        except pykka.ActorDeadError:
            log.debug("jobs finished elsewhere after the store stopped")

    def _settle_elsewhere(self, message: m.FinishedElsewhere) -> None:
        """Answer the local waiters of jobs finished elsewhere; other ids cost nothing."""
        for job_id in message.job_ids:
            ours = self._running.pop(job_id, None) is not None
            if ours:
                self._claims.finished(job_id)
            if ours or job_id in self._watchers:
                try:
                    outcome = self._store.outcome(job_id)
                except (StorageError, UnknownJob) as exc:
                    log.warning("cannot read job %d, finished elsewhere: %s", job_id, exc)
                    continue
                self._notify(job_id, outcome)

    def _take_over(self, message: m.TakeOver) -> None:
        """Jobs of stopped processes become this one's to run (the Engine requeues the ids)."""
        try:
            taken = self._store.take_over()
        except StorageError as exc:
            log.warning("cannot look for jobs of stopped processes now: %s", exc.problem)
            taken = ()
        for job_id, query in taken:
            self._running[job_id] = (query, "")
        m.answer(message.reply, tuple(job_id for job_id, _ in taken))

    def _subscribe(self, message: m.Subscribe) -> None:
        self._subscribers.append(message.push)

    def _unsubscribe(self, message: m.Unsubscribe) -> None:
        if message.push in self._subscribers:
            self._subscribers.remove(message.push)

    def _keeps_finished(self) -> bool:
        """Whether lately finished jobs are kept: for the subscribers, or for `_outcome`."""
        return bool(self._subscribers) or self._batching is not None

    def _publish_finished(self) -> None:
        finished, self._finished = self._finished, {}
        if self._batching is not None:
            self._published = finished
        if not self._subscribers:
            return
        batch = tuple(finished.items())
        for push in tuple(self._subscribers):
            try:
                push(batch)
            except RuntimeError:
                log.debug("subscriber %r is gone; dropped", push)
                self._subscribers.remove(push)
            except Exception:
                log.exception("subscriber %r failed; dropped", push)
                self._subscribers.remove(push)

    # --- queries ---------------------------------------------------------------------------------

    def _get_outcome(self, message: m.GetOutcome) -> None:
        if self._finished_since_expiry:  # a read sees retention applied to what finished
            self._expire()
        try:
            m.answer(message.reply, self._outcome(message.job_id))
        except UnknownJob as exc:
            m.refuse(message.reply, exc)

    def _watch(self, message: m.WatchJob) -> None:
        if self._finished_since_expiry:
            self._expire()
        try:
            outcome = self._outcome(message.job_id)
        except UnknownJob as exc:
            m.refuse(message.reply, exc)
            return
        if outcome.status is JobStatus.RUNNING:
            self._watchers[message.job_id].append(message.reply)
        else:
            m.answer(message.reply, outcome)

    def _outcome(self, job_id: int) -> JobOutcome:
        """The job's outcome from the store; from here, if it finished lately, for a batching one.

        A batching store's every read is a round trip to its server, and a long poll tends to
        ask just after its job finished, before the loop has its copy. The other stores read
        from memory (and the file store checks that the result file is still there).
        """
        if self._batching is not None:
            outcome = self._finished.get(job_id)
            if outcome is None:
                outcome = self._published.get(job_id)
            if outcome is not None:
                return outcome
        return self._store.outcome(job_id)

    def _unwatch(self, message: m.Unwatch) -> None:
        watchers = self._watchers.get(message.job_id)
        if watchers is not None and message.reply in watchers:
            watchers.remove(message.reply)
            if not watchers:
                del self._watchers[message.job_id]

    def _list(self, message: m.ListJobs) -> None:
        if self._finished_since_expiry:
            self._expire()
        m.answer(message.reply, tuple(self._store.statuses(message.after, message.limit)))

    def _count(self, message: m.CountPending) -> None:
        m.answer(message.reply, self._store.unfinished_count())

    # --- supervision, recovery, shutdown ---------------------------------------------------------

    def _reassign(self, message: m.Reassign) -> None:
        """Give the dead worker's jobs to its replacement, each only once durable.

        Jobs still held here are simply retargeted; the others leave from the committer, behind
        the commit that released them to the dead worker.
        """
        self._flush_batches()  # what waits for a batch was sent to the dead worker too
        replacement, dead = message.replacement, message.dead
        self._held = [
            m.HeldJob(job.reply, job.job_id, replacement, job.query)
            if job.worker.actor_urn == dead
            else job
            for job in self._held
        ]
        held = {job.job_id for job in self._held}
        moved = []
        for job_id, (query, worker) in sorted(self._running.items()):
            if worker == dead:
                self._running[job_id] = (query, replacement.actor_urn)
                if job_id not in held and job_id not in self._unrecorded:
                    moved.append((job_id, query))
        log.warning("%d unfinished jobs of dead worker %s moved", len(moved), dead)
        move = m.MoveJobs(tuple(moved), replacement, message.poison)
        if self._committer is None:
            for job_id, query in move.jobs:
                send(replacement, m.RunJob(job_id, query))
            if move.poison is not None:
                send(replacement, m.Poison(move.poison.drained))
        else:
            self._committer.tell(move)

    def _assign(self, message: m.AssignJobs) -> None:
        for job_id, worker in message.assignments:
            if job_id in self._running:
                query = self._running[job_id][0]
                self._running[job_id] = (query, worker.actor_urn)
                send(worker, m.RunJob(job_id, query))

    def _take_recovered(self, message: m.TakeRecovered) -> None:
        recovered, self._recovered = self._recovered, ()
        m.answer(message.reply, recovered)

    def _forward_poison(self, message: m.ForwardPoison) -> None:
        """Release what is held, then let the committer send the poison behind it."""
        self._flush_batches()
        if self._held:
            self._release_held()
        if self._committer is None:
            for worker in message.workers:
                send(worker, m.Poison(message.poison.drained))
        else:
            self._committer.tell(message)

    def _engine_drained(self, message: m.EngineDrained) -> None:
        if self._running:
            log.warning(
                "%d jobs unfinished at shutdown stay recorded; they run at the next start",
                len(self._running),
            )
        self._flush_batches()
        self._stop_retrying()
        self._commit_here()
        m.answer(message.drained, None)

    # --- the group commit ------------------------------------------------------------------------

    def _release_held(self) -> None:
        """Give the held replies to the committer with the store's barrier, or release them."""
        held, self._held = tuple(self._held), []
        try:
            barrier = self._store.commit_barrier()
        except StorageError as exc:
            log.exception("journal commit failed")
            self._refuse_held(held, exc)
            return
        if barrier is None:
            release(held)
        elif self._committer is None:
            self._answer_after(barrier, held)
        else:
            self._committer.tell(m.Commit(barrier, held))

    def _commit_here(self) -> None:
        """Commit in this thread and answer what is held (at shutdown)."""
        held, self._held = tuple(self._held), []
        try:
            barrier = self._store.commit_barrier()
        except StorageError as exc:
            log.exception("journal commit failed")
            self._refuse_held(held, exc)
            return
        if barrier is None:
            release(held)
        else:
            self._answer_after(barrier, held)

    def _answer_after(self, barrier: Callable[[], None], held: tuple[m.HeldJob, ...]) -> None:
        try:
            barrier()
        except (OSError, StorageError) as exc:
            log.exception("journal commit failed")
            problem = exc.problem if isinstance(exc, StorageError) else exc.strerror or str(exc)
            self._refuse_held(held, StorageError(f"journal not durable ({problem})"))
            return
        release(held)

    def _refuse_held(self, held: tuple[m.HeldJob, ...], error: StorageError) -> None:
        for job in held:
            m.refuse(job.reply, error)
            if job.job_id in self._running:
                self._done(m.JobErrored(job.job_id, f"refused: {error}"))

    _handlers: ClassVar[dict[type, Any]] = {
        m.RegisterJob: _register,
        m.JobDone: _done,
        m.JobErrored: _done,
        m.GetOutcome: _get_outcome,
        m.WatchJob: _watch,
        m.Unwatch: _unwatch,
        m.ListJobs: _list,
        m.CountPending: _count,
        m.CancelJob: _cancel,
        m.ForgetJob: _forget,
        m.RetrySaves: _retry,
        m.FlushBatches: _flush,
        m.FinishedElsewhere: _settle_elsewhere,
        m.TakeOver: _take_over,
        m.Subscribe: _subscribe,
        m.Unsubscribe: _unsubscribe,
        m.Reassign: _reassign,
        m.AssignJobs: _assign,
        m.TakeRecovered: _take_recovered,
        m.ForwardPoison: _forward_poison,
        m.EngineDrained: _engine_drained,
    }


def _outcome(message: m.JobDone | m.JobErrored) -> JobOutcome:
    """The outcome a Worker's report asks to record."""
    if isinstance(message, m.JobDone):
        return JobOutcome(JobStatus.DONE, message.result)
    return JobOutcome(JobStatus.ERROR, reason=message.reason)
