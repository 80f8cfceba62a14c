"""`FileStore`: a journal and one JSON file per result in a directory, one owner at a time.

The server's default store. What it promises (see `base`): an id is answered only once its
journal line is on disk (the group commit of `commit_barrier`); a result file is complete or
absent; a power failure loses nothing answered. At `open` it takes the directory's lock, reads
the journal and the file names, trusts none of them blindly (ids validated and bounded, files
above the journal's next id ignored as strays, the results of unfinished jobs read back as JSON)
and rewrites the journal (compaction) so that it holds only what a restart needs.

Compaction also runs every 10,000 lines or so. Done jobs leave the journal then, so their
result files must be on disk first: a thread of the store's own syncs the files written since
the last compaction (an `fsync` each, concurrently, then their directory's: those files only,
never `syncfs` or `os.sync`, never on the owner's thread), and the journal is rewritten once it
is done; jobs finished after that sync began stay unfinished in the new journal (a restart finds
their files, or runs them again).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus
from lestats.errors import StorageError
from lestats.stores import journal as records
from lestats.stores.base import Recovered
from lestats.stores.journal import Journal, JournalState, SubmittedLines
from lestats.stores.lock import DirectoryLock
from lestats.stores.oserrors import storage_error
from lestats.stores.result_files import NotAResult, ResultFiles
from lestats.stores.table import (
    DONE,
    EXPIRED,
    FAILED,
    GONE,
    UNFINISHED,
    UNISSUED,
    JobTable,
    TableViews,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lestats.data.query import Query
    from lestats.stores.base import Retention
    from lestats.stores.journal import Write

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
DEFAULT_CACHE_BYTES = 16 << 20

COMPACT_AFTER_LINES = 10_000
"""Compact once this many lines (and four times the live records) were appended since the last."""
MAX_TABLE_IDS = 1 << 30
"""At most this many ids between the floor and the next id (a byte each in memory): a journal
that claims more is refused at open rather than allowed to eat the memory."""
MAX_ADOPTION_GAP = 1 << 16
"""With no journal (or a damaged one), result files above the ids it issued are adopted in id
order while each is at most this far above the previous one; the rest are strays (ids are
issued one after another). With a whole journal, every file above its next id is a stray."""


class FileStore(TableViews):
    """The journal, result files and lock of one `directory`. See the module docstring.

    `write` replaces `os.write` for every write to the journal and the result files (tests pass
    one that fails or writes short).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        write: Write = os.write,
    ) -> None:
        self.directory = Path(directory)
        self._lock = DirectoryLock(self.directory)
        self._journal = Journal(self.directory / JOURNAL_NAME, write)
        self._submitted = SubmittedLines()
        self._files = ResultFiles(self.directory, cache_bytes, write)
        self._table = JobTable()
        self._written: list[int] = []
        """Ids whose result files were written since the last compaction's sync began."""
        self._sync: _ResultSync | None = None
        self._finished_in_sync: dict[int, Query] = {}
        """Jobs finished while a sync runs: unfinished in the journal that follows it."""
        self._open = False

    # --- life cycle ------------------------------------------------------------------------------

    def open(self, notify: Callable[[Sequence[int]], None] | None = None) -> Recovered:
        """Lock the directory, read and check what is there, compact the journal.

        Raises:
            StorageError: the directory is in use, is not a directory, or cannot be read.
        """
        del notify  # one process per directory: nobody else finishes our jobs
        if self.directory.is_symlink() or (self.directory.exists() and not self.directory.is_dir()):
            raise StorageError(f"{self.directory} is not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot use {self.directory} for results: {exc.strerror}") from exc
        self._lock.acquire()
        try:
            recovered = self._load()
        except BaseException:
            self._lock.release()
            raise
        self._open = True
        return recovered

    def _load(self) -> Recovered:
        try:
            state = self._journal.replay()
            file_ids = self._files.scan()
        except OSError as exc:
            raise StorageError(f"cannot read {self._journal.path}: {exc.strerror}") from exc
        table, found_done, ignored = _build_table(state, file_ids, self._files)
        self._table = table
        recovered = tuple(sorted(table.unfinished.items()))
        try:
            # Journaled jobs whose results were saved leave the journal: their files first.
            self._files.sync(found_done)
            self._journal.compact(self._compacted())
        except OSError as exc:  # a full disk, say: the old journal still says all there is
            log.warning("%s: cannot compact the journal now (%s)", self.directory, exc.strerror)
        if recovered or state.skipped_lines or ignored:
            log.info(
                "%s: %d unfinished jobs to run again, %d journal lines skipped, %d files ignored",
                self.directory,
                len(recovered),
                state.skipped_lines,
                ignored,
            )
        return Recovered(recovered, state.skipped_lines + ignored)

    def close(self) -> None:
        """Sync the results, compact the journal, release the lock. Idempotent."""
        if not self._open:
            return
        self._open = False
        try:
            if self._sync is not None:
                self._finish_compaction(wait=True)
            self._files.sync(self._written)
            self._written = []
            self._journal.compact(self._compacted())
        except OSError:
            log.exception("%s: final compaction failed; the journal stays as is", self.directory)
        finally:
            try:
                self._journal.close()
            finally:
                self._files.close()
                self._lock.release()

    # --- jobs ------------------------------------------------------------------------------------

    def accept(self, query: Query) -> int:
        """Journal the job under the next id (not yet durable: see `commit_barrier`)."""
        job_id = self._table.next_id
        try:
            self._journal.append(self._submitted.line(job_id, query))
        except OSError as exc:
            raise storage_error(exc, "journal not writable") from exc
        return self._table.issue(query)

    def commit_barrier(self) -> Callable[[], None] | None:
        """A callable that forces the journal to disk (see `Journal.barrier`)."""
        try:
            return self._journal.barrier()
        except OSError as exc:
            raise storage_error(exc, "journal not durable") from exc

    def complete(self, job_id: int, result: bytes) -> bool:
        """Save the result file, then mark the job done."""
        table = self._table
        if table.code(job_id) != UNFINISHED:
            return False
        try:
            self._files.save(job_id, result)
        except OSError as exc:
            raise storage_error(exc, "could not save the result") from exc
        if self._sync is not None:
            self._finished_in_sync[job_id] = table.unfinished[job_id]
        table.finish(job_id)
        self._written.append(job_id)
        self._compact_if_due()
        return True

    def fail(self, job_id: int, reason: str) -> bool:
        """Journal the failure, then mark the job failed."""
        table = self._table
        if table.code(job_id) != UNFINISHED:
            return False
        try:
            self._journal.append(records.failed(job_id, reason))
        except OSError as exc:
            raise storage_error(exc, "journal not writable") from exc
        table.finish(job_id, reason)
        self._compact_if_due()
        return True

    def outcome(self, job_id: int) -> JobOutcome:
        """The job's outcome; a done job's result is read (and checked) from its file."""
        outcome = self._table.outcome(job_id)
        if outcome is not None:
            return outcome
        try:
            return JobOutcome(JobStatus.DONE, self._files.load(job_id))
        except FileNotFoundError:
            self._table.mark_gone(job_id)
        except NotAResult as exc:
            self._table.mark_gone(job_id, f"the result of job_id_{job_id} is unusable: {exc}")
        except OSError as exc:  # not recorded: it may pass (no free descriptor, say)
            return JobOutcome(JobStatus.ERROR, reason=f"cannot read the result: {exc.strerror}")
        outcome = self._table.outcome(job_id)
        return RUNNING if outcome is None else outcome

    # --- retention -------------------------------------------------------------------------------

    def forget(self, job_id: int) -> bool:
        """Forget a finished job: journal it, delete its result file."""
        if self._table.code(job_id) not in {DONE, FAILED, GONE}:
            return False
        self._forget([job_id])
        return True

    def expire(self, retention: Retention) -> list[int]:
        """Forget what `retention` no longer keeps; the ids forgotten."""
        expired = self._table.expired_by(retention, self._files.finished_at)
        if expired:
            self._forget(expired)
        return expired

    def _forget(self, job_ids: list[int]) -> None:
        try:
            self._journal.append(records.line({"expired": _ranges(job_ids)}))
        except OSError as exc:
            self._table.retry_expiry(job_ids)
            raise storage_error(exc, "journal not writable") from exc
        for job_id in job_ids:
            self._table.expire(job_id)
            try:
                self._files.remove(job_id)
            except OSError:
                log.warning("cannot delete the result file of forgotten job %d", job_id)
        self._compact_if_due()

    # --- compaction ------------------------------------------------------------------------------

    def _compact_if_due(self) -> None:
        if self._sync is not None:
            if self._sync.done():
                self._finish_compaction(wait=False)
            return
        if self._journal.appended <= COMPACT_AFTER_LINES:
            return
        live = len(self._table.unfinished) + len(self._table.reasons)
        if self._journal.appended > 4 * live:
            self._sync = _ResultSync(self._files, self._written)
            self._written = []

    def _finish_compaction(self, *, wait: bool) -> None:
        sync, self._sync = self._sync, None
        if sync is None:
            return
        if wait:
            sync.join()
        finished, self._finished_in_sync = self._finished_in_sync, {}
        if sync.error is not None:
            log.error("cannot sync result files (%s); the journal keeps their jobs", sync.error)
            self._written = sync.job_ids + self._written
            return
        try:
            self._journal.compact(self._compacted(finished))
        except OSError:
            log.exception("journal compaction failed; still appending to the old journal")

    def _compacted(self, finished_in_sync: dict[int, Query] | None = None) -> list[bytes]:
        """The lines of a journal holding only what a restart needs."""
        table = self._table
        lines = [records.line({"next": table.next_id})]
        if table.floor > 1:
            lines.append(records.line({"floor": table.floor}))
        unfinished = dict(table.unfinished)
        unfinished.update(
            (job_id, query)
            for job_id, query in (finished_in_sync or {}).items()
            if table.code(job_id) == DONE
        )
        lines.extend(self._submitted.line(i, query) for i, query in sorted(unfinished.items()))
        lines.extend(records.failed(job_id, reason) for job_id, reason in table.reasons.items())
        expired = [list(run) for run in table.unlisted()]
        if expired:
            lines.append(records.line({"expired": expired}))
        return lines


class _ResultSync:
    """Fsyncs result files in a daemon thread of its own, off the store owner's thread."""

    def __init__(self, files: ResultFiles, job_ids: list[int]) -> None:
        self.job_ids = job_ids
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(files,), name="FileStoreSync")
        self._thread.daemon = True
        self._thread.start()

    def _run(self, files: ResultFiles) -> None:
        try:
            files.sync(self.job_ids)
        except OSError as exc:
            self.error = exc

    def done(self) -> bool:
        """Whether the sync is over (then `error` says how it went)."""
        return not self._thread.is_alive()

    def join(self) -> None:
        """Wait until the sync is over."""
        self._thread.join()


def _build_table(
    state: JournalState, file_ids: Sequence[int], files: ResultFiles
) -> tuple[JobTable, list[int], int]:
    """The table that the journal and the file names make together.

    Returns it, the ids the journal thought unfinished whose results were found (to sync before
    the journal forgets them), and how many files were ignored.
    """
    floor = min(state.floor, state.next_id)
    issued = state.next_id if state.found else 1
    next_id = issued
    if not state.found or state.skipped_lines:
        # No journal, or a damaged one (its "next" line may be what was lost): the result files
        # may know of later ids, and issuing those again would serve one job's data to another.
        next_id = _adopted_next_id(file_ids, issued)
    if next_id - floor > MAX_TABLE_IDS:
        raise StorageError(
            f"{files.directory}: the journal says {next_id - floor} ids are live, more than the"
            f" {MAX_TABLE_IDS} a store holds; refusing to guess"
        )
    # An id the journal issued without a file or a record is a done job whose file is gone; one
    # known only from the files around it (adopted) was maybe never issued.
    table = JobTable(next_id, floor, UNISSUED)
    table.codes[: max(issued - floor, 0)] = bytes([GONE]) * max(issued - floor, 0)
    strays = _mark_files(table, file_ids, files)
    _mark_records(table, state, files)
    found_done = []
    for job_id, query in sorted(state.unfinished.items()):
        code = table.code(job_id)
        if job_id < floor or code in {EXPIRED, FAILED}:
            continue
        if code == DONE and files.valid(job_id):
            found_done.append(job_id)
        else:
            table.set(job_id, UNFINISHED)
            table.unfinished[job_id] = query
    if strays:
        log.warning(
            "%s: %d result files are not this store's (ids at or above %d, e.g. job_id_%d.json);"
            " ignored",
            files.directory,
            len(strays),
            next_id,
            strays[0],
        )
    return table, found_done, len(strays)


def _mark_files(table: JobTable, file_ids: Sequence[int], files: ResultFiles) -> list[int]:
    """Mark the ids with a result file done; the strays (ids not issued) found."""
    strays = []
    for job_id in file_ids:
        if job_id >= table.next_id:
            strays.append(job_id)
        elif job_id < table.floor:
            files.remove(job_id)  # forgotten before a crash, not yet deleted
        else:
            table.set(job_id, DONE)
    return strays


def _mark_records(table: JobTable, state: JournalState, files: ResultFiles) -> None:
    """Mark what the journal says: forgotten ranges, failed jobs."""
    for first, end in state.expired:
        for job_id in range(max(first, table.floor), min(end, table.next_id)):
            if table.code(job_id) == DONE:
                files.remove(job_id)
            table.set(job_id, EXPIRED)
    for job_id, reason in state.failed.items():
        if table.floor <= job_id < table.next_id and table.code(job_id) != EXPIRED:
            table.set(job_id, FAILED)
            table.reasons[job_id] = reason


def _adopted_next_id(file_ids: Sequence[int], next_id: int) -> int:
    """The next id after `next_id` and the result files adopted (see MAX_ADOPTION_GAP)."""
    for job_id in file_ids:
        if job_id < next_id:
            continue
        if job_id - next_id > MAX_ADOPTION_GAP:
            break
        next_id = job_id + 1
    return next_id


def _ranges(job_ids: list[int]) -> list[list[int]]:
    """Sorted ids as `[first, end)` runs."""
    runs: list[list[int]] = []
    for job_id in sorted(job_ids):
        if runs and runs[-1][1] == job_id:
            runs[-1][1] += 1
        else:
            runs.append([job_id, job_id + 1])
    return runs
