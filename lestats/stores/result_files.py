"""Result files of a `FileStore`: `<directory>/job_id_N.json` holding exactly the job's data.

Files are written whole before their name appears, so a reader (or a crash) never sees a partial
file: as an unnamed temporary file (`O_TMPFILE`) given its name by one `linkat` once written, or,
where the file system or the platform has no unnamed files (or the name is taken), under a
temporary name renamed into place. They are not synced as they are written (that would cost an
`fsync` per job): the store syncs the files written since its last compaction, those alone and
concurrently, in a thread of its own, before the journal forgets their jobs (see
`ResultFiles.sync`). Symlinks are never followed, only ids in [1, MAX_JOB_ID) make a file name,
and a file is served only once it reads as JSON.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from array import array
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from lestats.actors.jobs import MAX_JOB_ID
from lestats.actors.sized_cache import SizedCache
from lestats.stores.journal import sync_directory, write_all

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from lestats.stores.journal import Write

_RESULT_FILE = re.compile(r"job_id_([1-9][0-9]{0,17})\.json")
_TEMPORARY = re.compile(r"\.job_id_[1-9][0-9]{0,17}\.json\.tmp")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
_UNNAMED_FLAGS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
"""An unnamed file in a directory; O_TMPFILE is 0 where the platform has none (then unused)."""
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_UNNAMED_FILES = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT})
"""What opening an unnamed file, or linking it through /proc, answers where it cannot be done:
no O_TMPFILE in the kernel or the file system, or no /proc mounted."""


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
        self._directory_fd: int | None = None
        """The directory, opened at the first save: names relative to it cost no path walk."""
        self._unnamed = _UNNAMED_FLAGS != os.O_WRONLY | os.O_CLOEXEC
        """Whether unnamed files are tried; False once the file system turned one down."""

    def name(self, job_id: int) -> str:
        """The path of `job_id`'s file; refuses anything but an id in [1, MAX_JOB_ID)."""
        if type(job_id) is not int or not 1 <= job_id < MAX_JOB_ID:
            raise ValueError(f"not a job id: {job_id!r}")
        return f"{self._prefix}job_id_{job_id}.json"

    def save(self, job_id: int, result: bytes) -> None:
        """Write `result` whole, then give it its name (see the module docstring).

        An unnamed file costs a file system one directory operation, a temporary name and a
        rename two (`python -m bench.bench_result_save`, saves interleaved on this shared
        machine: 3 % less CPU per save on ext4 and on tmpfs), and a crash or a failed write
        leaves nothing behind. It cannot replace a file already there (a job
        that runs again after a crash): that one is renamed over it.

        Raises:
            OSError: nothing was saved (and no temporary file is left).
        """
        final = self.name(job_id)
        if not (self._unnamed and self._save_unnamed(job_id, result)):
            self._save_named(job_id, result, final)
        self._cache.put(job_id, result)

    def _save_unnamed(self, job_id: int, result: bytes) -> bool:
        """Save as an unnamed file linked into place; False if it must be done by name instead.

        Raises:
            OSError: the file could not be written or linked (nothing is left behind).
        """
        directory = self._directory()
        try:
            fd = os.open(".", _UNNAMED_FLAGS, 0o644, dir_fd=directory)
        except OSError as exc:
            if exc.errno not in _NO_UNNAMED_FILES:
                raise
            self._unnamed = False
            return False
        try:
            write_all(self._write, fd, result)
            os.link(
                f"/proc/self/fd/{fd}",
                f"job_id_{job_id}.json",
                dst_dir_fd=directory,
                follow_symlinks=True,
            )
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            if exc.errno in _NO_UNNAMED_FILES:
                self._unnamed = False
                return False
            raise
        finally:
            os.close(fd)
        return True

    def _save_named(self, job_id: int, result: bytes, final: str) -> None:
        """Write `result` to a temporary name, then rename it over `final`."""
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

    def _directory(self) -> int:
        """A descriptor of the directory, opened once."""
        if self._directory_fd is None:
            self._directory_fd = os.open(self.directory, _DIRECTORY_FLAGS)
        return self._directory_fd

    def close(self) -> None:
        """Close the directory's descriptor (a later save opens it again)."""
        fd, self._directory_fd = self._directory_fd, None
        if fd is not None:
            os.close(fd)

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
        """Force the files of `job_ids`, then the directory's names, to disk: ours only.

        One `fsync` per file, issued from up to `SYNC_THREADS` threads at once: ext4's journal
        commits concurrent fsyncs together, so a compaction's files cost a few commits, not one
        each. `python -m bench.bench_sync --threads 4 8 32`, this machine's ext4 disk: 10,000
        files one after the other 2.1 s, 118 us of CPU per file; from 8 threads 0.46 s, 46 us;
        from 32 threads 0.33 s, 43 us, but the journal's appends + `fdatasync` beside it waited
        twice as long (p50 0.50 against 0.24 ms, worst 3.4 against 1.0 ms). Where an fsync has
        nothing to wait for (tmpfs, or pages already written back) more threads only fight for
        the GIL: 5,000 files on tmpfs cost 17-22 us of CPU each from 32 threads, 4-6.5 from 8.
        `syncfs` is faster still (90 ms) but waits for every other program's dirty data: with
        256 MB of it on the file system, the journal's loop beside it waited up to 12-61 ms.
        Never `os.sync` or `syncfs`: others' writes are not ours to wait for, and the owner never
        waits for this sync, so its wall time matters less.
        The store calls this in a thread of its own, never its owner's. A file gone
        meanwhile (forgotten) needs nothing.

        Raises:
            OSError: a file, or the directory, could not be synced (every fsync begun is
                finished first).
        """
        names = [self.name(job_id) for job_id in job_ids]
        threads = min(SYNC_THREADS, len(names))
        if threads > 1:
            with ThreadPoolExecutor(threads, thread_name_prefix="ResultSync") as pool:
                syncs = [pool.submit(_fsync_each, names[i::threads]) for i in range(threads)]
            for done in syncs:
                done.result()
        else:
            _fsync_each(names)
        sync_directory(self.directory)


SYNC_THREADS = 8
"""At most this many fsyncs in flight at once (see `ResultFiles.sync` for the figures)."""


def _fsync_each(names: list[str]) -> None:
    """`fsync` each file of `names` that is still there."""
    for name in names:
        try:
            fd = os.open(name, _READ_FLAGS)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
