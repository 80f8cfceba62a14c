"""The ResultStore actor: the one owner of job state — ids, statuses, result files, the journal.

Job state stays small in memory: the unfinished jobs (bounded by the pending limit) and the
failed ones with their reasons. Every other issued id is done, and its result is on disk.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any, ClassVar

import pykka

from lestats.actors import messages as m
from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus
from lestats.errors import Overloaded, StorageError, UnknownJob

if TYPE_CHECKING:
    from concurrent.futures import Future

    from lestats.actors.journal import Journal
    from lestats.actors.storage import ResultStorage
    from lestats.data.query import Query

log = logging.getLogger(__name__)


class ResultStore(pykka.ThreadingActor):
    """Assigns ids, journals accepted jobs, persists results, answers every status question.

    A result is saved before its job reads `done`; a job that cannot be saved ends `error`. The
    journal is committed to disk whenever the mailbox runs empty (group commit). Its handlers
    never raise: a request that cannot be served is refused on its `reply`.
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
        self._pending: dict[int, tuple[Query, str]] = {}
        self._recovered: tuple[m.QueuedJob, ...] = ()
        self._watchers: defaultdict[int, list[Future[JobOutcome]]] = defaultdict(list)
        recovered = []
        for job_id, query in sorted(state.unfinished.items()):
            if not storage.exists(job_id):
                recovered.append((job_id, query))
                self._pending[job_id] = (query, "")
        self._recovered = tuple(recovered)
        journal.compact(self._next_id, self._recovered, self._failed)
        if recovered or state.skipped_lines:
            log.info(
                "journal replayed: %d unfinished jobs to run again, %d unreadable lines skipped",
                len(recovered),
                state.skipped_lines,
            )

    def on_receive(self, message: Any) -> None:  # noqa: ANN401 - any message may arrive
        """Handle one message, then commit the journal if nothing else is waiting."""
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
        if self._journal.unsynced and self.actor_inbox.empty():
            self._commit()

    def on_stop(self) -> None:
        """Commit and close the journal; whoever still waits on a job hears it is running."""
        for watchers in self._watchers.values():
            for reply in watchers:
                m.answer(reply, RUNNING)
        self._watchers.clear()
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
        self._pending[job_id] = (message.query, message.worker)
        m.answer(message.reply, job_id)

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

    def _job_failed(self, message: m.JobFailed) -> None:
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
        if message.crashed_job in self._pending:
            self._fail(message.crashed_job, f"the worker running it crashed: {message.reason}")
        moved = tuple(
            (job_id, query)
            for job_id, (query, worker) in sorted(self._pending.items())
            if worker == message.dead
        )
        for job_id, query in moved:
            self._pending[job_id] = (query, message.replacement)
        m.answer(message.reply, moved)

    def _assign(self, message: m.AssignJobs) -> None:
        for job_id, worker in message.assignments:
            if job_id in self._pending:
                self._pending[job_id] = (self._pending[job_id][0], worker)

    def _take_recovered(self, message: m.TakeRecovered) -> None:
        recovered, self._recovered = self._recovered, ()
        m.answer(message.reply, recovered)

    def _engine_drained(self, message: m.EngineDrained) -> None:
        if self._pending:
            log.warning(
                "%d jobs unfinished at shutdown stay in the journal; they run at the next start",
                len(self._pending),
            )
        self._commit()
        self._compact()
        m.answer(message.drained, None)

    # --- journal ---------------------------------------------------------------------------------

    def _commit(self) -> None:
        try:
            self._journal.commit()
        except OSError:
            log.exception("journal commit failed")

    def _compact_if_due(self) -> None:
        if self._journal.due_for_compaction(len(self._pending) + len(self._failed)):
            self._compact()

    def _compact(self) -> None:
        unfinished = [(job_id, query) for job_id, (query, _) in sorted(self._pending.items())]
        try:
            self._journal.compact(self._next_id, unfinished, self._failed)
        except OSError:
            log.exception("journal compaction failed; still appending to the old journal")

    _handlers: ClassVar[dict[type, Any]] = {
        m.RegisterJob: _register,
        m.JobDone: _done,
        m.JobFailed: _job_failed,
        m.GetOutcome: _get_outcome,
        m.WatchJob: _watch,
        m.ListJobs: _list,
        m.CountPending: _count,
        m.Reassign: _reassign,
        m.AssignJobs: _assign,
        m.TakeRecovered: _take_recovered,
        m.EngineDrained: _engine_drained,
    }
