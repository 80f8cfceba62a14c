"""A real server in this process: `create_app(engine)` on a socket of 127.0.0.1, in a thread.

For tests of clients that must talk to a real server while the test controls the engine (a gated
or failing runner, a low `max_pending`), which `run.py` in a subprocess cannot offer. The server
runs on its own event loop in its own thread, so blocking clients can be called from the test.

`LiveServer.seen` lists every request the application answered (method, path with query, status,
the client's port: one port per connection), and `arrived` every path as it came in (before its
answer), both recorded by an outermost middleware.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from lestats.http.app import create_app

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

    from lestats.actors.engine import Engine

START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    status: int
    port: int


class LiveServer:
    """`with LiveServer(engine) as server:` serves `engine` at `server.url` for the block.

    Leaving the block stops the server, which drains and stops the engine (as `run.py` does).
    """

    def __init__(self, engine: Engine, *, keepalive_timeout: float = 75.0, **app: Any) -> None:
        self.engine = engine
        self.app = create_app(engine, **app)
        self.app.middlewares.insert(0, self._record)
        self.seen: list[Seen] = []
        self.arrived: list[str] = []
        self.url = ""
        self._keepalive = keepalive_timeout
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-server")

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.arrived.append(request.path_qs)
        response = await handler(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        port = peer[1] if peer else 0
        self.seen.append(Seen(request.method, request.path_qs, response.status, port))
        return response

    async def _start(self) -> str:
        self._runner = web.AppRunner(
            self.app, access_log=None, keepalive_timeout=self._keepalive, shutdown_timeout=5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def call(self, coro: Any, timeout: float = START_TIMEOUT) -> Any:
        """Run a coroutine on the server's loop and wait for its value."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def connections(self) -> int:
        """How many connections the server holds open now."""

        async def count() -> int:
            server = self._runner.server if self._runner else None
            return len(server.connections) if server else 0

        return self.call(count())

    def requests(self, path_start: str) -> list[Seen]:
        """The requests seen whose path starts with `path_start`."""
        return [seen for seen in list(self.seen) if seen.path.startswith(path_start)]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until `predicate()` is true, or fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"still not true after {timeout} s: {predicate}")
            time.sleep(0.005)

    def __enter__(self) -> Self:
        self._thread.start()
        try:
            self.url = self.call(self._start())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._runner is not None:
                self.call(self._runner.cleanup(), STOP_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT)
            self._loop.close()
