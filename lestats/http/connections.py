"""The connection guard: timeouts for idle and slow clients, a connection cap, JSON refusals.

aiohttp's own `RequestHandler` already closes a connection that completes no request within its
keep-alive timeout (counted from the opening, or from the end of the previous response); here
that is the idle timeout. This module adds what aiohttp lacks:

- a header timeout: a request whose first bytes arrived must complete its headers within it, or
  it is answered `408` (JSON) and closed. The body has its own timeout, in the middleware;
- a send timeout: a client that leaves its answer unread (the socket's buffers full) for longer
  is dropped, so that it cannot hold a connection, and its handler, for ever;
- a connection cap: past it, a new connection takes the place of the connection idle the
  longest (so a flood of idle sockets cannot lock out real clients), or, when every connection
  is busy with a request, is answered `503` (JSON, with `Retry-After`) and closed;
- JSON for the refusals aiohttp's parser makes itself (bad method, bad framing, ...), logged as
  one WARNING line each instead of a traceback;
- one log line per episode when `accept()` runs out of file descriptors, instead of one
  traceback per attempt.

It leans on a few attributes of aiohttp's `RequestHandler` that are not public (`_waiter`,
`_messages`, `_next_keepalive_close_time`, `_current_request`); `tests/test_http_connections.py`
pins the behaviour they give.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from lestats import jsonio
from lestats.http.middlewares import shown_request
from lestats.http.responses import error_response

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from aiohttp.web_request import BaseRequest

log = logging.getLogger("lestats.http")

DEFAULT_IDLE_TIMEOUT = 15.0
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_SEND_TIMEOUT = 30.0
MAX_DEFAULT_CONNECTIONS = 10_000
RESERVED_FDS = 256
"""File descriptors kept for everything but connections (journal, result files, log, pipes)."""
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def default_max_connections() -> int:
    """The open-file limit less `RESERVED_FDS`, at most `MAX_DEFAULT_CONNECTIONS`, at least 16."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_DEFAULT_CONNECTIONS
    return max(16, min(MAX_DEFAULT_CONNECTIONS, soft - RESERVED_FDS))


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a client may stay idle or take over a request, and how many may connect."""

    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """Seconds a connection may wait without sending a request (at its start or between two)."""
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    """Seconds from a request's first byte to the end of its headers."""
    send_timeout: float = DEFAULT_SEND_TIMEOUT
    """Seconds an answer may wait on a client that does not read it (buffers full)."""
    max_connections: int = field(default_factory=default_max_connections)
    """Open client connections at most; see `GuardedServer`."""

    def __post_init__(self) -> None:
        timeouts = (self.idle_timeout, self.header_timeout, self.send_timeout)
        if not (min(timeouts) > 0 and self.max_connections > 0):
            raise ValueError(f"connection limits must be positive: {self}")


def _raw_json_answer(status: int, phrase: str, reason: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for use outside any request."""
    body = jsonio.dumps({"status": "error", "reason": reason})
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol, plus the header timeout and JSON for parser refusals."""

    def __init__(
        self,
        manager: GuardedServer,
        *,
        header_timeout: float,
        send_timeout: float,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._send_timeout = send_timeout
        self._send_timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        """Whether the connection waits for a request (none is being handled)."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._messages

    @property
    def idle_deadline(self) -> float:
        """When the idle timeout closes this connection (loop time): earliest = idle longest."""
        return self._next_keepalive_close_time

    def data_received(self, data: bytes) -> None:
        """Feed aiohttp's parser; time the headers of a request that has begun.

        Every request passes here, hence `idle` spelt out: the waiter is the same object
        before and after the parser ran (aiohttp sets its result when headers are complete).
        """
        waiter = self._waiter
        if waiter is None or waiter.done() or self._messages:  # a request is being handled
            super().data_received(data)
            return
        super().data_received(data)
        if not data:
            return
        if not waiter.done() and not self._messages:  # headers begun, not complete yet
            if self._header_timer is None:
                self._header_timer = self._loop.call_later(
                    self._header_timeout, self._headers_too_slow
                )
        elif self._header_timer is not None:
            self._cancel_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Stop the timers, then let aiohttp clean up."""
        self._cancel_header_timer()
        self._cancel_send_timer()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client reads slower than we write: it has `send_timeout` seconds to catch up."""
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self._loop.call_later(self._send_timeout, self._answer_not_read)

    def resume_writing(self) -> None:
        """The client caught up."""
        self._cancel_send_timer()
        super().resume_writing()

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _answer_not_read(self) -> None:
        self._send_timer = None
        transport = self.transport
        if transport is None:
            return
        log.warning(
            "dropped a connection from %s: its answer unread for %g s",
            _peer(self),
            self._send_timeout,
        )
        transport.abort()  # close() would wait for the unread bytes to leave
        self.force_close()

    def refuse(self, answer: bytes) -> None:
        """Send a whole prepared response and close (nothing was read of any request)."""
        if self.transport is not None:
            self.transport.write(answer)
        self.force_close()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.idle or self.transport is None:
            return
        reason = f"request headers not complete within {self._header_timeout:g} s"
        log.warning("closed a connection from %s: %s", _peer(self), reason)
        self.refuse(_raw_json_answer(408, "Request Timeout", reason))

    def log_exception(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        """Report an unexpected error as aiohttp does, unless it is an undecodable body's.

        After the middleware has answered `400` to a body that cannot be decoded, aiohttp drains
        the rest of it ("lingering") and meets the same error again: already logged, not a fault.
        """
        if isinstance(kwargs.get("exc_info"), RequestPayloadError):
            log.debug("rest of an undecodable body dropped: %s", kwargs["exc_info"])
            return
        super().log_exception(*args, **kwargs)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """JSON instead of aiohttp's plain text; one WARNING line for a malformed request.

        Called for what aiohttp's parser refuses (status 400 with the parser's `message`) and
        for an exception that escaped the middleware (500, logged with its traceback).
        """
        if status >= 500:  # noqa: PLR2004 - a bug of ours, not the client's
            self.log_exception("%s failed", shown_request(request), exc_info=exc)
            reason = "internal error"
        else:
            detail = (message or str(exc or "") or "malformed").strip().splitlines()[0]
            reason = f"malformed HTTP request: {detail}"[:300]
            log.warning("refused a request from %s: %d %s", request.remote, status, reason)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; the connection is closed")
        response = error_response(status, reason)
        response.force_close()
        return response

    def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        """Turn an HTTP error raised before the middleware ran (`Expect`) into JSON.

        Not a coroutine itself: it hands over aiohttp's, one coroutine less per request.
        """
        if isinstance(resp, web.HTTPException) and resp.status >= 400:  # noqa: PLR2004
            log.info(
                "<- %s %d %s (refused before routing)",
                shown_request(request),
                resp.status,
                resp.reason,
            )
            json_answer = error_response(resp.status, resp.text or resp.reason)
            json_answer.force_close()
            resp = json_answer
        return super().finish_response(request, resp, start_time)


def _peer(handler: RequestHandler) -> str:
    peer = handler.peername
    if isinstance(peer, tuple) and len(peer) >= 2:  # noqa: PLR2004 - (host, port, ...)
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class GuardedServer(web.Server):
    """aiohttp's low-level server with `GuardedRequestHandler`s and the connection cap.

    At the cap, a new connection closes the connection that has been idle the longest (a
    keep-alive client then reconnects, as it must be ready to after any idle close); when none
    is idle, the new one is answered `503` and closed. Requests in progress are never cut.
    """

    def __init__(
        self,
        handler: Any,  # noqa: ANN401 - aiohttp's own request handler type
        *,
        limits: ConnectionLimits,
        accept_trouble: AcceptTrouble,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.evicted = 0
        self.refused = 0
        self._accept_trouble = accept_trouble

    def __call__(self) -> RequestHandler:
        """A protocol for one new connection."""
        return GuardedRequestHandler(
            self,
            loop=self._loop,
            keepalive_timeout=self.limits.idle_timeout,
            header_timeout=self.limits.header_timeout,
            send_timeout=self.limits.send_timeout,
            **self._kwargs,
        )

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        """Count the connection; past the cap, make room or refuse it."""
        super().connection_made(handler, transport)
        self._accept_trouble.accepted()
        if len(self._connections) <= self.limits.max_connections:
            return
        idle = [
            other
            for other in self._connections
            if other is not handler
            and isinstance(other, GuardedRequestHandler)
            and other.transport is not None
            and other.idle
        ]
        if idle:
            min(idle, key=lambda other: other.idle_deadline).force_close()
            self.evicted += 1
            return
        self.refused += 1
        cast("GuardedRequestHandler", handler).refuse(
            _raw_json_answer(
                503,
                "Service Unavailable",
                f"too many connections (at most {self.limits.max_connections}); retry later",
                "Retry-After: 1\r\n",
            )
        )


class AcceptTrouble:
    """Turns asyncio's report of each failed `accept()` into one line per episode.

    After EMFILE (and the like) asyncio retries a second later, but reports every failure
    through the loop's exception handler with a traceback, and keeps trying the rest of its
    accept batch meanwhile: about a hundred reports a second. An episode starts at the first
    failure and ends once a connection was made and no accept failed for `_QUIET` seconds
    after it: longer than asyncio's retry, so a retry that fails again keeps the episode going
    (connections accepted in the same batch as a failure are set up just after it). The end is
    checked by a timer, so it is logged even when no other connection comes.
    """

    _QUIET = 1.5

    def __init__(self) -> None:
        self._since: float | None = None
        self._last_failure = 0.0
        self._failures = 0
        self._previous: Any = None
        self._check: asyncio.TimerHandle | None = None
        self._accepted_at = 0.0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Become `loop`'s exception handler (passing on every other report)."""
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self._handle)

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give `loop` its previous exception handler back."""
        loop.set_exception_handler(self._previous)
        if self._check is not None:
            self._check.cancel()
            self._check = None

    def accepted(self) -> None:
        """A connection was made: the episode ends if no accept fails for `_QUIET` seconds."""
        if self._since is None:
            return
        self._accepted_at = time.monotonic()
        if self._check is None:
            self._check = asyncio.get_running_loop().call_later(self._QUIET, self._end_if_quiet)

    def _end_if_quiet(self) -> None:
        self._check = None
        if self._since is None or self._last_failure > self._accepted_at:
            return  # failing since the last connection made: the next one checks again
        quiet = time.monotonic() - self._last_failure
        if quiet < self._QUIET:
            loop = asyncio.get_running_loop()
            self._check = loop.call_later(self._QUIET - quiet, self._end_if_quiet)
            return
        log.warning(
            "accepting connections again after %.1f s (%d failed accept attempts)",
            self._last_failure - self._since,
            self._failures,
        )
        self._since = None
        self._failures = 0

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if (
            isinstance(exc, OSError)
            and exc.errno in _OUT_OF_FDS
            and "accept" in str(context.get("message", ""))
        ):
            self._failures += 1
            self._last_failure = time.monotonic()
            if self._since is None:
                self._since = time.monotonic()
                log.warning(
                    "cannot accept connections: %s; retrying every second until some close",
                    exc.strerror or exc,
                )
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)


class GuardedAppRunner(web.AppRunner):
    """An `AppRunner` whose server is a `GuardedServer`, with handler cancellation on.

    Handler cancellation (aiohttp's option, off by default) cancels a request's handler when
    its client disconnects: a long-poll then frees its waiter slot at once.
    """

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(app, handler_cancellation=True, **kwargs)
        self._limits = limits
        self._accept_trouble = AcceptTrouble()

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app, as aiohttp does
        loop = asyncio.get_running_loop()
        self._accept_trouble.install(loop)
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            loop=loop,
            limits=self._limits,
            accept_trouble=self._accept_trouble,
            **self._kwargs,
        )

    async def cleanup(self) -> None:
        """Stop serving as aiohttp does, then give the loop its exception handler back."""
        try:
            await super().cleanup()
        finally:
            self._accept_trouble.uninstall(asyncio.get_running_loop())
