"""How to make a compaction's result files durable, syncing only ours: wall and CPU per file.

`python -m bench.bench_sync [--files 3000 10000] [--dir /work/tmp] [--foreign-mb 256]`
creates, for every method and every count, that many fresh result files (a few hundred bytes
each, written to a temporary name and renamed, as `ResultFiles.save` does) in a scratch
directory on a real disk (it refuses a tmpfs), then times making them durable:

- `fsync-seq`: an `fsync` per file, one after the other, then the directory's;
- `fsync-poolN`: the same `fsync`s from N threads (ext4's journal groups concurrent fsyncs into
  one commit);
- `wb+fdatasync-poolN`: `sync_file_range(SYNC_FILE_RANGE_WRITE)` on every file first (writeback
  started, no wait), then an `fdatasync` each from N threads, then the directory's `fsync`;
- `syncfs`: one `syncfs` of the directory's file system, the baseline (it also flushes every
  other program's dirty data on that file system).

Each line prints the wall time, the CPU time per file (this process, all threads but the loop
below), and the latency of a concurrent loop of 100-byte appends + `fdatasync` (a stand-in for
the journal's group commits, i.e. the job path) while the method runs. With `--foreign-mb`,
the last lines repeat `syncfs` and the best pool with that many MB of another file's dirty
data on the same file system: what "only ours" saves.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lestats.stores.journal import sync_directory

if TYPE_CHECKING:
    from collections.abc import Callable

RESULT = b'{"Alabama": 31.2, "Alaska": 29.8, "Arizona": 28.1, "Arkansas": 33.5}' * 4
SYNC_FILE_RANGE_WRITE = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _checked(result: int) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def syncfs(fd: int) -> None:
    """Linux's `syncfs(2)`."""
    _checked(_libc.syncfs(ctypes.c_int(fd)))


def start_writeback(fd: int) -> None:
    """`sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)`: start writing, do not wait."""
    _checked(
        _libc.sync_file_range(
            ctypes.c_int(fd),
            ctypes.c_int64(0),
            ctypes.c_int64(0),
            ctypes.c_uint(SYNC_FILE_RANGE_WRITE),
        )
    )


def make_files(directory: Path, count: int) -> list[str]:
    """`count` fresh result files, written and renamed like `ResultFiles.save`, not synced."""
    names = []
    for job_id in range(1, count + 1):
        final = f"{directory}/job_id_{job_id}.json"
        temporary = f"{directory}/.job_id_{job_id}.json.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, RESULT)
        finally:
            os.close(fd)
        os.replace(temporary, final)  # noqa: PTH105 - as ResultFiles.save does
        names.append(final)
    return names


def _each(names: list[str], function: Callable[[int], None]) -> None:
    for name in names:
        fd = os.open(name, os.O_RDONLY)
        try:
            function(fd)
        finally:
            os.close(fd)


def fsync_sequential(directory: Path, names: list[str]) -> None:
    """An `fsync` per file, one after the other, then the directory's."""
    _each(names, os.fsync)
    sync_directory(directory)


def fsync_pool(threads: int, *, writeback_first: bool) -> Callable[[Path, list[str]], None]:
    """`fsync`s from `threads` threads (or writeback started, then `fdatasync`s), then the dir."""

    def method(directory: Path, names: list[str]) -> None:
        if writeback_first:
            _each(names, start_writeback)
        sync = os.fdatasync if writeback_first else os.fsync
        chunks = [names[i::threads] for i in range(threads)]
        with ThreadPoolExecutor(threads) as pool:
            for done in [pool.submit(_each, chunk, sync) for chunk in chunks]:
                done.result()
        sync_directory(directory)

    return method


def whole_file_system(directory: Path, _names: list[str]) -> None:
    """One `syncfs` of `directory`'s file system: ours and everybody else's dirty data."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syncfs(fd)
    finally:
        os.close(fd)


class JobPath(threading.Thread):
    """Appends 100 bytes + `fdatasync` in a loop, recording each one's latency."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.latencies: list[float] = []
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._stopping = threading.Event()

    def run(self) -> None:
        """Append and sync until `finish`."""
        while not self._stopping.is_set():
            start = time.perf_counter()
            os.write(self._fd, b"x" * 99 + b"\n")
            os.fdatasync(self._fd)
            self.latencies.append(time.perf_counter() - start)

    def cpu_seconds(self) -> float:
        """The CPU time the loop's thread has used so far (read from another thread)."""
        if self.ident is None:
            return 0.0
        return time.clock_gettime(time.pthread_getcpuclockid(self.ident))

    def finish(self) -> None:
        """Stop the loop and close the file."""
        self._stopping.set()
        self.join()
        os.close(self._fd)


@dataclass(frozen=True, slots=True)
class Figures:
    """One timed run."""

    wall: float
    cpu_per_file: float
    job_p50: float
    job_max: float
    job_commits: int


def measure(
    scratch: Path, count: int, method: Callable[[Path, list[str]], None], foreign_mb: int = 0
) -> Figures:
    """Time `method` on `count` fresh files, with the job path's loop running beside it."""
    directory = Path(tempfile.mkdtemp(dir=scratch))
    try:
        whole_file_system(scratch, [])  # start from a clean file system
        names = make_files(directory, count)
        foreign = scratch / "foreign.bin"
        if foreign_mb:
            with foreign.open("wb") as file:  # another program's dirty data, not synced
                for _ in range(foreign_mb):
                    file.write(os.urandom(1 << 20))
        job_path = JobPath(directory / "journal")
        job_path.start()
        while not job_path.latencies:
            time.sleep(0.001)
        loop_cpu = job_path.cpu_seconds()
        cpu, wall = time.process_time(), time.perf_counter()
        method(directory, names)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cpu -= job_path.cpu_seconds() - loop_cpu  # the loop beside it is not the method's
        job_path.finish()
        foreign.unlink(missing_ok=True)
        latencies = job_path.latencies
        return Figures(
            wall, cpu / count, statistics.median(latencies), max(latencies), len(latencies)
        )
    finally:
        shutil.rmtree(directory)


def main() -> None:
    """Every method on every count, then the foreign-data runs; prints one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--dir", type=Path, default=Path("/work/tmp"), help="scratch on a disk")
    parser.add_argument("--threads", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--foreign-mb", type=int, default=256, help="0: skip that part")
    options = parser.parse_args()
    options.dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=options.dir, prefix="bench_sync."))
    try:
        if _is_tmpfs(scratch):
            raise SystemExit(f"{scratch} is a tmpfs: fsync is free there, pick a disk")
        methods: dict[str, Callable[[Path, list[str]], None]] = {"fsync-seq": fsync_sequential}
        for threads in options.threads:
            methods[f"fsync-pool{threads}"] = fsync_pool(threads, writeback_first=False)
            methods[f"wb+fdatasync-pool{threads}"] = fsync_pool(threads, writeback_first=True)
        methods["syncfs"] = whole_file_system
        print(f"scratch {scratch}; job path = 100-byte append + fdatasync loop beside the sync")
        print(
            f"{'method':24} {'files':>6} {'wall ms':>9} {'cpu us/file':>12}"
            f" {'job p50 ms':>11} {'job max ms':>11} {'job commits':>12}"
        )
        best: dict[int, tuple[float, str]] = {}
        for count in options.files:
            for name, method in methods.items():
                figures = measure(scratch, count, method)
                _print(name, count, figures)
                if name.startswith(("fsync-pool", "wb+")):
                    best[count] = min(best.get(count, (float("inf"), "")), (figures.wall, name))
        if options.foreign_mb:
            for count in options.files:
                for name in ("syncfs", best[count][1]):
                    figures = measure(scratch, count, methods[name], options.foreign_mb)
                    _print(f"{name} +{options.foreign_mb}MB", count, figures)
    finally:
        shutil.rmtree(scratch)


def _is_tmpfs(path: Path) -> bool:
    """Whether `path` is on a tmpfs (its mount's type, from /proc/self/mounts)."""
    best, kind = Path("/"), ""
    resolved = path.resolve()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if resolved.is_relative_to(mount) and len(mount) >= len(str(best)):
            best, kind = Path(mount), fstype
    return kind == "tmpfs"


def _print(name: str, count: int, figures: Figures) -> None:
    print(
        f"{name:24} {count:>6} {figures.wall * 1e3:>9.0f} {figures.cpu_per_file * 1e6:>12.1f}"
        f" {figures.job_p50 * 1e3:>11.2f} {figures.job_max * 1e3:>11.1f} {figures.job_commits:>12}",
        flush=True,
    )


if __name__ == "__main__":
    main()
