"""The request middleware: a log line on entry and exit of every route, and JSON for every error.

It is the one place that maps the package's error types to HTTP statuses.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web

from lestats.errors import (
    InvalidQuery,
    LeStatsError,
    Overloaded,
    ShuttingDown,
    StorageError,
    UnknownJob,
)
from lestats.http.keys import OUTCOME
from lestats.http.responses import error_response

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

log = logging.getLogger("lestats.http")

_KEPT_HEADERS = ("Allow", "Retry-After")
_LOGGED_BODY = 500


def error_for(exc: Exception) -> web.Response:
    """Map an error to its HTTP status and JSON body (the only such mapping)."""
    if isinstance(exc, web.HTTPException):
        headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
        return error_response(exc.status, _http_reason(exc), headers=headers)
    if isinstance(exc, UnknownJob):
        return error_response(404, "Invalid job_id")
    if isinstance(exc, InvalidQuery):
        return error_response(400, exc.reason, allowed=exc.allowed)
    if isinstance(exc, ShuttingDown):
        return error_response(503, "shutting down")
    if isinstance(exc, Overloaded | StorageError):
        retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return error_response(503, str(exc), headers=retry)
    return error_response(500, "internal error")


def _http_reason(exc: web.HTTPException) -> str:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return f"request body too large ({exc.text})"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method {exc.method} not allowed here (allowed: {allowed})"
    if isinstance(exc, web.HTTPNotFound):
        return "no such route (see GET /api for the list)"
    return exc.reason


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # noqa: PLR2004 - redirects pass through
            raise
        return error_for(exc)
    except LeStatsError as exc:
        request[OUTCOME] = str(exc)
        return error_for(exc)
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path_qs)
        return error_for(exc)


@web.middleware
async def log_and_map_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log entry and exit of every request; answer every failure as JSON, never a traceback."""
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        body = await request.read() if request.body_exists else b""
    except web.HTTPException as exc:
        log.info("-> %s %s (body not read: %s)", request.method, request.path_qs, exc.reason)
        response = error_for(exc)
    else:
        # repr keeps the entry on one line whatever the body holds: no forged log lines.
        params = body[:_LOGGED_BODY].decode(errors="replace")
        log.info("-> %s %s %r", request.method, request.path_qs, params)
        response = await _answer(request, handler)
    log.info(
        "<- %s %s %d %s (%.2f ms)",
        request.method,
        request.path_qs,
        response.status,
        request.get(OUTCOME, ""),
        (time.perf_counter() - started) * 1000,
    )
    return response
