"""`--log-format json`: one JSON object per line; the text format stays exactly as it was."""

from __future__ import annotations

import json
import logging
import sys

from lestats.logs import JSONFormatter, formatter, start_file_logging

pytest_plugins = ["http_support"]

from http_support import OBESITY, Server  # noqa: E402

BASE = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z


def record(message: str, *args: object, exc_info=None) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "lestats.http",
            "levelname": "ERROR" if exc_info else "INFO",
            "levelno": logging.ERROR if exc_info else logging.INFO,
            "msg": message,
            "args": args,
            "created": BASE,
            "msecs": 250.0,
            "exc_info": exc_info,
        }
    )


def test_the_text_format_is_unchanged():
    line = formatter("text").format(record("<- %s %s %d", "GET", "/api/jobs", 200))
    assert line == "2023-11-14T22:13:20.250Z INFO lestats.http: <- GET /api/jobs 200"


def test_a_json_record_is_one_line_with_its_fields():
    entry = JSONFormatter().format(record("-> %s %r", "POST", 'two\nlines "quoted"'))
    assert "\n" not in entry
    assert json.loads(entry) == {
        "time": "2023-11-14T22:13:20.250Z",
        "level": "INFO",
        "logger": "lestats.http",
        "message": "-> POST 'two\\nlines \"quoted\"'",
    }


def fail(exc: Exception) -> None:
    raise exc


def test_a_json_record_carries_its_traceback_on_the_same_line():
    try:
        fail(ValueError("boom"))
    except ValueError:
        exc_info = sys.exc_info()
    entry = JSONFormatter().format(record("job %d failed", 3, exc_info=exc_info))
    assert "\n" not in entry
    decoded = json.loads(entry)
    assert decoded["message"] == "job 3 failed"
    assert decoded["level"] == "ERROR"
    assert decoded["exc"].startswith("Traceback (most recent call last):")
    assert decoded["exc"].endswith("ValueError: boom")


def test_the_writer_writes_json_lines(tmp_path):
    path = tmp_path / "server.log"
    writer = start_file_logging(path, log_format="json")
    try:
        logging.getLogger("lestats.test").info("hello %s", "world")
        try:
            fail(RuntimeError("kaput"))
        except RuntimeError:
            logging.getLogger("lestats.test").exception("it failed")
    finally:
        writer.stop()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(e["logger"], e["message"]) for e in lines] == [
        ("lestats.test", "hello world"),
        ("lestats.test", "it failed"),
    ]
    assert "RuntimeError: kaput" in lines[1]["exc"]


def test_the_server_logs_json_lines_for_every_request(tmp_path):
    log = tmp_path / "server.log"
    server = Server("--workers", "1", "--log-file", str(log), "--log-format", "json", cwd=tmp_path)
    try:
        job = server.submit("best5", {"question": OBESITY})
        assert server.result(job)["status"] == "done"
        assert server.stop() == 0
    finally:
        server.kill()
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("-> POST /api/best5 ") for m in messages)
    assert any(m.startswith(f"<- POST /api/best5 200 {job} (") for m in messages)
    assert any(m.startswith(f"<- GET /api/get_results/{job}?wait=5 200 done") for m in messages)
    assert all(set(entry) == {"time", "level", "logger", "message"} for entry in entries)
    assert all(entry["time"].endswith("Z") for entry in entries)
