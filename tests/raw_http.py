"""Raw HTTP/1.1 against a real server on a real socket: the `live` fixture and its helpers.

Register it with `pytest_plugins = ["http_support", "raw_http"]`. PYTEST_DONT_REWRITE (see
http_support): every helper's assert carries its own message.

Fixtures:
    live    `await live(dataset, limits=..., body_timeout=..., gate=..., **engine_options)` ->
            `Live`: `create_app(Engine(...))` served by `GuardedAppRunner` on 127.0.0.1 (as
            run.py serves it), stopped (gate released, jobs drained) at teardown

Helpers: `read_answer` (status, headers, JSON body), `eof_within` (the server must close),
`request` (the bytes of one request), `job` (a global_mean POST).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from http_support import OBESITY, Gate

from lestats.actors.engine import Engine
from lestats.http.app import create_app
from lestats.http.connections import ConnectionLimits, GuardedAppRunner
from lestats.http.keys import ENGINE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from lestats.data.dataset import Dataset

DEADLINE = 10.0
"""Seconds a test waits for the server to do something before failing."""


class Live:
    """A real server on 127.0.0.1 with its engine; `connect()` opens raw connections to it."""

    def __init__(self, runner: GuardedAppRunner, engine: Engine) -> None:
        self.runner = runner
        self.engine = engine
        host, port = runner.addresses[0][:2]
        self.host, self.port = str(host), int(port)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    @property
    def server(self) -> Any:
        return self.runner.server


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Live]]]:
    """A factory: `await live(dataset, limits=..., body_timeout=..., **engine_options)`."""
    started: list[tuple[GuardedAppRunner, Gate | None]] = []

    async def start(
        dataset: Dataset,
        *,
        limits: ConnectionLimits | None = None,
        body_timeout: float = 10.0,
        gate: Gate | None = None,
        **options: Any,
    ) -> Live:
        options.setdefault("results_dir", tmp_path / "results")
        options.setdefault("workers", 1)
        if gate is not None:
            options["runner"] = gate
        engine = Engine(dataset, **options)
        app = create_app(engine, body_timeout=body_timeout)
        runner = GuardedAppRunner(app, limits or ConnectionLimits(), access_log=None)
        await runner.setup()
        started.append((runner, gate))
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return Live(runner, app[ENGINE])

    yield start
    for runner, gate in started:
        if gate is not None:
            gate.release()
        if runner.server is not None:  # a test may have closed it already
            await runner.cleanup()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    """One HTTP response: status, headers (lower-case names), JSON body (checked to be JSON)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), DEADLINE)
    assert headers["content-type"].startswith("application/json"), headers
    return status, headers, json.loads(body)


async def eof_within(reader: asyncio.StreamReader, seconds: float = DEADLINE) -> bytes:
    """Everything the server still sends until it closes the connection (which it must)."""
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {seconds} s")
    except ConnectionResetError:
        return b""


def request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}{extra}\r\n".encode() + body


def job(question: str = OBESITY) -> bytes:
    return request("POST", "/api/global_mean", json.dumps({"question": question}).encode())
