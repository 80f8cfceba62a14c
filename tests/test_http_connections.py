"""Idle, slow and too many clients, against the real server (`GuardedAppRunner` on a real socket).

Each test speaks raw HTTP/1.1 over a socket, and waits on what the server does (an answer, the
end of the stream) with a deadline, never a fixed sleep: idle keep-alive connections are closed
after the idle timeout, slow headers and slow bodies get `408` JSON, and past the connection cap
the longest-idle connection makes room, or the new one gets `503` JSON when all are busy.
Long-polls have their own bound, free it when their client hangs up, and are answered at shutdown.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
import time

from http_support import OBESITY, Gate, until
from raw_http import DEADLINE, eof_within, read_answer, request

from lestats.http.connections import AcceptTrouble, ConnectionLimits

pytest_plugins = ["http_support", "raw_http"]


# --- idle and slow clients -----------------------------------------------------------------------


async def test_an_idle_connection_is_closed_after_the_idle_timeout(live, http_dataset):
    server = await live(http_dataset, limits=ConnectionLimits(idle_timeout=0.3))
    reader, writer = await server.connect()
    started = time.monotonic()
    assert await eof_within(reader) == b""  # never sent a byte: closed without an answer
    assert time.monotonic() - started >= 0.25
    writer.close()

    # A keep-alive connection is served, then closed once idle for the timeout.
    reader, writer = await server.connect()
    writer.write(request("GET", "/api/health"))
    status, headers, body = await read_answer(reader)
    assert (status, body["status"]) == (200, "ok")
    assert headers.get("connection", "keep-alive").lower() != "close"
    writer.write(request("GET", "/api/num_jobs"))  # still open: a second request is served
    assert (await read_answer(reader))[2] == {"status": "done", "num_jobs": 0}
    assert await eof_within(reader) == b""
    writer.close()


async def test_headers_dribbled_too_slowly_get_408_then_the_connection_closes(
    live, http_dataset, caplog
):
    limits = ConnectionLimits(idle_timeout=30, header_timeout=0.4)
    server = await live(http_dataset, limits=limits)
    reader, writer = await server.connect()
    started = time.monotonic()
    answer = asyncio.ensure_future(read_answer(reader))
    for byte in request("GET", "/api/health"):
        if answer.done():
            break
        writer.write(bytes([byte]))  # a slowloris: one byte every 50 ms, never the end
        await asyncio.wait((answer,), timeout=0.05)
    status, headers, body = await answer
    assert status == 408
    assert body == {"status": "error", "reason": "request headers not complete within 0.4 s"}
    assert headers["connection"] == "close"
    assert await eof_within(reader) == b""
    assert 0.35 <= time.monotonic() - started < DEADLINE
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "lestats.http"]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "request headers not complete" in warnings[0].getMessage()
    writer.close()


async def test_a_body_sent_too_slowly_gets_408_and_both_log_lines(live, http_dataset, caplog):
    caplog.set_level(logging.INFO, logger="lestats")
    server = await live(http_dataset, body_timeout=0.3)
    reader, writer = await server.connect()
    body = json.dumps({"question": OBESITY}).encode()
    head = request("POST", "/api/global_mean", body)
    writer.write(head[: len(head) - len(body) + 5])  # the headers and 5 bytes of the body
    status, headers, answer = await read_answer(reader)
    assert status == 408
    assert answer == {"status": "error", "reason": "request body not complete within 0.3 s"}
    assert headers["connection"] == "close"
    writer.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "lestats.http"]
    assert lines[0] == (
        "-> POST /api/global_mean (body not read: request body not complete within 0.3 s)"
    )
    assert lines[1].startswith("<- POST /api/global_mean 408 ")
    assert await server.engine.num_jobs_async() == 0


async def test_a_client_that_never_reads_its_answers_is_dropped(live, http_dataset, caplog):
    server = await live(http_dataset, limits=ConnectionLimits(send_timeout=0.5))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)  # noqa: FBT003 - the socket module's own signature
    await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    # 2,000 pipelined requests for a 29 KB document, and never a byte read: megabytes pile up.
    writer.write(request("GET", "/api/openapi.json") * 2000)

    def dropped() -> bool:
        return any("its answer unread for 0.5 s" in r.getMessage() for r in caplog.records)

    await until(dropped, "the non-reading client is dropped", DEADLINE)
    await until(lambda: not server.server.connections, "its connection is gone", DEADLINE)
    writer.transport.abort()
    # The server goes on serving others.
    other_reader, other_writer = await server.connect()
    other_writer.write(request("GET", "/api/health"))
    assert (await read_answer(other_reader))[0] == 200
    other_writer.close()
    del reader


# --- the connection cap --------------------------------------------------------------------------


async def test_past_the_cap_the_longest_idle_connection_makes_room(live, http_dataset):
    server = await live(http_dataset, limits=ConnectionLimits(max_connections=3))
    idle = [await server.connect() for _ in range(3)]
    await until(lambda: len(server.server.connections) == 3, "three connections open")
    reader, writer = await server.connect()
    writer.write(request("GET", "/api/health"))
    status, _, body = await read_answer(reader)
    assert (status, body["status"]) == (200, "ok")
    assert await eof_within(idle[0][0]) == b""  # the first, idle the longest, was closed
    for other_reader, other_writer in idle[1:]:
        other_writer.write(request("GET", "/api/num_jobs"))
        assert (await read_answer(other_reader))[0] == 200
    assert server.server.evicted >= 1
    for _, other_writer in [*idle, (reader, writer)]:
        other_writer.close()


async def test_past_the_cap_with_every_connection_busy_a_new_one_gets_503(live, http_dataset):
    gate = Gate()
    server = await live(http_dataset, limits=ConnectionLimits(max_connections=2), gate=gate)
    job_id = await server.engine.submit_async("global_mean", OBESITY)
    busy = [await server.connect() for _ in range(2)]
    for _, writer in busy:
        writer.write(request("GET", f"/api/get_results/{job_id}?wait=20"))
    await until(lambda: server.engine.waiting == 2, "both long-polls wait")

    reader, writer = await server.connect()
    status, headers, body = await read_answer(reader)
    assert status == 503
    assert headers["retry-after"] == "1"
    assert body == {
        "status": "error",
        "reason": "too many connections (at most 2); retry later",
    }
    assert await eof_within(reader) == b""
    writer.close()

    gate.release()  # the existing connections are served as usual
    for busy_reader, busy_writer in busy:
        status, _, answer = await read_answer(busy_reader)
        assert (status, answer) == (200, {"status": "done", "data": {"global_mean": 30.0}})
        busy_writer.close()
    assert server.server.refused == 1


# --- long-polls: their own bound, freed on hang-up, answered at shutdown -------------------------


async def test_a_long_poll_whose_client_hangs_up_frees_its_place_at_once(live, http_dataset):
    gate = Gate()
    server = await live(http_dataset, gate=gate, max_waiters=2)
    job_id = await server.engine.submit_async("global_mean", OBESITY)
    waiters = [await server.connect() for _ in range(2)]
    for _, writer in waiters:
        writer.write(request("GET", f"/api/get_results/{job_id}?wait=30"))
    await until(lambda: server.engine.waiting == 2, "both long-polls wait")

    third_reader, third_writer = await server.connect()
    third_writer.write(request("GET", f"/api/get_results/{job_id}?wait=30"))
    status, _, body = await read_answer(third_reader)
    assert status == 503
    assert "waiter bound" in body["reason"]

    waiters[0][1].close()  # hang up
    await until(lambda: server.engine.waiting == 1, "the hung-up waiter's place is free", 5)
    third_writer.write(request("GET", f"/api/get_results/{job_id}?wait=30"))
    await until(lambda: server.engine.waiting == 2, "a new long-poll takes the place")
    gate.release()
    for reader in (waiters[1][0], third_reader):
        status, _, body = await read_answer(reader)
        assert (status, body["status"]) == (200, "done")
    third_writer.close()
    waiters[1][1].close()


async def test_at_shutdown_every_long_poll_is_answered_running_even_past_the_request_places(
    live, http_dataset, tmp_path
):
    gate = Gate()
    count = 40
    server = await live(http_dataset, gate=gate, max_requests=8, max_waiters=count)
    job_id = await server.engine.submit_async("global_mean", OBESITY)
    waiters = [await server.connect() for _ in range(count)]
    for _, writer in waiters:
        writer.write(request("GET", f"/api/get_results/{job_id}?wait=30"))
    await until(lambda: server.engine.waiting == count, "every long-poll waits")

    closing = asyncio.ensure_future(server.runner.cleanup())
    answers = await asyncio.gather(*(read_answer(reader) for reader, _ in waiters))
    assert [(status, body) for status, _, body in answers] == [(200, {"status": "running"})] * count
    assert not closing.done()  # the accepted job still drains before the server stops
    gate.release()
    await asyncio.wait_for(closing, DEADLINE)
    result = json.loads((tmp_path / "results" / f"{job_id}.json").read_text())
    assert result == {"global_mean": 30.0}
    for _, writer in waiters:
        writer.close()


def accept_failed(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio reports when `accept()` finds no descriptor left."""
    loop.call_exception_handler(
        {
            "message": "socket.accept() out of system resource",
            "exception": OSError(errno.EMFILE, "Too many open files"),
        }
    )


async def test_an_accept_episode_ends_by_itself_only_once_accepts_stop_failing(caplog):
    loop = asyncio.get_running_loop()
    trouble = AcceptTrouble()
    trouble.install(loop)
    caplog.set_level(logging.WARNING, logger="lestats.http.connections")

    def lines(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if text in r.getMessage()]

    try:
        accept_failed(loop)
        trouble.accepted()
        accept_failed(loop)  # asyncio's retry failed again after that connection was made
        await until(lambda: trouble._check is None, "the first check")
        assert lines("accepting connections again") == []  # failing since the last connection
        trouble.accepted()  # the last connection: no other comes, the timer ends the episode
        await until(lambda: lines("accepting connections again"), "the end of the episode")
    finally:
        trouble.uninstall(loop)
    assert len(lines("cannot accept connections")) == 1
    (end,) = lines("accepting connections again")
    assert end.endswith("(2 failed accept attempts)")
