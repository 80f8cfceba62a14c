"""The server log of spec §5: one entry and one exit line per request with its parameters and
outcome, UTC timestamps, errors with their traceback, size-based rotation."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import re
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from http_support import (
    OBESITY,
    Server,
    failing_runner,
    get_json,
    job_number,
    poll,
    post_job,
)

from lestats.data.demo import write_demo_csv
from lestats.logs import (
    DATE_FORMAT,
    LOG_FORMAT,
    UNKNOWN_SOURCE,
    ServerRecord,
    UTCFormatter,
    _DequeHandler,
    _RotatingFile,
    start_file_logging,
)

pytest_plugins = ["http_support"]

TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ")
LOG_WAIT = 5.0


@contextlib.contextmanager
def file_logging(path, *, alone=False, **options):
    """`start_file_logging`'s writer; on exit it is stopped and the root logger restored.

    `alone`: the writer is the root's only handler meanwhile, as in the server. (pytest's log
    capture puts its own handlers on the root for each phase of a test: use it in the body.)
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    if alone:
        for handler in handlers:
            root.removeHandler(handler)
    writer = start_file_logging(path, **options)
    try:
        yield writer
    finally:
        writer.stop()
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


@pytest.fixture
def file_log(tmp_path):
    """The server log at `tmp_path/webserver.log`, for the length of a test."""
    path = tmp_path / "webserver.log"
    with file_logging(path):
        yield path


async def read_until(path, *needles: str, timeout: float = LOG_WAIT) -> str:
    """The log text once it holds every needle (the listener writes from its own thread)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if all(needle in text for needle in needles):
            return text
        if time.monotonic() > deadline:
            missing = [needle for needle in needles if needle not in text]
            raise AssertionError(f"not logged within {timeout} s: {missing}\n{text[-3000:]}")
        await asyncio.sleep(0.02)


def lines_with(text: str, marker: str) -> tuple[list[str], list[str]]:
    """The request log's entry (`->`) and exit (`<-`) lines that mention `marker`.

    (The test server also writes aiohttp's access log, which run.py turns off.)
    """
    lines = [line for line in text.splitlines() if marker in line and " lestats.http: " in line]
    entries = [line for line in lines if re.match(r"\S+Z \w+ lestats\.http: -> ", line)]
    exits = [line for line in lines if re.match(r"\S+Z \w+ lestats\.http: <- ", line)]
    assert len(entries) + len(exits) == len(lines), lines
    return entries, exits


async def logged(client, path) -> str:
    """The log once everything before now is in it: a sentinel request's exit line is there."""
    tag = uuid.uuid4().hex
    await get_json(client, f"/api/num_jobs?sentinel={tag}")
    return await read_until(path, f"<- GET /api/num_jobs?sentinel={tag} 200")


async def test_one_entry_and_one_exit_line_per_request(serve, http_dataset, file_log):
    client, _ = await serve(http_dataset)
    tags = {name: uuid.uuid4().hex for name in ("post", "result", "bad", "route", "method", "jobs")}
    job_id = await post_job(client, f"best5?tag={tags['post']}", {"question": OBESITY})
    await poll(client, job_id)
    await get_json(client, f"/api/get_results/{job_id}?tag={tags['result']}")
    await client.post(f"/api/state_mean?tag={tags['bad']}", json={"question": "nope"})
    await client.get(f"/api/nowhere?tag={tags['route']}")
    await client.get(f"/api/best5?tag={tags['method']}")
    await get_json(client, f"/api/jobs?tag={tags['jobs']}")
    text = await logged(client, file_log)

    expectations = {
        # tag: (the entry line holds, the exit line holds)
        "post": ((f"POST /api/best5?tag={tags['post']}", OBESITY), (" 200 ", job_id)),
        "result": ((f"GET /api/get_results/{job_id}",), (" 200 ", "done")),
        "bad": (("POST /api/state_mean", '"nope"'), (" 400 ", "unknown question")),
        "route": (("GET /api/nowhere",), (" 404 ",)),
        "method": (("GET /api/best5",), (" 405 ",)),
        "jobs": (("GET /api/jobs",), (" 200 ",)),
    }
    for name, (entry_parts, exit_parts) in expectations.items():
        entries, exits = lines_with(text, tags[name])
        assert len(entries) == 1, (name, entries)
        assert len(exits) == 1, (name, exits)
        for part in entry_parts:
            assert part in entries[0], (name, part, entries[0])
        for part in exit_parts:
            assert part in exits[0], (name, part, exits[0])
        assert TIMESTAMP.match(entries[0])
        assert TIMESTAMP.match(exits[0])


async def test_an_oversized_body_is_logged_with_its_413(serve, http_dataset, file_log):
    client, _ = await serve(http_dataset)
    tag = uuid.uuid4().hex
    await client.post(f"/api/best5?tag={tag}", data=b"x" * (64 * 1024 + 1))
    _, exits = lines_with(await logged(client, file_log), tag)
    assert len(exits) == 1
    assert " 413 " in exits[0]


async def test_a_multi_line_body_still_logs_one_entry_line(serve, http_dataset, file_log):
    client, _ = await serve(http_dataset)
    tag = uuid.uuid4().hex
    pretty = json.dumps({"question": OBESITY}, indent=2)  # a valid job body, over 3 lines
    response = await client.post(f"/api/best5?tag={tag}", data=pretty)
    assert response.status == 200
    forged = "2000-01-01T00:00:00.000Z INFO lestats.http: <- POST /api/best5 200 job_id_999"
    response = await client.post(f"/api/best5?tag={tag}", data='{"question": 1}\n' + forged)
    assert response.status == 400
    text = await logged(client, file_log)
    entries, exits = lines_with(text, tag)
    assert (len(entries), len(exits)) == (2, 2)
    assert OBESITY in entries[0], "the entry line holds the request's parameters"
    assert not [line for line in text.splitlines() if line.startswith("2000-01-01")]


def test_run_py_log_has_utc_timestamps_and_request_lines(tmp_path):
    log = tmp_path / "webserver.log"
    server = Server(
        "--results-dir",
        str(tmp_path / "results"),
        "--log-file",
        str(log),
        "--data",
        str(write_demo_csv(tmp_path / "small.csv", rows=300, seed=5)),
        "--workers",
        "1",
        cwd=tmp_path,
        env={"TZ": "LST-05:30"},  # local time 5.5 h off UTC: a local timestamp would show
    )
    try:
        job_id = server.submit("global_mean", {"question": OBESITY})
        assert server.result(job_id)["status"] == "done"
        assert server.stop() == 0
    finally:
        server.kill()
    now = datetime.now(UTC)
    lines = log.read_text().splitlines()
    assert sum(1 for line in lines if TIMESTAMP.match(line)) >= 4
    for line in lines:
        if not TIMESTAMP.match(line):
            continue
        text = TIMESTAMP.match(line).group(1).replace("Z", "+0000")
        stamp = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
        assert abs(stamp - now) < timedelta(minutes=1), line
    text = "\n".join(lines)
    assert "-> POST /api/global_mean" in text
    assert OBESITY in text
    assert f"<- POST /api/global_mean 200 {job_id}" in text
    assert f"-> GET /api/get_results/{job_id}" in text


async def test_a_failing_job_is_logged_with_its_traceback(serve, http_dataset, file_log):
    client, _ = await serve(http_dataset, runner=failing_runner)
    job_id = await post_job(client, "worst5", {"question": OBESITY})
    assert (await poll(client, job_id))["status"] == "error"
    text = await read_until(file_log, "RuntimeError: injected failure for worst5")
    record = text[text.index(f"job {job_number(job_id)} failed") :]
    assert "Traceback (most recent call last):" in record
    assert "failing_runner" in record
    assert record.index("Traceback") < record.index("RuntimeError: injected failure for worst5")


async def test_a_result_that_is_not_json_fails_the_job_with_a_traceback(
    serve, http_dataset, file_log
):
    def nan_runner(dataset, query):
        del dataset, query
        return {"Ohio": float("nan")}

    client, _ = await serve(http_dataset, runner=nan_runner)
    job_id = await post_job(client, "state_mean", {"question": OBESITY, "state": "Ohio"})
    body = await poll(client, job_id)
    assert set(body) == {"status", "reason"}
    assert body["status"] == "error"
    text = await read_until(file_log, f"job {job_number(job_id)} failed", "ValueError")
    assert "Traceback (most recent call last):" in text
    # The worker survived: the next job runs (and fails the same way).
    second = await post_job(client, "global_mean", {"question": OBESITY})
    assert (await poll(client, second))["status"] == "error"


async def test_an_internal_error_is_500_json_and_logged_with_its_traceback(
    serve, http_dataset, file_log, monkeypatch
):
    client, engine = await serve(http_dataset)

    async def broken(*_paging):
        raise RuntimeError("listing exploded")
        yield  # an async generator, as the engine's pages are

    monkeypatch.setattr(engine, "job_pages", broken)
    response = await client.get("/api/jobs")
    assert response.status == 500
    assert response.content_type == "application/json"
    body = await response.json()
    assert body == {"status": "error", "reason": "internal error"}
    text = await read_until(file_log, "RuntimeError: listing exploded")
    assert "Traceback (most recent call last):" in text
    assert "GET /api/jobs failed" in text
    assert "<- GET /api/jobs 500" in await read_until(file_log, "<- GET /api/jobs 500")
    assert (await get_json(client, "/api/health"))["status"] == "ok"


def test_the_log_rotates_by_size(tmp_path):
    path = tmp_path / "rotating.log"
    with file_logging(path, max_bytes=2000, backups=2):
        log = logging.getLogger("lestats.test_logging")
        for n in range(300):
            log.info("record %04d %s", n, "x" * 60)
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("rotating.log"))
    assert files == ["rotating.log", "rotating.log.1", "rotating.log.2"]
    for name in files:
        assert 0 < (tmp_path / name).stat().st_size <= 2000, name
    assert "record 0299" in path.read_text()
    assert "record 0000" not in "".join((tmp_path / name).read_text() for name in files)
    assert all(TIMESTAMP.match(line) for line in path.read_text().splitlines())


# --- the formatter and the writer, record by record ----------------------------------------------

BASE = 1_700_000_000  # 2023-11-14T22:13:20Z


def record_at(created: float, message: str = "m", *args: object) -> logging.LogRecord:
    """A record made at `created` (seconds since the epoch), as the logging module would."""
    return logging.makeLogRecord(
        {
            "name": "lestats.test_logging",
            "levelname": "INFO",
            "levelno": logging.INFO,
            "msg": message,
            "args": args,
            "created": created,
            "msecs": (created - int(created)) * 1000,
        }
    )


def test_the_formatter_gives_each_second_its_own_utc_timestamp():
    formatter = UTCFormatter(LOG_FORMAT, DATE_FORMAT)
    offsets = (0.25, 0.75, 1.5, 61.0, 0.5, 3600 * 24 + 0.125)  # the fifth goes back in time
    stamps = [formatter.format(record_at(BASE + offset)).split(" ")[0] for offset in offsets]
    assert stamps == [
        "2023-11-14T22:13:20.250Z",
        "2023-11-14T22:13:20.750Z",
        "2023-11-14T22:13:21.500Z",
        "2023-11-14T22:14:21.000Z",
        "2023-11-14T22:13:20.500Z",
        "2023-11-15T22:13:20.125Z",
    ]
    # Any order of records, same text as logging's own formatter on UTC.
    reference = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    reference.converter = time.gmtime
    rng = random.Random(7)
    for _ in range(300):
        record = record_at(BASE + rng.choice((0, 1, 2, 59, 60, 86400)) + rng.randrange(8) / 8)
        assert formatter.format(record) == reference.format(record)


def test_a_date_format_other_than_the_formatters_own_is_honoured():
    formatter = UTCFormatter(LOG_FORMAT, DATE_FORMAT)
    first, later = record_at(BASE + 0.5), record_at(BASE + 3600.25)
    assert formatter.formatTime(first, "%H:%M") == "22:13"
    assert formatter.format(first).startswith("2023-11-14T22:13:20.500Z ")
    assert formatter.formatTime(first, "%d/%m/%Y %H.%M.%S") == "14/11/2023 22.13.20"
    assert formatter.formatTime(first, DATE_FORMAT) == "2023-11-14T22:13:20"
    # A foreign format in a new second must not become the formatter's own text for it.
    assert formatter.formatTime(later, "%H:%M") == "23:13"
    assert formatter.format(later).startswith("2023-11-14T23:13:20.250Z ")
    assert formatter.formatTime(later, "%Y") == "2023"


def rotating_file(path, max_bytes: int, backups: int = 20) -> _RotatingFile:
    """The writer's file handler, writing each message alone on its line."""
    file = _RotatingFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    file.setFormatter(UTCFormatter("%(message)s", DATE_FORMAT))
    return file


def log_files(path) -> list:
    """The log and its backups, oldest first."""
    backups = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return [*backups, path]


def test_one_batch_bigger_than_max_bytes_rotates_inside_the_batch(tmp_path):
    path = tmp_path / "batch.log"
    file = rotating_file(path, 500)
    lines = [f"line {n:03d} " + "x" * 40 for n in range(40)]  # 50 bytes each with the newline
    records = collections.deque(record_at(BASE + n / 100, line) for n, line in enumerate(lines))
    try:
        file.write_batch(records)
    finally:
        file.close()
    assert not records
    files = log_files(path)
    assert len(files) >= 4
    for name in files:
        assert 0 < name.stat().st_size <= 500, name
    assert "".join(name.read_text() for name in files).splitlines() == lines


def test_rotation_counts_the_bytes_already_in_the_file(tmp_path):
    path = tmp_path / "old.log"
    path.write_text("o" * 479 + "\n")
    file = rotating_file(path, 500)
    try:
        file.write_batch(collections.deque([record_at(BASE, "y" * 49)]))
    finally:
        file.close()
    assert (tmp_path / "old.log.1").read_text() == "o" * 479 + "\n"
    assert path.read_text() == "y" * 49 + "\n"


def test_rotation_counts_bytes_not_characters(tmp_path):
    path = tmp_path / "utf8.log"
    file = rotating_file(path, 300)
    line = "é" * 100  # 101 characters with its newline, 201 bytes
    try:
        file.write_batch(collections.deque(record_at(BASE, line) for _ in range(3)))
    finally:
        file.close()
    files = log_files(path)
    assert [name.stat().st_size for name in files] == [201, 201, 201]
    assert [name.read_text(encoding="utf-8") for name in files] == [line + "\n"] * 3


def test_a_record_that_cannot_be_formatted_is_skipped_and_the_batch_written(tmp_path, capsys):
    path = tmp_path / "bad.log"
    file = rotating_file(path, 10_000)
    records = collections.deque(
        [record_at(BASE, "before"), record_at(BASE, "%d apples", "no"), record_at(BASE, "after")]
    )
    try:
        file.write_batch(records)
    finally:
        file.close()
    assert path.read_text() == "before\nafter\n"
    assert "Logging error" in capsys.readouterr().err


def test_the_deque_handler_keeps_only_what_its_filters_pass():
    records: collections.deque[logging.LogRecord] = collections.deque()
    handler = _DequeHandler(records)
    handler.addFilter(lambda record: "secret" not in record.getMessage())
    kept = record_at(BASE, "kept")
    assert handler.handle(kept) is True
    assert not handler.handle(record_at(BASE, "a secret"))
    assert list(records) == [kept]


def test_the_default_time_text_keeps_each_records_milliseconds():
    formatter = UTCFormatter("%(asctime)s")
    texts = []
    for msecs in (100, 900):
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = 1_700_000_000 + msecs / 1000, msecs
        texts.append(formatter.format(record))
    assert texts[0].endswith(",100")
    assert texts[1].endswith(",900")


# --- the server's cheaper records and text format -------------------------------------------------

TIME_FIELDS = {"created", "msecs", "relativeCreated"}


@pytest.fixture
def server_switches(monkeypatch):
    """`logging` as `start_file_logging` sets it: no caller, thread or process gathered."""
    monkeypatch.setattr(logging, "_srcfile", None)
    for switch in ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks"):
        monkeypatch.setattr(logging, switch, False, raising=False)


def both_records(*fields: object) -> tuple[dict, dict]:
    """The attributes of a `ServerRecord` and of a `LogRecord` made of the same `fields`."""
    return vars(ServerRecord(*fields)), vars(logging.LogRecord(*fields))


def exc_info_of(error: Exception) -> tuple:
    try:
        raise error
    except type(error):
        return sys.exc_info()


@pytest.mark.parametrize(
    "args",
    [(), ("a", 1, 2.5), ({"key": "value"},), ({},), (["list"],)],
    ids=["none", "positional", "mapping", "empty-mapping", "list"],
)
@pytest.mark.usefixtures("server_switches")
def test_a_server_record_carries_what_a_logging_record_carries(args):
    fields = ("lestats.http", logging.WARNING, UNKNOWN_SOURCE, 0, "m %s", args, None)
    mine, theirs = both_records(*fields, "(unknown function)", None)
    assert set(mine) == set(theirs)
    assert {k: v for k, v in mine.items() if k not in TIME_FIELDS} == {
        k: v for k, v in theirs.items() if k not in TIME_FIELDS
    }
    assert abs(mine["created"] - theirs["created"]) < 1.0
    assert abs(mine["relativeCreated"] - theirs["relativeCreated"]) < 1000.0
    assert mine["msecs"] == int((mine["created"] % 1) * 1000)


@pytest.mark.usefixtures("server_switches")
def test_a_server_record_with_a_traceback_or_a_source_path_is_loggings_own():
    error = exc_info_of(ValueError("boom"))
    mine, theirs = both_records("t", logging.ERROR, UNKNOWN_SOURCE, 0, "x", (), error, "f", "s")
    assert mine["exc_info"] is error
    assert {k: v for k, v in mine.items() if k not in TIME_FIELDS} == {
        k: v for k, v in theirs.items() if k not in TIME_FIELDS
    }
    mine, theirs = both_records("t", logging.INFO, __file__, 7, "x", (), None)
    assert (mine["filename"], mine["module"]) == ("test_logging.py", "test_logging")
    assert (mine["filename"], mine["module"]) == (theirs["filename"], theirs["module"])


@pytest.mark.usefixtures("server_switches")
def test_a_server_record_gathers_threads_when_logging_is_asked_to(monkeypatch):
    monkeypatch.setattr(logging, "logThreads", True)
    mine, theirs = both_records("t", logging.INFO, UNKNOWN_SOURCE, 0, "x", (), None)
    assert mine["thread"] == theirs["thread"] is not None
    assert mine["threadName"] == theirs["threadName"] is not None


def loggings_own_text_format() -> logging.Formatter:
    """`logging`'s own formatter of the server's text format (in UTC)."""
    reference = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    reference.converter = time.gmtime
    return reference


@pytest.mark.usefixtures("server_switches")
def test_the_text_format_is_loggings_own_text():
    formatter = UTCFormatter(LOG_FORMAT, DATE_FORMAT)
    reference = loggings_own_text_format()
    rng = random.Random(11)
    messages = [
        ("-> %s %r", ("POST /api/best5", '{"question": "é\n\u2028"}')),
        ("<- %s %d %s (%.2f ms)", ("GET /api/jobs", 200, "done", 0.123)),
        ("plain, no arguments: 100%", ()),
        ("%(who)s by name", ({"who": "args"},)),
    ]
    for _ in range(200):
        message, args = rng.choice(messages)
        level = rng.choice((logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR))
        record = ServerRecord("lestats.http", level, UNKNOWN_SOURCE, 0, message, args, None)
        record.created = BASE + rng.randrange(100_000) / 1000
        record.msecs = int((record.created % 1) * 1000) + 0.0
        assert formatter.format(record) == reference.format(record)
    failed = ServerRecord(
        "lestats", logging.ERROR, UNKNOWN_SOURCE, 0, "job %d failed", (3,), exc_info_of(KeyError(1))
    )
    text = formatter.format(failed)
    assert text == reference.format(failed)
    assert text.splitlines()[1] == "Traceback (most recent call last):"


def test_the_writer_makes_server_records_while_it_runs_then_gives_the_factory_back(tmp_path):
    before = logging.getLogRecordFactory()
    path = tmp_path / "records.log"
    with file_logging(path):
        assert logging.getLogRecordFactory() is ServerRecord
        logging.getLogger("lestats.test_logging").info("made by %s", "ServerRecord")
    assert logging.getLogRecordFactory() is before
    (line,) = path.read_text().splitlines()
    assert TIMESTAMP.match(line)
    assert line.endswith(" INFO lestats.test_logging: made by ServerRecord")
