"""The request lines handed straight to the log writer (`DirectInfo`): the same text as
`logger.info` gives, and `logger.info` itself whenever anything but the writer would read them."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import random

import pytest
from test_logging import TIME_FIELDS, file_logging, loggings_own_text_format

from lestats.logs import (
    DATE_FORMAT,
    LOG_FORMAT,
    UNKNOWN_FUNCTION,
    UNKNOWN_SOURCE,
    DirectInfo,
    JSONFormatter,
    LogWriter,
    ServerRecord,
    UTCFormatter,
    _RotatingFile,
)

BASE = 1_700_000_000.0  # 2023-11-14T22:13:20Z
NAME = "lestats.test_direct"
MESSAGES = [
    ("-> %s %r", ("POST /api/best5", '{"question": "é\n\u2028"}')),
    ("<- %s %d %s (%.2f ms)", ("GET /api/jobs", 200, "done", 0.123)),
    ("plain, no arguments: 100%", ()),
    ("%(who)s by name", ({"who": "args"},)),
    ("an empty mapping %s", ({},)),
]


def logging_record(created: float, message: str, args: tuple) -> logging.LogRecord:
    """The record `Logger.info` makes with `start_file_logging`'s switches, made at `created`."""
    record = logging.LogRecord(
        NAME, logging.INFO, UNKNOWN_SOURCE, 0, message, args, None, UNKNOWN_FUNCTION
    )
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    record.relativeCreated = 0.0
    record.thread = record.threadName = record.process = record.processName = None
    return record


@pytest.mark.parametrize(
    ("formatter", "reference"),
    [
        (UTCFormatter(LOG_FORMAT, DATE_FORMAT), loggings_own_text_format()),
        (JSONFormatter(), JSONFormatter()),
    ],
    ids=["text", "json"],
)
def test_a_direct_line_reads_as_the_record_logging_would_have_made(formatter, reference):
    rng = random.Random(5)
    for _ in range(300):
        message, args = rng.choice(MESSAGES)
        created = BASE + rng.choice((0, 1, 59, 60, 86_400)) + rng.randrange(1000) / 1000
        line = (created, NAME, message, args)
        assert formatter.format_line(line) == reference.format(
            logging_record(created, message, args)
        )


def test_the_record_of_a_direct_line_is_the_one_logging_makes():
    for message, args in MESSAGES:
        mine = vars(ServerRecord.of_line((BASE + 0.25, NAME, message, args)))
        theirs = vars(logging_record(BASE + 0.25, message, args))
        assert set(mine) == set(theirs)
        assert {k: v for k, v in mine.items() if k not in TIME_FIELDS} == {
            k: v for k, v in theirs.items() if k not in TIME_FIELDS
        }
        assert (mine["created"], mine["msecs"]) == (BASE + 0.25, 250.0)


def test_a_direct_line_that_cannot_be_formatted_is_reported_and_the_batch_written(
    tmp_path, capsys
):
    path = tmp_path / "bad.log"
    file = _RotatingFile(path, maxBytes=10_000, backupCount=1, encoding="utf-8")
    file.setFormatter(UTCFormatter("%(message)s", DATE_FORMAT))
    entries = collections.deque(
        [(BASE, NAME, "before", ()), (BASE, NAME, "%d apples", ("no",)), (BASE, NAME, "after", ())]
    )
    try:
        file.write_batch(entries)
    finally:
        file.close()
    assert path.read_text() == "before\nafter\n"
    assert "Logging error" in capsys.readouterr().err


def test_direct_lines_and_records_reach_the_file_in_order_with_the_same_text(tmp_path):
    path = tmp_path / "both.log"
    logger = logging.getLogger(NAME)
    direct = DirectInfo(logger)
    with file_logging(path, alone=True) as writer:
        assert writer.takes_directly(logger)
        for number in range(50):
            direct("line %d of %s", number, "direct")
            logger.info("line %d of %s", number, "logging")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        f"INFO {NAME}: line {number} of {way}"
        for number in range(50)
        for way in ("direct", "logging")
    ]


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _handler_on(name: str):
    handler = Kept()
    logging.getLogger(name).addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger(name).removeHandler(handler)


@contextlib.contextmanager
def _set(owner: object, attribute: str, value: object):
    before = getattr(owner, attribute)
    setattr(owner, attribute, value)
    try:
        yield
    finally:
        setattr(owner, attribute, before)


@contextlib.contextmanager
def _level(logger: logging.Logger, level: int):
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextlib.contextmanager
def _filter_on(filterer: logging.Filterer):
    def passes(_: logging.LogRecord) -> bool:
        return True

    filterer.addFilter(passes)
    try:
        yield
    finally:
        filterer.removeFilter(passes)


@contextlib.contextmanager
def _disabled_below_warning():
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@contextlib.contextmanager
def _factory(factory):
    before = logging.getLogRecordFactory()
    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(before)


CHANGES = {
    "a handler on the root": lambda _writer: _handler_on(""),
    "a handler on the package": lambda _writer: _handler_on("lestats"),
    "a handler on the logger": lambda _writer: _handler_on(NAME),
    "a filter on the logger": lambda _writer: _filter_on(logging.getLogger(NAME)),
    "a filter on the writer": lambda writer: _filter_on(writer.handler),
    "the writer above INFO": lambda writer: _set(writer.handler, "level", logging.WARNING),
    "the logger above INFO": lambda _writer: _level(logging.getLogger(NAME), logging.WARNING),
    "the logger disabled": lambda _writer: _set(logging.getLogger(NAME), "disabled", value=True),
    "logging.disable": lambda _writer: _disabled_below_warning(),
    "not propagated": lambda _writer: _set(logging.getLogger(NAME), "propagate", value=False),
    "another record factory": lambda _writer: _factory(logging.LogRecord),
    "threads gathered": lambda _writer: _set(logging, "logThreads", value=True),
    "callers gathered": lambda _writer: _set(logging, "_srcfile", logging.__file__),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_line_goes_through_logging_whenever_the_writer_is_not_its_only_reader(
    tmp_path, change
):
    logger = logging.getLogger(NAME)
    with file_logging(tmp_path / "direct.log", alone=True) as writer:
        assert writer.takes_directly(logger)
        with change(writer):
            assert not writer.takes_directly(logger)
        assert writer.takes_directly(logger)


def test_a_null_handler_on_the_way_does_not_count_as_a_reader(tmp_path):
    logger = logging.getLogger(NAME)
    null = logging.NullHandler()
    logger.addHandler(null)
    try:
        with file_logging(tmp_path / "direct.log", alone=True) as writer:
            assert writer.takes_directly(logger)
    finally:
        logger.removeHandler(null)


def test_a_log_capture_sees_every_direct_line_and_the_file_has_them_too(tmp_path):
    path = tmp_path / "captured.log"
    logger = logging.getLogger(NAME)
    direct = DirectInfo(logger)
    kept = Kept()
    with file_logging(path, alone=True):
        direct("before the capture")
        logging.getLogger().addHandler(kept)
        try:
            direct("seen by %s", "the capture")
        finally:
            logging.getLogger().removeHandler(kept)
        direct("after the capture")
    assert kept.messages == ["seen by the capture"]
    assert [line.split(": ", 1)[1] for line in path.read_text().splitlines()] == [
        "before the capture",
        "seen by the capture",
        "after the capture",
    ]


def test_without_a_running_writer_a_direct_line_is_an_ordinary_record(tmp_path, caplog):
    with file_logging(tmp_path / "stopped.log", alone=True) as writer:
        assert LogWriter.running is writer
    assert LogWriter.running is None
    with caplog.at_level(logging.INFO, logger=NAME):
        DirectInfo(logging.getLogger(NAME))("after %s", "stop")
    assert [record.getMessage() for record in caplog.records] == ["after stop"]


def test_json_log_lines_taken_directly_are_one_object_each(tmp_path):
    path = tmp_path / "direct.jsonl"
    with file_logging(path, alone=True, log_format="json"):
        DirectInfo(logging.getLogger(NAME))("-> %s %r", "GET /x", 'a "quoted"\nbody')
    (entry,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert entry["level"] == "INFO"
    assert entry["logger"] == NAME
    assert entry["message"] == "-> GET /x 'a \"quoted\"\\nbody'"


def test_a_file_with_another_formatter_writes_a_direct_line_as_its_record(tmp_path):
    path = tmp_path / "other.log"
    file = _RotatingFile(path, maxBytes=10_000, backupCount=1, encoding="utf-8")
    file.setFormatter(logging.Formatter("%(levelname)s %(name)s %(funcName)s: %(message)s"))
    try:
        file.write_batch(collections.deque([(BASE, NAME, "%s and %d", ("text", 2))]))
    finally:
        file.close()
    assert path.read_text() == f"INFO {NAME} {UNKNOWN_FUNCTION}: text and 2\n"
