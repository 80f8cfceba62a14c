"""The ResultStore actor: the one owner of job state — ids, statuses, result files, the journal.

Job state stays small in memory: the unfinished jobs (bounded by the pending limit) and the
failed ones with their reasons. Every other issued id is done, and its result is on disk.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, ClassVar

from lestats import messages as m
from lestats.actors.committer import JournalCommitter, release, send
from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus
from lestats.actors.refs import RequestActor
from lestats.errors import Overloaded, ShuttingDown, StorageError, UnknownJob

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future

    import pykka

    from lestats.actors.journal import Journal
    from lestats.actors.storage import ResultStorage
    from lestats.data.query import Query

log = logging.getLogger(__name__)

COMMIT_BATCH = 256
"""Hand held replies to the committer once this many are waiting, even if more work is queued."""
COMMIT_DELAY = 0.002
"""...or once the oldest has waited this many seconds."""


class ResultStore(RequestActor):
    """Numbers, journals and hands out accepted jobs; persists results; answers about them.

    A job's id is answered only once its journal line is on disk (group commit, through the
    JournalCommitter). A result is saved before its job reads `done`; a job whose result cannot be
    saved ends `error`. Handlers never raise: a request that cannot be served is refused on its
    `reply`.
    """

    def __init__(self, storage: ResultStorage, journal: Journal, max_pending: int) -> None:
        """Replay the journal (in the caller's thread, so a bad results directory fails `start`)."""
        super().__init__()
        self._storage = storage
        self._journal = journal
        self._max_pending = max_pending
        state = journal.replay()
        self._next_id = max(state.next_id, storage.highest_id() + 1)
        self._failed: dict[int, str] = state.failed
        self._pending: dict[int, tuple[Query, str]] = {
            job_id: (query, "")
            for job_id, query in sorted(state.unfinished.items())
            if not storage.exists(job_id)
        }
        self._recovered = tuple(self._pending)
        self._watchers: defaultdict[int, list[Future[JobOutcome]]] = defaultdict(list)
        self._held: list[m.HeldJob] = []
        self._held_since = 0.0
        self._subscribers: list[Callable[[tuple[tuple[int, JobOutcome], ...]], None]] = []
        self._finished: list[tuple[int, JobOutcome]] = []
        self._committer: pykka.ActorRef[Any] | None = None
        storage.sync()
        journal.compact(self._next_id, self._unfinished(), self._failed)
        if self._recovered or state.skipped_lines:
            log.info(
                "journal replayed: %d unfinished jobs to run again, %d unreadable lines skipped",
                len(self._recovered),
                state.skipped_lines,
            )

    def on_start(self) -> None:
        """Start the committer this store hands its journal batches to."""
        self._committer = JournalCommitter.start(self.actor_ref)

    def on_receive(self, message: Any) -> None:  # noqa: ANN401 - any message may arrive
        """Handle one message, then pass on held replies and finished jobs if it is time."""
        handler = self._handlers.get(type(message))
        if handler is None:
            super().on_receive(message)
        else:
            try:
                handler(self, message)
            except Exception:
                log.exception("ResultStore failed to handle %r", message)
                reply = getattr(message, "reply", None)
                if reply is not None:
                    m.refuse(reply, StorageError("internal error in the result store"))
        if self._held and (
            len(self._held) >= COMMIT_BATCH
            or self.actor_inbox.empty()
            or time.monotonic() - self._held_since >= COMMIT_DELAY
        ):
            self._release_held()
        if self._finished and (len(self._finished) >= COMMIT_BATCH or self.actor_inbox.empty()):
            self._publish_finished()

    def on_failure(self, *exc_info: object) -> None:
        """Do not leave the committer running if this store dies anyway."""
        del exc_info
        if self._committer is not None:
            self._committer.stop(block=False)

    def on_stop(self) -> None:
        """Commit and answer what is held, refuse what is queued, close the journal."""
        m.refuse_queued(self.actor_inbox, ShuttingDown())
        self._commit_here()
        for watchers in self._watchers.values():
            for reply in watchers:
                m.answer(reply, RUNNING)
        self._watchers.clear()
        if self._committer is not None:
            self._committer.stop(block=True)
        self._journal.close()

    # --- jobs ------------------------------------------------------------------------------------

    def _register(self, message: m.RegisterJob) -> None:
        if len(self._pending) >= self._max_pending:
            limit = self._max_pending
            m.refuse(
                message.reply, Overloaded(f"too many jobs pending (at most {limit}); retry later")
            )
            return
        job_id = self._next_id
        try:
            self._journal.record_submitted(job_id, message.query)
        except OSError as exc:
            log.exception("cannot journal job %d", job_id)
            m.refuse(message.reply, StorageError(f"journal not writable ({exc.strerror or exc})"))
            return
        self._next_id += 1
        self._pending[job_id] = (message.query, message.worker.actor_urn)
        if not self._held:
            self._held_since = time.monotonic()
        self._held.append(m.HeldJob(message.reply, job_id, message.worker, message.query))

    def _done(self, message: m.JobDone) -> None:
        if message.job_id not in self._pending:
            log.warning("result for job %d, which is not running; ignored", message.job_id)
            return
        try:
            self._storage.save(message.job_id, message.result)
        except OSError as exc:
            log.exception("cannot save the result of job %d", message.job_id)
            self._fail(message.job_id, f"could not save the result: {exc.strerror or exc}")
            return
        del self._pending[message.job_id]
        self._notify(message.job_id, JobOutcome(JobStatus.DONE, message.result))
        self._compact_if_due()

    def _job_errored(self, message: m.JobErrored) -> None:
        if message.job_id not in self._pending:
            log.warning("failure of job %d, which is not running; ignored", message.job_id)
            return
        self._fail(message.job_id, message.reason)

    def _fail(self, job_id: int, reason: str) -> None:
        del self._pending[job_id]
        self._failed[job_id] = reason
        try:
            self._journal.record_failed(job_id, reason)
        except OSError:
            log.exception("cannot journal the failure of job %d", job_id)
        self._notify(job_id, JobOutcome(JobStatus.ERROR, reason=reason))

    def _notify(self, job_id: int, outcome: JobOutcome) -> None:
        for reply in self._watchers.pop(job_id, ()):
            m.answer(reply, outcome)
        if self._subscribers:
            self._finished.append((job_id, outcome))

    def _subscribe(self, message: m.Subscribe) -> None:
        self._subscribers.append(message.push)

    def _unsubscribe(self, message: m.Unsubscribe) -> None:
        if message.push in self._subscribers:
            self._subscribers.remove(message.push)

    def _publish_finished(self) -> None:
        batch, self._finished = tuple(self._finished), []
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

    def _outcome(self, job_id: int) -> JobOutcome:
        if job_id in self._pending:
            return RUNNING
        if (reason := self._failed.get(job_id)) is not None:
            return JobOutcome(JobStatus.ERROR, reason=reason)
        if not 1 <= job_id < self._next_id:
            raise UnknownJob(job_id)
        try:
            return JobOutcome(JobStatus.DONE, self._storage.load(job_id))
        except FileNotFoundError:
            return JobOutcome(JobStatus.ERROR, reason=f"the result file of job_id_{job_id} is gone")
        except OSError as exc:
            return JobOutcome(JobStatus.ERROR, reason=f"cannot read the result: {exc.strerror}")

    def _get_outcome(self, message: m.GetOutcome) -> None:
        try:
            m.answer(message.reply, self._outcome(message.job_id))
        except UnknownJob as exc:
            m.refuse(message.reply, exc)

    def _watch(self, message: m.WatchJob) -> None:
        if message.job_id in self._pending:
            self._watchers[message.job_id].append(message.reply)
        else:
            self._get_outcome(m.GetOutcome(message.job_id, message.reply))

    def _unwatch(self, message: m.Unwatch) -> None:
        watchers = self._watchers.get(message.job_id)
        if watchers is not None and message.reply in watchers:
            watchers.remove(message.reply)
            if not watchers:
                del self._watchers[message.job_id]

    def _list(self, message: m.ListJobs) -> None:
        pending, failed = self._pending, self._failed
        m.answer(
            message.reply,
            tuple(
                (
                    job_id,
                    JobStatus.RUNNING
                    if job_id in pending
                    else JobStatus.ERROR
                    if job_id in failed
                    else JobStatus.DONE,
                )
                for job_id in range(1, self._next_id)
            ),
        )

    def _count(self, message: m.CountPending) -> None:
        m.answer(message.reply, len(self._pending))

    # --- supervision, recovery, shutdown ---------------------------------------------------------

    def _reassign(self, message: m.Reassign) -> None:
        """Give the dead worker's jobs to its replacement, each only once durable.

        Jobs still held here are simply retargeted; the others leave from the committer, behind
        the commit that released them to the dead worker.
        """
        replacement, dead = message.replacement, message.dead
        self._held = [
            m.HeldJob(job.reply, job.job_id, replacement, job.query)
            if job.worker.actor_urn == dead
            else job
            for job in self._held
        ]
        held = {job.job_id for job in self._held}
        moved = []
        for job_id, (query, worker) in sorted(self._pending.items()):
            if worker == dead:
                self._pending[job_id] = (query, replacement.actor_urn)
                if job_id not in held:
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
            if job_id in self._pending:
                query = self._pending[job_id][0]
                self._pending[job_id] = (query, worker.actor_urn)
                send(worker, m.RunJob(job_id, query))

    def _take_recovered(self, message: m.TakeRecovered) -> None:
        recovered, self._recovered = self._recovered, ()
        m.answer(message.reply, recovered)

    def _forward_poison(self, message: m.ForwardPoison) -> None:
        """Release what is held, then let the committer send the poison behind it."""
        if self._held:
            self._release_held()
        if self._committer is None:
            for worker in message.workers:
                send(worker, m.Poison(message.poison.drained))
        else:
            self._committer.tell(message)

    def _engine_drained(self, message: m.EngineDrained) -> None:
        if self._pending:
            log.warning(
                "%d jobs unfinished at shutdown stay in the journal; they run at the next start",
                len(self._pending),
            )
        self._commit_here()
        self._compact()
        m.answer(message.drained, None)

    # --- journal ---------------------------------------------------------------------------------

    def _release_held(self) -> None:
        try:
            self._hand_over()
        except OSError:
            log.exception("cannot hand the journal to the committer; committing here")
            self._commit_here()

    def _hand_over(self) -> None:
        """Give the held replies to the committer, with a descriptor of the journal to sync."""
        fd = self._journal.duplicate_descriptor()
        if fd is None or self._committer is None:
            self._commit_here()
            return
        held, self._held = tuple(self._held), []
        self._journal.mark_committed()
        self._committer.tell(m.Commit(fd, held))

    def _commit_here(self) -> None:
        """Commit in this thread and answer what is held (at shutdown)."""
        held, self._held = tuple(self._held), []
        self._answer_after_commit(held)

    def _answer_after_commit(self, held: tuple[m.HeldJob, ...]) -> None:
        try:
            self._journal.commit()
        except OSError as exc:
            log.exception("journal commit failed")
            error = StorageError(f"journal not durable ({exc.strerror or exc})")
            for job in held:
                m.refuse(job.reply, error)
                if job.job_id in self._pending:
                    self._fail(job.job_id, f"refused: {error}")
            return
        release(held)

    def _unfinished(self) -> list[tuple[int, Query]]:
        return [(job_id, query) for job_id, (query, _) in sorted(self._pending.items())]

    def _compact_if_due(self) -> None:
        if self._journal.due_for_compaction(len(self._pending) + len(self._failed)):
            self._compact()

    def _compact(self) -> None:
        try:
            self._storage.sync()  # done jobs leave the journal: their results must be on disk
            self._journal.compact(self._next_id, self._unfinished(), self._failed)
        except OSError:
            log.exception("journal compaction failed; still appending to the old journal")

    _handlers: ClassVar[dict[type, Any]] = {
        m.RegisterJob: _register,
        m.JobDone: _done,
        m.JobErrored: _job_errored,
        m.GetOutcome: _get_outcome,
        m.WatchJob: _watch,
        m.Unwatch: _unwatch,
        m.ListJobs: _list,
        m.CountPending: _count,
        m.Subscribe: _subscribe,
        m.Unsubscribe: _unsubscribe,
        m.Reassign: _reassign,
        m.AssignJobs: _assign,
        m.TakeRecovered: _take_recovered,
        m.ForwardPoison: _forward_poison,
        m.EngineDrained: _engine_drained,
    }
