"""Where results live: one JSON file per done job, written atomically, read back on demand.

The ResultStore talks to storage only through `ResultStorage`, so serving one API from several
processes (results in a shared store such as Redis) means a second implementation of this
protocol and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Protocol

from lestats.actors.sized_cache import SizedCache

_RESULT_FILE = re.compile(r"job_id_([1-9][0-9]*)\.json")
_TEMPORARY_SUFFIX = ".tmp"


class ResultStorage(Protocol):
    """Durable results by job id. `save` must be atomic: a result is complete or absent."""

    def save(self, job_id: int, result: bytes) -> None:
        """Persist `result` (JSON bytes) for `job_id`; raises OSError when it cannot."""

    def load(self, job_id: int) -> bytes:
        """The saved result; raises FileNotFoundError if there is none (any more)."""
        ...

    def exists(self, job_id: int) -> bool:
        """Whether a complete result is saved for `job_id`."""
        ...

    def sync(self) -> None:
        """Make every saved result durable (before the journal forgets their jobs)."""

    def highest_id(self) -> int:
        """The highest job id with a saved result, 0 if none."""
        ...


class FileResultStorage:
    """`<directory>/job_id_N.json` holding exactly the job's data, with a bounded read cache.

    Files are written to a temporary name and renamed, so a reader (or a crash) never sees a
    partial file. A file deleted behind our back is reported as missing, never a crash; a cached
    copy may still be served for a while.
    """

    def __init__(self, directory: str | os.PathLike[str], cache_bytes: int = 16 << 20) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._prefix = f"{self.directory}{os.sep}"  # plain strings: pathlib costs on every job
        self._cache: SizedCache[int, bytes] = SizedCache(cache_bytes)
        for leftover in self.directory.glob(f".job_id_*{_TEMPORARY_SUFFIX}"):
            leftover.unlink(missing_ok=True)

    def path(self, job_id: int) -> Path:
        """The file of `job_id` (an int, so no caller-made text reaches the file system)."""
        return self.directory / f"job_id_{int(job_id)}.json"

    def save(self, job_id: int, result: bytes) -> None:
        """Write `result` to a temporary file, then rename it into place."""
        name = f"job_id_{int(job_id)}.json"
        final = self._prefix + name
        temporary = f"{self._prefix}.{name}{_TEMPORARY_SUFFIX}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(result)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temporary, final)  # noqa: PTH105 - str paths on the hot path
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)  # noqa: PTH108
            raise
        self._cache.put(job_id, result)

    def load(self, job_id: int) -> bytes:
        """The result bytes, from the cache or the file."""
        cached = self._cache.get(job_id)
        if cached is not None:
            return cached
        with open(f"{self._prefix}job_id_{int(job_id)}.json", "rb") as file:  # noqa: PTH123
            result = file.read()
        self._cache.put(job_id, result)
        return result

    def exists(self, job_id: int) -> bool:
        """Whether the result file of `job_id` is there and complete (valid JSON).

        Result files are renamed into place without an fsync each; after a power failure one
        may be there but empty. Such a file does not count, so its job runs again.
        """
        try:
            json.loads(self.path(job_id).read_bytes())
        except (OSError, ValueError):
            return False
        return True

    def sync(self) -> None:
        """Flush the file system's writes to disk (result files are not fsynced one by one).

        Called before the journal is compacted, which is when done jobs leave it: rare (every
        10,000 jobs or so, and at start and stop), so one global `sync` is cheaper than an
        `fsync` per result.
        """
        os.sync()

    def highest_id(self) -> int:
        """The highest N among `job_id_N.json` files in the directory."""
        highest = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if match := _RESULT_FILE.fullmatch(entry.name):
                    highest = max(highest, int(match.group(1)))
        return highest
