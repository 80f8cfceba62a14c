"""Typed keys of the application's state."""

from __future__ import annotations

import asyncio

from aiohttp import web

from lestats.actors.engine import Engine

ENGINE = web.AppKey("engine", Engine)
"""The engine the application serves."""
CLOSING = web.AppKey("closing", asyncio.Event)
"""Set when the server begins to shut down, to release long-polls at once."""
BODY_TIMEOUT = web.AppKey("body_timeout", float)
"""Seconds a request's body may take to arrive once its headers have."""
OUTCOME = web.RequestKey("outcome", str)
"""A short note a handler leaves of what it did (job id, status), for the exit log line."""
