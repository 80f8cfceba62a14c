"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from lestats.http.connections import DEFAULT_BODY_TIMEOUT
from lestats.http.keys import BODY_TIMEOUT, CLOSING, ENGINE
from lestats.http.middlewares import log_and_map_errors
from lestats.http.page import page_routes
from lestats.http.queries import install as install_queries
from lestats.http.routes import routes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from lestats.actors.engine import Engine

MAX_BODY_BYTES = 64 * 1024


def create_app(
    engine: Engine,
    *,
    max_body: int = MAX_BODY_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> web.Application:
    """An application serving `engine`, which it owns from then on.

    The application starts the engine (unless already started) when it starts, and on cleanup
    drains it: every accepted job finishes before the engine stops. A request body must arrive
    within `body_timeout` seconds of its headers (then `408`).
    """
    if body_timeout <= 0:
        raise ValueError(f"body_timeout must be positive, not {body_timeout}")
    app = web.Application(client_max_size=max_body, middlewares=[log_and_map_errors])
    app[ENGINE] = engine
    app[BODY_TIMEOUT] = body_timeout
    app[CLOSING] = asyncio.Event()
    app.add_routes(routes(engine.registry))
    install_queries(app)
    app.add_routes(page_routes())
    app.on_shutdown.append(_release_waiters)
    app.cleanup_ctx.append(_engine_life)
    return app


async def _engine_life(app: web.Application) -> AsyncIterator[None]:
    engine = app[ENGINE]
    if not engine.started:
        await asyncio.to_thread(engine.start)
    yield
    await engine.shutdown_async()


async def _release_waiters(app: web.Application) -> None:
    app[CLOSING].set()
