"""The asyncio client's HTTP: one kept-alive `aiohttp.ClientSession` per event loop.

A session belongs to the loop it was made in, and a client may be used from several loops in
turn (a program calling `asyncio.run` more than once). Each loop gets its own session on its
first call; the session is closed by `close` from that loop, or else when the loop finishes: it
is held by an async generator, which `asyncio.run` (through `loop.shutdown_asyncgens`) closes
before closing the loop, so no "Unclosed client session" is ever reported.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

import aiohttp

from lestats.client.errors import ConnectionFailed
from lestats.client.protocol import Answer

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from lestats.client.protocol import Request


class SessionPerLoop:
    """The aiohttp sessions of one client, one per event loop that used it."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._timeout = timeout
        self._holders: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[aiohttp.ClientSession, None]
        ] = weakref.WeakKeyDictionary()
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, aiohttp.ClientSession
        ] = weakref.WeakKeyDictionary()

    async def request(self, request: Request) -> Answer:
        """Send `request` on this loop's session and read its answer.

        Raises:
            ConnectionFailed: no answer (refused, closed, timed out).
        """
        session = await self._session()
        timeout = aiohttp.ClientTimeout(total=self._timeout + request.wait)
        try:
            async with session.request(
                request.method,
                self.url + request.path,
                data=request.body,
                headers=request.headers,
                timeout=timeout,
            ) as response:
                body = await response.read()
                return Answer(response.status, body, response.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise ConnectionFailed(self.url, "no answer in time") from exc
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(self.url, f"{type(exc).__name__}: {exc}") from exc

    async def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            for old in [old for old in self._sessions if old.is_closed()]:
                del self._sessions[old]  # finished loops: their sessions were closed with them
                self._holders.pop(old, None)
            holder = _hold_session()
            session = await anext(holder)
            self._holders[loop] = holder
            self._sessions[loop] = session
        return session

    async def close(self) -> None:
        """Close the running loop's session, if it has one."""
        loop = asyncio.get_running_loop()
        self._sessions.pop(loop, None)
        holder = self._holders.pop(loop, None)
        if holder is not None:
            await holder.aclose()


async def _hold_session() -> AsyncGenerator[aiohttp.ClientSession, None]:
    """Yield a new session; close it when closed (by `close`, or by the loop's shutdown)."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    try:
        yield session  # parked here until aclose() throws GeneratorExit in
    finally:
        await session.close()
