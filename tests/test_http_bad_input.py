"""Malformed HTTP at the byte level gets a 4xx JSON answer and one log line, never a traceback.

Raw bytes on a real socket to the server as run.py runs it: what aiohttp's parser refuses
(bad method, bad framing, unknown transfer coding, header line too long), bodies that cannot be
decoded, unknown content codings, an unknown `Expect`; a client hanging up mid-body; a very long
request target in the log.
"""

from __future__ import annotations

import gzip
import json
import logging

import pytest
from http_support import OBESITY, until
from raw_http import eof_within, read_answer, request

pytest_plugins = ["http_support", "raw_http"]

BODY = json.dumps({"question": OBESITY}).encode()

PARSER_REFUSALS = {
    "bad method token": b"GE(T /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "transfer-encoding with content-length": (
        b"POST /api/best5 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n"
    ),
    "unknown transfer coding": (
        b"POST /api/best5 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: bogus\r\n\r\nxxxxx"
    ),
    "two content-lengths": (
        b"POST /api/best5 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
    ),
    "header without colon": b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nnonsense\r\n\r\n",
    "bad version": b"GET /api/health HTTP/9.Q\r\nHost: 127.0.0.1\r\n\r\n",
    "request line too long": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "TLS handshake on the plain port": bytes.fromhex("16030100a5010000a10303") + bytes(64),
    "bad chunk size": (
        b"POST /api/best5 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ),
}


def http_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("lestats", "aiohttp"))]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("case", list(PARSER_REFUSALS))
async def test_parser_refusals_are_400_json_and_one_warning(live, http_dataset, caplog, case):
    caplog.set_level(logging.DEBUG)
    server = await live(http_dataset)
    reader, writer = await server.connect()
    writer.write(PARSER_REFUSALS[case])
    status, headers, body = await read_answer(reader)
    assert 400 <= status < 500, (status, body)
    assert set(body) == {"status", "reason"}
    assert body["status"] == "error"
    assert body["reason"].startswith("malformed HTTP request: "), body
    assert headers["content-type"].startswith("application/json")
    assert await eof_within(reader) == b""
    writer.close()
    warnings = [r for r in http_records(caplog) if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "refused a request" in warnings[0].getMessage()
    assert_no_traceback(caplog)
    assert await server.engine.num_jobs_async() == 0


async def test_an_unknown_method_is_400_json_and_a_known_wrong_one_405(live, http_dataset):
    server = await live(http_dataset)
    reader, writer = await server.connect()
    # aiohttp's parser refuses a method it does not know.
    writer.write(b"BREW /api/best5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status, _, body = await read_answer(reader)
    assert status == 400
    assert body["reason"].startswith("malformed HTTP request: "), body
    assert "method" in body["reason"].lower(), body
    writer.close()
    reader, writer = await server.connect()
    writer.write(b"PATCH /api/best5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status, headers, body = await read_answer(reader)
    assert (status, headers["allow"]) == (405, "POST")
    assert body == {"status": "error", "reason": "method PATCH not allowed here (allowed: POST)"}
    writer.close()


async def test_a_gzip_body_that_is_not_gzip_is_400_json_without_traceback(
    live, http_dataset, caplog
):
    caplog.set_level(logging.INFO)
    server = await live(http_dataset)
    reader, writer = await server.connect()
    writer.write(request("POST", "/api/best5", BODY, "Content-Encoding: gzip\r\n"))
    status, _, body = await read_answer(reader)
    assert status == 400
    assert body["status"] == "error"
    assert body["reason"].startswith("request body cannot be read: "), body
    assert "gzip" in body["reason"]
    assert await eof_within(reader) == b""  # the stream cannot be parsed further
    writer.close()
    # A real gzip body is accepted.
    reader, writer = await server.connect()
    writer.write(request("POST", "/api/best5", gzip.compress(BODY), "Content-Encoding: gzip\r\n"))
    status, _, body = await read_answer(reader)
    assert (status, body) == (200, {"job_id": "job_id_1"})
    writer.close()
    assert_no_traceback(caplog)
    lines = [r.getMessage() for r in caplog.records if r.name == "lestats.http"]
    assert lines[0].startswith("-> POST /api/best5 (body not read: request body cannot be read")
    assert lines[1].startswith("<- POST /api/best5 400 ")


async def test_an_unknown_content_encoding_is_415_listing_the_allowed(live, http_dataset, caplog):
    server = await live(http_dataset)
    reader, writer = await server.connect()
    writer.write(request("POST", "/api/best5", BODY, "Content-Encoding: bogus\r\n"))
    status, _, body = await read_answer(reader)
    assert status == 415
    assert body == {
        "status": "error",
        "reason": "Content-Encoding 'bogus' is not supported",
        "allowed": ["gzip", "deflate", "identity"],
    }
    writer.close()
    assert_no_traceback(caplog)
    assert await server.engine.num_jobs_async() == 0


async def test_an_unknown_expect_is_417_json(live, http_dataset, caplog):
    server = await live(http_dataset)
    reader, writer = await server.connect()
    writer.write(request("POST", "/api/best5", BODY, "Expect: teapot\r\n"))
    status, _, body = await read_answer(reader)
    assert status == 417
    assert body == {"status": "error", "reason": "Unknown Expect: teapot"}
    writer.close()
    assert_no_traceback(caplog)
    # `Expect: 100-continue`, which curl sends for large bodies, still works.
    reader, writer = await server.connect()
    writer.write(request("POST", "/api/best5", BODY, "Expect: 100-continue\r\n"))
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 Continue")
    assert (await read_answer(reader))[2] == {"job_id": "job_id_1"}
    writer.close()


async def test_a_client_hanging_up_mid_body_is_one_warning_and_its_log_lines(
    live, http_dataset, caplog
):
    caplog.set_level(logging.INFO)
    server = await live(http_dataset)
    reader, writer = await server.connect()
    head = request("POST", "/api/best5", BODY)
    writer.write(head[: len(head) - len(BODY) + 7])  # headers and 7 bytes of the body
    await writer.drain()
    await until(lambda: server.server.requests_count == 1, "the request is being handled")
    writer.close()
    await writer.wait_closed()

    def exit_line() -> bool:
        return any(r.getMessage().startswith("<- POST /api/best5 499") for r in caplog.records)

    await until(exit_line, "the exit line of the abandoned request")
    lines = [r for r in caplog.records if r.name == "lestats.http"]
    assert [r.levelname for r in lines] == ["INFO", "WARNING", "INFO"], [
        r.getMessage() for r in lines
    ]
    note = f"client closed the connection after 7 of {len(BODY)} body bytes"
    assert lines[0].getMessage() == f"-> POST /api/best5 (body not read: {note})"
    assert lines[1].getMessage() == f"POST /api/best5: {note}"
    assert lines[2].getMessage().startswith("<- POST /api/best5 499 client closed the connection")
    assert_no_traceback(caplog)
    assert await server.engine.num_jobs_async() == 0
    assert len(await server.engine.jobs_async()) == 0
    assert await reader.read() == b""


async def test_a_long_request_target_is_cut_in_the_log(live, http_dataset, caplog):
    caplog.set_level(logging.INFO)
    server = await live(http_dataset)
    reader, writer = await server.connect()
    target = "/api/get_results/" + "9" * 5000
    writer.write(request("GET", target))
    status, _, body = await read_answer(reader)
    assert (status, body) == (404, {"status": "error", "reason": "Invalid job_id"})
    writer.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "lestats.http"]
    assert len(lines) == 2
    for line in lines:
        assert len(line) < 600, line
        assert f"...(+{len(target) - 200} chars)" in line


async def test_bad_input_harms_no_accepted_job(live, http_dataset):
    server = await live(http_dataset)
    first = await server.engine.submit_async("global_mean", OBESITY)
    for raw in PARSER_REFUSALS.values():
        reader, writer = await server.connect()
        writer.write(raw)
        status, _, _ = await read_answer(reader)
        assert 400 <= status < 500
        writer.close()
    reader, writer = await server.connect()
    writer.write(request("GET", f"/api/get_results/{first}?wait=10"))
    assert (await read_answer(reader))[2] == {"status": "done", "data": {"global_mean": 30.0}}
    writer.write(request("POST", "/api/global_mean", BODY))
    assert (await read_answer(reader))[2] == {"job_id": "job_id_2"}
    writer.close()
