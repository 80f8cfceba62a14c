"""The request middleware: a log line on entry and exit of every route, and JSON for every error.

It is the one place that maps the package's error types to HTTP statuses. It also reads every
request body (bounded in size and in time), and refuses requests sent by other web sites.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from lestats.errors import (
    InvalidQuery,
    LeStatsError,
    Overloaded,
    ShuttingDown,
    StorageError,
    UnknownJob,
)
from lestats.http.keys import BODY_TIMEOUT, OUTCOME
from lestats.http.origin import cross_site_refusal
from lestats.http.responses import error_response
from lestats.logs import DirectInfo
from lestats.metrics_stats import FAILURE, observe_request

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler
    from aiohttp.web_request import BaseRequest

log = logging.getLogger("lestats.http")
log_info = DirectInfo(log)
"""`log.info` for the entry and exit lines (every request writes two)."""

_KEPT_HEADERS = ("Allow", "Retry-After")
_LOGGED_BODY = 500
LOGGED_TARGET = 200
"""Characters of a request's path and query shown in the log (they may be 8 KiB long)."""
GONE = 499
"""The status logged for a request whose client left before its answer (as nginx does)."""
CONTENT_ENCODINGS = ("gzip", "deflate", "identity")
"""The request body encodings understood (aiohttp decodes them)."""


def shown_request(request: BaseRequest) -> str:
    """`METHOD /path?query` for the log, cut to `LOGGED_TARGET` characters, on one line."""
    target = request.raw_path
    if len(target) > LOGGED_TARGET:
        target = f"{target[:LOGGED_TARGET]}...(+{len(target) - LOGGED_TARGET} chars)"
    return f"{request.method[:20]} {target}"


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


class _BodyRefused(Exception):  # noqa: N818 - a refusal, carried to one place
    """The body was not read; `response` says why (`note` for the log)."""

    def __init__(self, response: web.Response, note: str) -> None:
        super().__init__(note)
        self.response = response
        self.note = note


async def _read_body(request: web.Request) -> bytes:
    """The whole body (there is one), or `_BodyRefused`: bad encoding, too large, too slow..."""
    encoding = request.headers.get("Content-Encoding")
    if encoding is not None and encoding.strip().lower() not in CONTENT_ENCODINGS:
        reason = f"Content-Encoding {encoding[:40]!r} is not supported"
        raise _BodyRefused(error_response(415, reason, allowed=CONTENT_ENCODINGS), reason)
    seconds = request.app[BODY_TIMEOUT]
    try:
        if request.content.is_eof():  # all here (the usual small JSON): no timer to wait on
            return await request.read()
        async with asyncio.timeout(seconds):
            return await request.read()
    except web.HTTPException as exc:
        raise _BodyRefused(error_for(exc), exc.reason) from None
    except RequestPayloadError as exc:
        detail = " ".join(str(exc).split())
        reason = f"request body cannot be read: {detail}"[:300]
        raise _BodyRefused(error_response(400, reason), reason) from None
    except TimeoutError:
        reason = f"request body not complete within {seconds:g} s"
        response = error_response(408, reason)
        response.force_close()
        raise _BodyRefused(response, reason) from None
    except ConnectionError:
        raise _BodyRefused(
            error_response(GONE, "client closed the connection"), _hung_up(request)
        ) from None


def _hung_up(request: web.Request) -> str:
    """The log's account of a client that left while sending its body."""
    received = request.content.total_bytes
    expected = request.content_length
    of = f" of {expected}" if expected is not None else ""
    return f"client closed the connection after {received}{of} body bytes"


def _failed(request: web.Request, exc: Exception) -> web.Response:
    """The answer to a handler's exception (called while it is being handled)."""
    if isinstance(exc, LeStatsError):
        request[OUTCOME] = str(exc)
        request[FAILURE] = exc
    elif not isinstance(exc, web.HTTPException):
        log.error("%s failed", shown_request(request), exc_info=exc)
    return error_for(exc)


@web.middleware
async def log_and_map_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log entry and exit of every request; answer every failure as JSON, never a traceback.

    A client that leaves (its handler is then cancelled, or its body cut) gets one WARNING line
    if it left mid-body, and its exit line with status 499, like every other request.
    """
    started = time.perf_counter()
    shown = shown_request(request)
    response: web.StreamResponse
    reading = True
    try:
        try:
            body = await _read_body(request) if request.body_exists else b""
        except _BodyRefused as refused:
            log_info("-> %s (body not read: %s)", shown, refused.note)
            if refused.response.status == GONE:
                log.warning("%s: %s", shown, refused.note)
            response = refused.response
        else:
            reading = False
            # repr keeps the entry on one line whatever the body holds: no forged log lines.
            params = body[:_LOGGED_BODY].decode(errors="replace")
            log_info("-> %s %r", shown, params)
            refusal = cross_site_refusal(request)
            if refusal is None:
                try:  # here rather than in a coroutine of its own: every request passes
                    response = await handler(request)
                except Exception as exc:
                    if isinstance(exc, web.HTTPException) and exc.status < 400:  # noqa: PLR2004
                        raise  # redirects pass through
                    response = _failed(request, exc)
            else:
                request[OUTCOME] = refusal
                response = error_response(403, refusal)
    except asyncio.CancelledError:
        if reading:
            note = _hung_up(request)
            log_info("-> %s (body not read: %s)", shown, note)
            log.warning("%s: %s", shown, note)
        _exit(request, shown, GONE, "client closed the connection", started)
        raise
    _exit(request, shown, response.status, request.get(OUTCOME, ""), started)
    return response


def _exit(request: web.Request, shown: str, status: int, outcome: str, started: float) -> None:
    """The exit log line, and the request counted for the metrics."""
    seconds = time.perf_counter() - started
    if len(outcome) > LOGGED_TARGET:
        outcome = f"{outcome[:LOGGED_TARGET]}...(+{len(outcome) - LOGGED_TARGET} chars)"
    log_info("<- %s %d %s (%.2f ms)", shown, status, outcome, seconds * 1000)
    observe_request(request, status, seconds)
