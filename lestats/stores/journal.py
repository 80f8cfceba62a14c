"""The job journal of a `FileStore`: an accepted job is a line on disk before its id is answered.

Append-only JSON lines. A job's line is written to the operating system at once (`write` on an
`O_APPEND` descriptor) and forced to disk (`fdatasync`) by a group commit before the job's id is
answered: one `fdatasync` covers every job accepted meanwhile.

Every write writes all its bytes or fails: a short write is continued, and an append that cannot
be finished is cut back to the last whole line (`ftruncate`), so a full disk never leaves a
fragment for the next line to be glued to. A compaction writes the whole new journal to a
temporary file, syncs it and only then renames it over the old one; if anything fails, the old
journal stays in use.

Records: `{"next": N}` (ids below N were issued), `{"floor": F}` (ids below F are forgotten),
`{"job": id, "query": {...}}` (accepted), `{"failed": id, "reason": "..."}`, and
`{"expired": [[first, end], ...]}` (forgotten ranges). Done jobs are not recorded: their result
files speak for them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lestats.actors.jobs import MAX_JOB_ID
from lestats.data.query import Query

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    Write = Callable[[int, bytes | memoryview], int]

log = logging.getLogger(__name__)


@dataclass
class JournalState:
    """What a replay found. `found` is False when there was no journal file at all."""

    next_id: int = 1
    floor: int = 1
    unfinished: dict[int, Query] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    expired: list[tuple[int, int]] = field(default_factory=list)
    skipped_lines: int = 0
    found: bool = False


def write_all(write: Write, fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd`, continuing after short writes.

    Raises:
        OSError: a write failed or wrote nothing (ENOSPC); some bytes may have been written.
    """
    written = write(fd, data)
    if written == len(data):  # nearly always: one call, no view
        return
    if written <= 0:
        raise OSError(28, "No space left on device (a write wrote nothing)")
    view = memoryview(data)[written:]
    while view:
        written = write(fd, view)
        if written <= 0:
            raise OSError(28, "No space left on device (a write wrote nothing)")
        view = view[written:]


class Journal:
    """One results directory's journal file. Not thread-safe: its owner store is its only user.

    `write` is `os.write` unless a test passes a faulty one.
    """

    def __init__(self, path: Path, write: Write = os.write) -> None:
        self.path = path
        self._write = write
        self._fd: int | None = None
        self._size = 0
        """The file's length up to its last whole line."""
        self._unsynced = False
        self._torn = False
        """A failed append could not be cut back yet."""
        self.appended = 0
        """Lines appended since the last compaction."""

    def replay(self) -> JournalState:
        """Read the journal as it is on disk; lines that make no sense are counted and skipped.

        Raises:
            OSError: the journal exists but cannot be read (a directory, a symlink, ...).
        """
        state = JournalState()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return state
        with os.fdopen(fd, "rb") as file:
            data = file.read()
        state.found = True
        first_bad = b""
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                _apply(state, json.loads(line))
            except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
                state.skipped_lines += 1
                first_bad = first_bad or line
        if state.skipped_lines:
            log.warning(
                "%s: skipped %d torn or unreadable lines (the first: %.80r)",
                self.path,
                state.skipped_lines,
                first_bad,
            )
        return state

    def append(self, line: bytes) -> None:
        """Append one record (a JSON line ending in a newline), all of it or nothing.

        Raises:
            OSError: it could not be written; the file is cut back to its last whole line.
        """
        fd = self._open()
        try:
            write_all(self._write, fd, line)
        except OSError:
            self._cut_back(fd)
            raise
        self._size += len(line)
        self._unsynced = True
        self.appended += 1

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
            size = os.fstat(fd).st_size
            self._fd, self._size = fd, size
        elif self._torn:
            self._cut_back(self._fd)  # an earlier cut-back failed: try again before appending
        return self._fd

    def _cut_back(self, fd: int) -> None:
        self._torn = True
        try:
            os.ftruncate(fd, self._size)
        except OSError:
            log.exception("%s: cannot cut a failed append back; trying at the next one", self.path)
            raise
        self._torn = False

    @property
    def unsynced(self) -> bool:
        """Whether lines were written since the last commit to disk."""
        return self._unsynced

    def barrier(self) -> Callable[[], None] | None:
        """A callable forcing everything written so far to disk, for another thread; or None.

        Holds a duplicate of the descriptor, closed once the callable has run. If no descriptor
        can be had, commits here instead and returns None.

        Raises:
            OSError: the commit here failed.
        """
        if self._fd is None or not self._unsynced:
            return None
        self._unsynced = False
        try:
            fd = os.dup(self._fd)
        except OSError:
            log.exception("no descriptor for the committer; committing here")
            os.fdatasync(self._fd)
            return None

        def commit() -> None:
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)

        return commit

    def commit(self) -> None:
        """Force written lines to disk, in this thread."""
        if self._fd is not None and self._unsynced:
            os.fdatasync(self._fd)
            self._unsynced = False

    def compact(self, lines: list[bytes]) -> None:
        """Replace the file with `lines`, atomically; then append to it.

        Raises:
            OSError: the new file could not be written whole; the old one is still in use.
        """
        temporary = self.path.with_name(self.path.name + ".tmp")
        payload = b"".join(lines)
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW, 0o644
        )
        try:
            write_all(self._write, fd, payload)
            os.fsync(fd)
            temporary.replace(self.path)
        except OSError:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        sync_directory(self.path.parent)
        self.close()
        self._fd, self._size = fd, len(payload)
        self.appended = 0
        self._unsynced = False

    def close(self) -> None:
        """Commit and close the file."""
        if self._fd is not None:
            try:
                self.commit()
            finally:
                os.close(self._fd)
                self._fd = None


def line(record: dict[str, object]) -> bytes:
    """A record as a journal line."""
    return (json.dumps(record) + "\n").encode()


def submitted(job_id: int, query: Query) -> bytes:
    """The line of an accepted job."""
    return line({"job": job_id, "query": query.to_json()})


ENCODED_QUERIES = 4096
"""Queries whose JSON a `SubmittedLines` keeps (a job mix repeats a few thousand at most)."""


class SubmittedLines:
    """`submitted` for a store's hot path: each distinct query is encoded to JSON once.

    Clients ask the same few thousand queries again and again; encoding one costs more than
    the rest of its line. The lines are byte for byte those of `submitted`. Bounded: past
    `ENCODED_QUERIES` distinct queries it starts afresh. Queries with `params` are encoded every
    time (`1` and `1.0` are equal keys but not the same JSON). Used by one thread (its store's).
    """

    def __init__(self) -> None:
        self._encoded: dict[Query, bytes] = {}

    def line(self, job_id: int, query: Query) -> bytes:
        """The line of an accepted job, as `submitted` makes it."""
        if query.params:
            return submitted(job_id, query)
        encoded = self._encoded.get(query)
        if encoded is None:
            encoded = json.dumps(query.to_json()).encode()
            if len(self._encoded) >= ENCODED_QUERIES:
                self._encoded.clear()
            self._encoded[query] = encoded
        return b'{"job": %d, "query": %s}\n' % (job_id, encoded)


def failed(job_id: int, reason: str) -> bytes:
    """The line of a failed job."""
    return line({"failed": job_id, "reason": reason})


def _job_id(value: object) -> int:
    """A job id read from disk: an int (not a bool, not a float) in [1, MAX_JOB_ID)."""
    if type(value) is not int or not 1 <= value < MAX_JOB_ID:
        raise ValueError(f"not a job id: {value!r:.40}")
    return value


def _apply(state: JournalState, record: dict[str, object]) -> None:
    if "next" in record:
        value = record["next"]
        if type(value) is not int or not 1 <= value <= MAX_JOB_ID:
            raise ValueError(f"not a next id: {value!r:.40}")
        state.next_id = max(state.next_id, value)
    elif "floor" in record:
        state.floor = max(state.floor, _job_id(record["floor"]))
    elif "job" in record:
        job_id = _job_id(record["job"])
        state.unfinished[job_id] = _query(record)
        state.next_id = max(state.next_id, job_id + 1)
    elif "failed" in record:
        job_id = _job_id(record["failed"])
        reason = record["reason"]
        if not isinstance(reason, str):
            raise TypeError("reason is not a string")
        state.unfinished.pop(job_id, None)
        state.failed[job_id] = reason
        state.next_id = max(state.next_id, job_id + 1)
    elif "expired" in record:
        ranges = record["expired"]
        if not isinstance(ranges, list):
            raise TypeError("expired is not a list")
        state.expired.extend((_job_id(first), _job_id(end - 1) + 1) for first, end in ranges)
    else:
        raise KeyError("no record type")


def _query(record: dict[str, object]) -> Query:
    """The job's query: `{"query": ...}`, or the flat fields journals written before it had one."""
    if "query" in record:
        return Query.from_json(record["query"])
    state = record.get("state")
    return Query(
        str(record["endpoint"]), str(record["question"]), None if state is None else str(state)
    )


def sync_directory(directory: Path) -> None:
    """Make renames and new names in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
