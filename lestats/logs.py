"""The server log: a rotating file with UTC timestamps, written off the event loop.

A request only creates a record and queues it (a few microseconds); a writer thread formats the
records, writes them in batches with one flush per batch, and rotates the file by size.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os

LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_STOP = None


class UTCFormatter(logging.Formatter):
    """Timestamps in UTC (`time.gmtime`), ISO 8601 with a Z."""

    converter = time.gmtime


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Queues records as they are: formatting happens in the writer thread, not the caller's.

    Safe here because every argument this package logs is immutable (str, int, float).
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class _BatchedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotates by size on its own writes (no stat per record); flushes only when told to."""

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
    """Owns the log file: drains the queue in batches from one thread until `stop`."""

    def __init__(self, handler: _BatchedRotatingFileHandler) -> None:
        self._records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        self._handler = handler
        self.queue_handler = _DeferredQueueHandler(self._records)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self._run, name="lestats-log-writer", daemon=True)

    def start(self) -> None:
        """Start writing."""
        self._thread.start()

    def stop(self) -> None:
        """Detach from the root logger, write what is queued, then close the file."""
        logging.getLogger().removeHandler(self.queue_handler)
        self._records.put(_STOP)
        self._thread.join()
        self._handler.close()

    def _run(self) -> None:
        while True:
            record = self._records.get()
            while record is not _STOP:
                self._handler.handle(record)
                try:
                    record = self._records.get_nowait()
                except queue.Empty:
                    break
            self._handler.flush_batch()
            if record is _STOP:
                return


def start_file_logging(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = 10 << 20,
    backups: int = 5,
    level: int = logging.INFO,
) -> LogWriter:
    """Send the root logger's records to a rotating file; call `.stop()` on the result at exit."""
    handler = _BatchedRotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(UTCFormatter(LOG_FORMAT, DATE_FORMAT))
    writer = LogWriter(handler)
    root = logging.getLogger()
    root.addHandler(writer.queue_handler)
    root.setLevel(level)
    writer.start()
    return writer
