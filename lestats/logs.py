"""The server log: a rotating file with UTC timestamps, written off the event loop.

Logging a request costs the event loop a record and a deque append, nothing more: a writer
thread wakes a few times a second, formats what accumulated, writes it with one flush, and
rotates the file by size. Lines may therefore reach the file up to `WRITE_INTERVAL` late, and
all of them are written at `stop`.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os

LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
WRITE_INTERVAL = 0.05
"""Seconds between the writer's batches."""


class UTCFormatter(logging.Formatter):
    """Timestamps in UTC (`time.gmtime`), ISO 8601 with a Z."""

    converter = time.gmtime  # type: ignore[assignment]  # typeshed wants localtime's signature


class _DequeHandler(logging.Handler):
    """Keeps records as they are, for the writer: no formatting, no lock hand-off, no wake-up.

    Safe because every argument this package logs is immutable (str, int, float).
    """

    def __init__(self, records: collections.deque[logging.LogRecord]) -> None:
        super().__init__()
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)


class _RotatingFile(logging.handlers.RotatingFileHandler):
    """Rotates by size from its own position (no stat per record); flushes once per batch."""

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 - logging's name
        if self.stream is None:
            self.stream = self._open()
        if self.maxBytes <= 0:
            return False
        return self.stream.tell() + len(self.format(record)) + 1 >= self.maxBytes

    def flush(self) -> None:
        """Deferred: the writer flushes once per batch."""

    def flush_batch(self) -> None:
        """Flush what this batch wrote."""
        if self.stream is not None:
            self.stream.flush()


class LogWriter:
    """Owns the log file; `handler` is what loggers are given. Stop it to write the rest."""

    def __init__(self, file: _RotatingFile) -> None:
        self._records: collections.deque[logging.LogRecord] = collections.deque()
        self._file = file
        self._stopping = threading.Event()
        self.handler = _DequeHandler(self._records)
        self._thread = threading.Thread(target=self._run, name="lestats-log-writer", daemon=True)

    def start(self) -> None:
        """Start writing."""
        self._thread.start()

    def stop(self) -> None:
        """Detach from the root logger, write everything logged so far, close the file."""
        logging.getLogger().removeHandler(self.handler)
        self._stopping.set()
        self._thread.join()
        self._file.close()

    def _run(self) -> None:
        while not self._stopping.wait(WRITE_INTERVAL):
            self._write_batch()
        self._write_batch()

    def _write_batch(self) -> None:
        records = self._records
        if not records:
            return
        while records:
            self._file.handle(records.popleft())
        self._file.flush_batch()


def start_file_logging(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = 10 << 20,
    backups: int = 5,
    level: int = logging.INFO,
) -> LogWriter:
    """Send the root logger's records to a rotating file; call `.stop()` on the result at exit.

    Meant for the server process: it also turns off what the logging module gathers for every
    record that this log does not show (caller's source line, thread and process names), as the
    logging HOWTO's "Optimization" section describes.
    """
    file = _RotatingFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    file.setFormatter(UTCFormatter(LOG_FORMAT, DATE_FORMAT))
    logging._srcfile = None  # type: ignore[attr-defined]  # noqa: SLF001 - documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    writer = LogWriter(file)
    root = logging.getLogger()
    root.addHandler(writer.handler)
    root.setLevel(level)
    writer.start()
    return writer
