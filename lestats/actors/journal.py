"""The job journal: an accepted job is a line on disk before its id is answered.

Append-only JSON lines in the results directory. Durability: a job's line is written to the
operating system (`os.write` on an `O_APPEND` descriptor) at once, and forced to disk
(`fdatasync`) in a group commit before the job's id is answered: one `fdatasync` covers every
job accepted meanwhile, so throughput stays high while no accepted job can be lost, to a
process crash or a power failure.

On start the journal is replayed (a torn last line is skipped) and compacted: it then holds the
next id, the unfinished jobs and the failed ones, and nothing about done jobs, whose result files
speak for them. It is compacted again whenever it has grown well past that.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lestats.data.query import Query

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path


log = logging.getLogger(__name__)

COMPACT_AFTER_LINES = 10_000
"""Compact once this many lines (and four times the live records) were appended since the last."""


@dataclass
class JournalState:
    """What a replay found: ids already issued, jobs not finished, jobs failed."""

    next_id: int = 1
    unfinished: dict[int, Query] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    skipped_lines: int = 0


class Journal:
    """One results directory's journal file. Not thread-safe: its owner actor is its only user."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._unsynced = False
        self._appended = 0

    def replay(self) -> JournalState:
        """Read the journal as it is on disk (nothing if there is none)."""
        state = JournalState()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return state
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                _apply(state, json.loads(line))
            except (ValueError, KeyError, TypeError, OverflowError):
                state.skipped_lines += 1
                log.warning("%s: skipped a torn or unreadable line: %.80r", self.path, line)
        return state

    @property
    def unsynced(self) -> bool:
        """Whether lines were written since the last commit to disk."""
        return self._unsynced

    def due_for_compaction(self, live_records: int) -> bool:
        """Whether the file has grown well past what a compaction would keep."""
        return self._appended > max(COMPACT_AFTER_LINES, 4 * live_records)

    def record_submitted(self, job_id: int, query: Query) -> None:
        """Append an accepted job. Raises OSError if it cannot be written."""
        self._append(_submitted(job_id, query))

    def record_failed(self, job_id: int, reason: str) -> None:
        """Append a job's failure. Raises OSError if it cannot be written."""
        self._append({"failed": job_id, "reason": reason})

    def duplicate_descriptor(self) -> int | None:
        """A new descriptor of the journal file, for a committer to sync (and close) elsewhere."""
        return None if self._fd is None else os.dup(self._fd)

    def mark_committed(self) -> None:
        """Note that another thread is committing everything written so far."""
        self._unsynced = False

    def commit(self) -> None:
        """Force written lines to disk, in this thread."""
        if self._fd is not None and self._unsynced:
            os.fdatasync(self._fd)
            self._unsynced = False

    def compact(
        self, next_id: int, unfinished: Iterable[tuple[int, Query]], failed: Mapping[int, str]
    ) -> None:
        """Replace the file with only what a restart needs, atomically; then append to it.

        Raises OSError if the new file cannot be written; the old one is then still in use.
        """
        lines: list[dict[str, object]] = [{"next": next_id}]
        lines.extend(_submitted(job_id, query) for job_id, query in unfinished)
        lines.extend({"failed": job_id, "reason": reason} for job_id, reason in failed.items())
        temporary = self.path.with_name(self.path.name + ".tmp")
        payload = "".join(json.dumps(line) + "\n" for line in lines).encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
            temporary.replace(self.path)
        except OSError:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        _sync_directory(self.path.parent)
        self.close()
        self._fd = fd
        self._appended = 0
        self._unsynced = False

    def close(self) -> None:
        """Commit and close the file."""
        if self._fd is not None:
            try:
                self.commit()
            finally:
                os.close(self._fd)
                self._fd = None

    def _append(self, record: dict[str, object]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, (json.dumps(record) + "\n").encode())
        self._unsynced = True
        self._appended += 1


def _submitted(job_id: int, query: Query) -> dict[str, object]:
    return {"job": job_id, "query": query.to_json()}


def _apply(state: JournalState, record: dict[str, object]) -> None:
    if "next" in record:
        state.next_id = max(state.next_id, int(record["next"]))  # type: ignore[call-overload]
    elif "job" in record:
        job_id = int(record["job"])  # type: ignore[call-overload]
        state.unfinished[job_id] = _query(record)
        state.next_id = max(state.next_id, job_id + 1)
    elif "failed" in record:
        job_id = int(record["failed"])  # type: ignore[call-overload]
        state.unfinished.pop(job_id, None)
        state.failed[job_id] = str(record["reason"])
        state.next_id = max(state.next_id, job_id + 1)
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


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
