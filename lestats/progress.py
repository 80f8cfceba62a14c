"""A progress bar for reading a file, from outside the code that reads it.

Loading a 1,000,000-row file takes seconds and the loaders (csv module or pyarrow, plain or
gzipped) read it in their own ways. Rather than thread a callback through each of them, a
watcher thread finds the descriptor this process holds open on the file (same device and inode)
and reads its offset every tenth of a second, the way `pv --watchfd` follows another program:
bytes read out of the file's size. For a gzipped file that is the compressed bytes, which is
still the fraction done.

The bar is tqdm's (small, no dependencies, the ecosystem's usual choice; rich would bring
markdown-it-py and pygments for a bar) on stderr, and it stays silent unless stderr is a
terminal, so pipes and log files get no control characters.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm

if TYPE_CHECKING:
    from collections.abc import Iterator

INTERVAL = 0.1
"""Seconds between two looks at the file's offset."""

_FD_DIRS = ("/proc/self/fd", "/dev/fd")


def open_descriptor(device: int, inode: int) -> int | None:
    """A descriptor of this process open on the file (`device`, `inode`), if there is one."""
    for directory in _FD_DIRS:
        try:
            names = [entry.name for entry in Path(directory).iterdir()]
        except OSError:
            continue
        for name in names:
            with contextlib.suppress(ValueError, OSError):
                fd = int(name)
                found = os.fstat(fd)
                if (found.st_dev, found.st_ino) == (device, inode):
                    return fd
        return None
    return None


def offset(fd: int) -> int | None:
    """Where reading stands on `fd` (`lseek` to the current position moves nothing)."""
    try:
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 0


@contextlib.contextmanager
def reading(
    path: str | os.PathLike[str], description: str, stream: TextIO | None = None
) -> Iterator[None]:
    """Show a bar of how much of `path` this process has read while the block runs.

    Nothing is shown when `stream` (stderr by default) is not a terminal, or `path` is not a
    regular file.
    """
    out = stream if stream is not None else sys.stderr
    try:
        status = Path(path).stat()
    except OSError:
        yield
        return
    if not out.isatty() or not status.st_size:
        yield
        return
    sized = _columns(out) > 0  # a pseudo-terminal may report no size: then 80 x 24
    bar = tqdm(
        total=status.st_size,
        desc=description,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=out,
        leave=False,
        dynamic_ncols=sized,
        ncols=None if sized else 80,
        nrows=None if sized else 24,  # tqdm hides a bar below a screen height of 0
        # Shown at every look at the offset: left to guess, tqdm expects the next step to be
        # as big as the last one and, when it is smaller, holds the bar back up to 10 s.
        miniters=1,
    )
    stop = threading.Event()

    def watch() -> None:
        fd: int | None = None
        while not stop.wait(INTERVAL):
            if fd is None or offset(fd) is None:
                fd = open_descriptor(status.st_dev, status.st_ino)
            where = offset(fd) if fd is not None else None
            if where is not None and where > bar.n:
                bar.update(min(where, status.st_size) - bar.n)

    watcher = threading.Thread(target=watch, name="lestats-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        bar.close()
