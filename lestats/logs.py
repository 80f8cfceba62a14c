"""The server log: a rotating file with UTC timestamps, written off the event loop.

Records go through a queue to a listener thread that owns the file, so a request never waits on
disk I/O to log.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os

LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class UTCFormatter(logging.Formatter):
    """Timestamps in UTC (`time.gmtime`), ISO 8601 with a Z."""

    converter = time.gmtime


def start_file_logging(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = 10 << 20,
    backups: int = 5,
    level: int = logging.INFO,
) -> logging.handlers.QueueListener:
    """Send the root logger's records to a rotating file; call `.stop()` on the result at exit."""
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(UTCFormatter(LOG_FORMAT, DATE_FORMAT))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, handler, respect_handler_level=False)
    root = logging.getLogger()
    root.addHandler(logging.handlers.QueueHandler(records))
    root.setLevel(level)
    listener.start()
    return listener
