"""The server log: a rotating file with UTC timestamps, written off the event loop.

Logging a request costs the event loop a record and a deque append, nothing more: a writer
thread wakes a few times a second, formats what accumulated (each record once, the timestamp
text once per second), writes it with one flush, and rotates the file by size. Lines may
therefore reach the file up to `WRITE_INTERVAL` late, and all of them are written at `stop`.

The writer's work is Python work that holds the GIL the event loop needs: at a few thousand
requests a second it is a visible share of the server's CPU, hence the care. The two lines of
every request cost, per line, a record made in the loop and its formatting in the writer: the
server's records are `ServerRecord`s (no file name derived from a source path that the server
does not gather), and the text format is written by one f-string rather than by `%`-formatting
a dictionary of the record's attributes. The request lines themselves skip the record: while the
writer is the only one that would read them, a `DirectInfo` hands it the line's time, logger,
message and arguments, and the writer formats them to the same text (`python -m
bench.bench_log_lines` times each way).
"""

from __future__ import annotations

import collections
import json
import logging
import logging.handlers
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
WRITE_INTERVAL = 0.05
"""Seconds between the writer's batches."""

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
"""`text`: one line per record for people; `json`: one JSON object per line for log shippers."""


UNKNOWN_SOURCE = "(unknown file)"
"""The source path `logging` gives a record when it does not look for the caller."""
UNKNOWN_FUNCTION = "(unknown function)"
"""The function name `logging` gives such a record."""

DirectLine = tuple[float, str, str, tuple[object, ...]]
"""An INFO line handed to the writer without a record: `time.time()`, logger name, message and
its `%`-arguments (see `DirectInfo`)."""


def _lean_records() -> bool:
    """Whether `logging` gathers nothing a `ServerRecord` leaves out (see `start_file_logging`)."""
    return logging._srcfile is None and not (  # noqa: SLF001 - documented switch
        logging.logThreads
        or logging.logProcesses
        or logging.logMultiprocessing
        or _TASKS_GATHERED()
    )


def _arguments(args: Any) -> Any:  # noqa: ANN401 - logging's own type
    """`logging`'s own rule: one non-empty mapping is the arguments by name."""
    if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        return args[0]
    return args


class ServerRecord(logging.LogRecord):
    """A `LogRecord` made for less: the server's records carry no source path to parse.

    `logging.LogRecord` derives `filename` and `module` from the caller's path with
    `os.path` calls on every record; the server turns the caller search off, so that path is
    always `UNKNOWN_SOURCE` and both are the constants `logging` derives from it. Threads and
    processes are not gathered either (see `start_file_logging`). Every attribute of a
    `LogRecord` is there, with the value `logging` itself would give it under those switches;
    a record with a real source path is made by `LogRecord` itself.
    """

    def __init__(  # noqa: PLR0917 - logging's own signature
        self,
        name: str,
        level: int,
        pathname: str,
        lineno: int,
        msg: object,
        args: Any,  # noqa: ANN401 - logging's own type
        exc_info: Any,  # noqa: ANN401 - logging's own type
        func: str | None = None,
        sinfo: str | None = None,
    ) -> None:
        if pathname != UNKNOWN_SOURCE or not _lean_records():
            super().__init__(name, level, pathname, lineno, msg, args, exc_info, func, sinfo)
            return
        self._fill(time.time(), name, level, msg, args, exc_info, lineno, func, sinfo)

    @classmethod
    def of_line(cls, line: DirectLine) -> ServerRecord:
        """The record `logger.info` would have made for a `DirectInfo` line."""
        created, name, msg, args = line
        record = cls.__new__(cls)
        cls._fill(record, created, name, logging.INFO, msg, args, None, 0, UNKNOWN_FUNCTION, None)
        return record

    def _fill(  # noqa: PLR0917 - logging's own fields
        self,
        created: float,
        name: str,
        level: int,
        msg: object,
        args: Any,  # noqa: ANN401 - logging's own type
        exc_info: Any,  # noqa: ANN401 - logging's own type
        lineno: int,
        func: str | None,
        sinfo: str | None,
    ) -> None:
        self.name = name
        self.msg = msg
        self.args = _arguments(args)
        self.levelname = logging.getLevelName(level)
        self.levelno = level
        self.pathname = UNKNOWN_SOURCE
        self.filename = UNKNOWN_SOURCE
        self.module = _UNKNOWN_MODULE
        self.exc_info = exc_info
        self.exc_text = None
        self.stack_info = sinfo
        self.lineno = lineno
        self.funcName = func  # type: ignore[assignment]  # logging's own value
        self.created = created
        self.msecs = int((created - int(created)) * 1000) + 0.0
        self.relativeCreated = (created - _LOGGING_STARTED) * 1000
        self.thread = None
        self.threadName = None
        self.processName = None
        self.process = None
        if _TASK_NAMES:
            self.taskName = None


def _tasks_gathered() -> bool:
    """Whether `logging` is asked for the asyncio task's name (Python 3.12+)."""
    return bool(logging.logAsyncioTasks)  # type: ignore[attr-defined,unused-ignore]


_TASK_NAMES = sys.version_info >= (3, 12)
_TASKS_GATHERED = _tasks_gathered if _TASK_NAMES else bool
"""Asked on every line: on Python 3.11 `bool()`, since a `getattr` with a default on a missing
attribute costs an exception each time."""
_PROBE = logging.LogRecord("", 0, UNKNOWN_SOURCE, 0, "", (), None)
_UNKNOWN_MODULE = _PROBE.module
_LOGGING_STARTED = _PROBE.created - _PROBE.relativeCreated / 1000
"""When `logging` was imported (its `relativeCreated` counts from there), in `time.time()`."""


class UTCFormatter(logging.Formatter):
    """Timestamps in UTC (`time.gmtime`), ISO 8601 with a Z; one `strftime` per second.

    Not thread-safe (the last second's text is kept): one writer thread formats. With the
    server's own `LOG_FORMAT`, a record without traceback is written by one f-string: the same
    text as `logging.Formatter` gives, for half its cost.
    """

    converter = time.gmtime  # type: ignore[assignment]  # typeshed wants localtime's signature

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._second = -1
        self._second_text = ""
        self._plain = fmt == LOG_FORMAT and datefmt == DATE_FORMAT

    def format(self, record: logging.LogRecord) -> str:
        """The record as a line (without the line end)."""
        if not self._plain or record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, DATE_FORMAT)
        return _log_line(
            record.asctime, int(record.msecs), record.levelname, record.name, record.message
        )

    def format_line(self, line: DirectLine) -> str:
        """A `DirectInfo` line as `format` writes the record `logger.info` would have made."""
        if not self._plain:
            return self.format(ServerRecord.of_line(line))
        created, name, msg, args = line
        message = msg % _arguments(args) if args else msg
        milliseconds = int((created - int(created)) * 1000)
        level = logging.getLevelName(logging.INFO)
        stamp = self._second_text_of(created, DATE_FORMAT)
        return _log_line(stamp, milliseconds, level, name, message)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """The record's second in UTC, as `datefmt` (the formatter's own one is cached)."""
        if datefmt is None or datefmt != self.datefmt:  # logging's default text has milliseconds
            return super().formatTime(record, datefmt)
        return self._second_text_of(record.created, datefmt)

    def _second_text_of(self, created: float, datefmt: str) -> str:
        """The second of `created` as `datefmt`, the formatter's own (its text kept a second)."""
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime(datefmt, time.gmtime(created))
            self._second = second
        return self._second_text


def _log_line(stamp: str, milliseconds: int, level: str, name: str, message: str) -> str:
    """`LOG_FORMAT`'s text, by one f-string."""
    return f"{stamp}.{milliseconds:03d}Z {level} {name}: {message}"


class JSONFormatter(UTCFormatter):
    """One JSON object per record, on one line: `time`, `level`, `logger`, `message`, `exc`.

    `time` is the text format's UTC timestamp (ISO 8601 with milliseconds and a Z); `exc`, the
    traceback as text, is there only when the record carries one. The message is formatted with
    its arguments as in the text format; JSON escapes any newline or quote in it, so a record is
    always exactly one line.
    """

    def __init__(self) -> None:
        super().__init__(None, DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line (without the line end)."""
        entry = {
            "time": f"{self.formatTime(record, self.datefmt)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: LogFormat = "text") -> logging.Formatter:
    """The log file's formatter for `log_format`."""
    if log_format == "json":
        return JSONFormatter()
    return UTCFormatter(LOG_FORMAT, DATE_FORMAT)


_Entry = logging.LogRecord | DirectLine


class _DequeHandler(logging.Handler):
    """Keeps records as they are, for the writer: no formatting, no lock hand-off, no wake-up.

    Safe because every argument this package logs is immutable (str, int, float).
    """

    def __init__(self, records: collections.deque[_Entry]) -> None:
        super().__init__()
        self._records = records

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and keep the record; no handler lock (a deque append is atomic)."""
        kept = self.filter(record)
        if not kept:
            return False
        self._records.append(kept if isinstance(kept, logging.LogRecord) else record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)


class _RotatingFile(logging.handlers.RotatingFileHandler):
    """Writes a batch of records as one text, rotating by size from its own count of bytes."""

    def write_batch(self, records: collections.deque[_Entry]) -> None:
        """Format and write every record and line in `records` (emptying it), then flush once."""
        if self.stream is None:
            self.stream = self._open()
        position = self.stream.tell()
        lines: list[str] = []
        formatter = self.formatter
        format_line = formatter.format_line if isinstance(formatter, UTCFormatter) else None
        while records:
            entry = records.popleft()
            try:
                if isinstance(entry, logging.LogRecord):
                    line = self.format(entry) + self.terminator
                elif format_line is not None:
                    line = format_line(entry) + self.terminator
                else:
                    line = self.format(ServerRecord.of_line(entry)) + self.terminator
            except Exception:  # noqa: BLE001 - logging's own policy: report, never raise
                self.handleError(
                    entry if isinstance(entry, logging.LogRecord) else ServerRecord.of_line(entry)
                )
                continue
            size = len(line.encode(errors="replace")) if not line.isascii() else len(line)
            if 0 < self.maxBytes <= position + size and position > 0:
                self.stream.write("".join(lines))
                lines.clear()
                self.doRollover()
                position = 0
            lines.append(line)
            position += size
        self.stream.write("".join(lines))
        self.stream.flush()


class LogWriter:
    """Owns the log file; `handler` is what loggers are given. Stop it to write the rest."""

    running: ClassVar[LogWriter | None] = None
    """The writer started last and not yet stopped (the one `DirectInfo` offers lines to)."""

    def __init__(self, file: _RotatingFile) -> None:
        self._records: collections.deque[_Entry] = collections.deque()
        self._file = file
        self._stopping = threading.Event()
        self.handler = _DequeHandler(self._records)
        self._thread = threading.Thread(target=self._run, name="lestats-log-writer", daemon=True)
        self._factory: Callable[..., logging.LogRecord] | None = None

    @property
    def file(self) -> logging.handlers.RotatingFileHandler:
        """The rotating file it writes; its formatter makes the text."""
        return self._file

    def start(self) -> None:
        """Start writing; the process's records are `ServerRecord`s meanwhile."""
        self._factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(ServerRecord)
        self._thread.start()
        LogWriter.running = self

    def stop(self) -> None:
        """Detach from the root logger, write everything logged so far, close the file."""
        if LogWriter.running is self:
            LogWriter.running = None
        logging.getLogger().removeHandler(self.handler)
        if self._factory is not None:
            logging.setLogRecordFactory(self._factory)
        self._stopping.set()
        self._thread.join()
        self._file.close()

    def takes_directly(self, logger: logging.Logger) -> bool:
        """Whether `logger.info` would hand a lean `ServerRecord` to this writer and nobody else.

        That is: INFO is enabled, no filter on the way, this writer's handler is reached once
        and every other handler on the way is a `NullHandler`, and records are `ServerRecord`s
        that gather no caller, thread or process. It is asked on every line, so that a handler
        or filter added at any time (by a test's log capture, say) sees every line after it.
        """
        handler = self.handler
        if (
            logger.filters
            or handler.filters
            or handler.level > logging.INFO
            or not logger.isEnabledFor(logging.INFO)
            or logging.getLogRecordFactory() is not ServerRecord
            or not _lean_records()
        ):
            return False
        reached = 0
        current: logging.Logger | None = logger
        while current is not None:
            for each in current.handlers:
                if each is handler:
                    reached += 1
                elif type(each) is not logging.NullHandler:
                    return False
            current = current.parent if current.propagate else None
        return reached == 1

    def take(self, line: DirectLine) -> None:
        """Keep `line` for the next batch (see `takes_directly`)."""
        self._records.append(line)

    def _run(self) -> None:
        while not self._stopping.wait(WRITE_INTERVAL):
            self._write_batch()
        self._write_batch()

    def _write_batch(self) -> None:
        if self._records:
            self._file.write_batch(self._records)


class DirectInfo:
    """`logger.info` for the lines every request writes, for a fraction of its cost.

    While the running `LogWriter` is the only one that would read the record (see its
    `takes_directly`), the line goes to it as a `DirectLine`, which it formats to the text the
    record would have given; otherwise, `logger.info` as usual.
    """

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def __call__(self, msg: str, *args: object) -> None:
        """Log `msg % args` at INFO."""
        writer = LogWriter.running
        if writer is not None and writer.takes_directly(self.logger):
            writer.take((time.time(), self.logger.name, msg, args))
        else:
            self.logger.info(msg, *args)


def start_file_logging(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = 10 << 20,
    backups: int = 5,
    level: int = logging.INFO,
    log_format: LogFormat = "text",
) -> LogWriter:
    """Send the root logger's records to a rotating file; call `.stop()` on the result at exit.

    Meant for the server process: it also turns off what the logging module gathers for every
    record that this log does not show (caller's source line, thread and process names), as the
    logging HOWTO's "Optimization" section describes.
    """
    file = _RotatingFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    file.setFormatter(formatter(log_format))
    logging._srcfile = None  # noqa: SLF001 - documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False
    writer = LogWriter(file)
    root = logging.getLogger()
    root.addHandler(writer.handler)
    root.setLevel(level)
    writer.start()
    return writer
