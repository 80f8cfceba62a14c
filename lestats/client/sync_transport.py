"""The synchronous client's HTTP: the standard library's `http.client`, kept alive, in a pool.

Chosen on measurement (`python -m bench.bench_client`): against the same server, a kept-alive
`http.client` connection costs the calling process about 66 us of CPU per request, where urllib3
costs 146, httpx 250, requests 300 and an aiohttp session on a private loop thread 134; it also
answers the most requests per second, from one thread and from four. What urllib3 would add (a
thread-safe pool, noticing connections the server closed) is the small class below.
"""

from __future__ import annotations

import http.client
import select
import threading
from typing import TYPE_CHECKING

from lestats.client.errors import ConnectionFailed
from lestats.client.protocol import Answer

if TYPE_CHECKING:
    import socket

    from lestats.client.protocol import Request

MAX_IDLE = 16
"""Idle connections kept for reuse; more threads than this still work, with new connections."""

_BROKEN = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""How a kept-alive connection the server had closed fails on reuse, before any answer byte."""


class ConnectionPool:
    """Kept-alive connections to one server, shared by any number of threads.

    A thread takes an idle connection (or opens one), sends its request, reads the whole answer
    and gives the connection back unless either side said `Connection: close`. A connection that
    turns out closed by the server (idle too long, server restarted) is replaced and the request
    sent once more on a fresh one: this is the case where nothing reached the server, as browsers
    assume for a kept-alive connection that yields no answer byte at all.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.url = f"http://{host}:{port}"
        self._host = host
        self._port = port
        self._timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, request: Request) -> Answer:
        """Send `request` and read its answer.

        Raises:
            ConnectionFailed: no answer (refused, closed, timed out).
        """
        timeout = self._timeout + request.wait
        conn = self._take()
        if conn is not None:
            try:
                return self._exchange(conn, request, timeout)
            except _BROKEN:
                conn.close()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise ConnectionFailed(self.url, _problem(exc)) from exc
        conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            return self._exchange(conn, request, timeout)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectionFailed(self.url, _problem(exc)) from exc

    def _exchange(
        self, conn: http.client.HTTPConnection, request: Request, timeout: float
    ) -> Answer:
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.request(request.method, request.path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        body = response.read()
        answer = Answer(response.status, body, response.getheader("Retry-After"))
        if response.will_close:
            conn.close()
        else:
            self._give(conn)
        return answer

    def _take(self) -> http.client.HTTPConnection | None:
        """An idle connection the server has not closed, if any."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if conn.sock is not None and not _readable(conn.sock):
                return conn
            conn.close()  # readable while idle: closed by the server (or garbage); not reusable

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection (those in use close when their request ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read: for a kept-alive connection, its end."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _problem(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
