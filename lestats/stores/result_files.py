"""Result files of a `FileStore`: `<directory>/job_id_N.json` holding exactly the job's data.

Files are written whole to a temporary name and renamed, so a reader (or a crash) never sees a
partial file. They are not synced as they are written (that would cost an `fsync` per job): the
store syncs the files written since its last compaction, in a thread of its own, before the
journal forgets their jobs (see `ResultFiles.sync`). Symlinks are never followed, only ids in
[1, MAX_JOB_ID) make a file name, and a file is served only once it reads as JSON.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import stat
from array import array
from typing import TYPE_CHECKING

from lestats.actors.jobs import MAX_JOB_ID
from lestats.actors.sized_cache import SizedCache
from lestats.stores.journal import sync_directory, write_all

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from lestats.stores.journal import Write

_RESULT_FILE = re.compile(r"job_id_([1-9][0-9]{0,17})\.json")
_TEMPORARY = re.compile(r"\.job_id_[1-9][0-9]{0,17}\.json\.tmp")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


class NotAResult(ValueError):  # noqa: N818 - it says what the file is
    """The file of a job is there but is not a result (not JSON, not a regular file)."""


class ResultFiles:
    """The result files of one directory, with a bounded read cache of valid results.

    Not thread-safe, except `sync`, which touches only files already written.
    """

    def __init__(self, directory: Path, cache_bytes: int, write: Write = os.write) -> None:
        self.directory = directory
        self._prefix = f"{directory}{os.sep}"  # plain strings: pathlib costs on every job
        self._cache: SizedCache[int, bytes] = SizedCache(cache_bytes)
        self._write = write

    def name(self, job_id: int) -> str:
        """The path of `job_id`'s file; refuses anything but an id in [1, MAX_JOB_ID)."""
        if type(job_id) is not int or not 1 <= job_id < MAX_JOB_ID:
            raise ValueError(f"not a job id: {job_id!r}")
        return f"{self._prefix}job_id_{job_id}.json"

    def save(self, job_id: int, result: bytes) -> None:
        """Write `result` to a temporary file, then rename it into place.

        Raises:
            OSError: nothing was saved (and no temporary file is left).
        """
        final = self.name(job_id)
        temporary = f"{self._prefix}.job_id_{job_id}.json.tmp"
        try:
            fd = os.open(temporary, _WRITE_FLAGS, 0o644)
            try:
                write_all(self._write, fd, result)
            finally:
                os.close(fd)
            os.replace(temporary, final)  # noqa: PTH105 - str paths on the hot path
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)  # noqa: PTH108
            raise
        self._cache.put(job_id, result)

    def load(self, job_id: int) -> bytes:
        """The result bytes, from the cache or the file.

        Raises:
            FileNotFoundError: there is no file.
            NotAResult: the file is not a regular file holding JSON (a symlink, say).
            OSError: it cannot be read.
        """
        cached = self._cache.get(job_id)
        if cached is not None:
            return cached
        result = self._read(job_id)
        self._cache.put(job_id, result)
        return result

    def _read(self, job_id: int) -> bytes:
        try:
            fd = os.open(self.name(job_id), _READ_FLAGS)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the name is a symlink
                raise NotAResult(f"job_id_{job_id}.json is a symlink") from None
            raise
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotAResult(f"job_id_{job_id}.json is not a regular file")
            result = file.read()
        try:
            json.loads(result)
        except (ValueError, RecursionError):
            raise NotAResult(f"job_id_{job_id}.json does not hold JSON") from None
        return result

    def valid(self, job_id: int) -> bool:
        """Whether a complete result (a regular file holding JSON) is saved for `job_id`.

        After a power failure a renamed file may be there but empty: it does not count.
        """
        try:
            self._read(job_id)
        except (OSError, ValueError):
            return False
        return True

    def remove(self, job_id: int) -> None:
        """Delete the result of `job_id`, if there is one."""
        self._cache.pop(job_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.name(job_id))  # noqa: PTH108

    def finished_at(self, job_id: int) -> float | None:
        """When the result was written (the file's mtime), None if there is no file."""
        try:
            return os.stat(self.name(job_id), follow_symlinks=False).st_mtime  # noqa: PTH116
        except OSError:
            return None

    def scan(self) -> array[int]:
        """The ids of the result files in the directory (sorted); leftover temporaries removed."""
        ids = array("q")
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if match := _RESULT_FILE.fullmatch(entry.name):
                    ids.append(int(match.group(1)))
                elif _TEMPORARY.fullmatch(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)  # noqa: PTH108
        return array("q", sorted(ids))

    def sync(self, job_ids: Iterable[int]) -> None:
        """Force the files of `job_ids` and the directory's names to disk.

        A few files: one `fsync` each, ours only. Many (a compaction's ten thousand): one
        `syncfs` of the results directory's file system, where Linux has it. Measured on this
        machine's ext4 disk for 3,000 result files: `fsync` each cost 40-60 us of CPU per file
        and 1.5-5.7 s, one journal commit per file; `syncfs` 1-2 us per file and 130-180 ms. The
        price of `syncfs` is that it also flushes other programs' writes to the same file system
        (never other file systems, as `os.sync` did); the store runs it in a thread of its own,
        so only its compaction waits for that, never a request. A file gone meanwhile
        (forgotten) needs nothing.

        Raises:
            OSError: a file, or the file system, could not be synced.
        """
        job_ids = list(job_ids)
        if len(job_ids) > FSYNC_AT_MOST and _syncfs is not None:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                _syncfs(fd)
            finally:
                os.close(fd)
            return
        for job_id in job_ids:
            try:
                fd = os.open(self.name(job_id), _READ_FLAGS)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        sync_directory(self.directory)


FSYNC_AT_MOST = 64
"""Up to this many files are synced one by one; more, with one `syncfs` (see `sync`)."""


def _load_syncfs() -> Callable[[int], None] | None:
    """Linux's `syncfs(2)` (the os module has none), or None where libc lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if function(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return syncfs


_syncfs = _load_syncfs()
