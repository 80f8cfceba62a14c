"""The bounded places for requests waiting on the actors, with an optional bounded wait.

Every request the facade sends to an actor takes a place until its reply comes back, so no
mailbox grows without bound. When none is free, a request is refused with `Overloaded` at once
(what the HTTP server wants: a 503 with `Retry-After`), or, when the caller allows it, waits up
to `wait` seconds for a place: a thread on a condition, a coroutine on a future of its own loop
(never blocking it). A freed place goes to the oldest coroutine waiting, else to a thread.
"""

from __future__ import annotations

import asyncio
import collections
import threading

from lestats.errors import Overloaded


class RequestSlots:
    """At most `limit` requests at once; `Overloaded(refusal)` past that (after `wait`, if any).

    The fast path is a counter under a plain lock: `threading.BoundedSemaphore` does the same
    through a `Condition`, several times slower, on every request.
    """

    def __init__(self, limit: int, refusal: str) -> None:
        self._limit = limit
        self._refusal = refusal
        self._taken = 0
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._threads_waiting = 0
        self._coroutines: collections.deque[
            tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]
        ] = collections.deque()

    @property
    def taken(self) -> int:
        """How many places are taken now."""
        return self._taken

    def try_take(self) -> bool:
        """Take a place if one is free now."""
        with self._lock:
            if self._taken >= self._limit:
                return False
            self._taken += 1
            return True

    def take(self, wait: float = 0.0) -> None:
        """Take a place, waiting up to `wait` seconds for one (a thread's call).

        Raises:
            Overloaded: none came free in time.
        """
        if self.try_take():
            return
        if wait <= 0:
            raise Overloaded(self._refusal)
        with self._freed:
            self._threads_waiting += 1
            try:
                if not self._freed.wait_for(self._free_for_a_thread, wait):
                    raise Overloaded(self._refusal)
                self._taken += 1
            finally:
                self._threads_waiting -= 1

    def _free_for_a_thread(self) -> bool:
        return self._taken < self._limit and not self._coroutines

    async def take_async(self, wait: float | None) -> None:
        """Take a place, waiting up to `wait` seconds for one without blocking the loop.

        `wait=None` waits as long as it takes (for callers whose own requests free places).

        Raises:
            Overloaded: none came free in time.
        """
        if self.try_take():
            return
        if wait is not None and wait <= 0:
            raise Overloaded(self._refusal)
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._taken < self._limit:
                self._taken += 1
                return
            self._coroutines.append((loop, granted))
        try:
            await asyncio.wait_for(asyncio.shield(granted), wait)
        except TimeoutError:
            if self._withdraw(granted):
                raise Overloaded(self._refusal) from None
            await granted  # granted as the time ran out: in this loop's next turn
        except asyncio.CancelledError:
            if not self._withdraw(granted):
                granted.add_done_callback(lambda _: self.give_back())
            raise

    def give_back(self) -> None:
        """Free a place: to the oldest waiting coroutine, else to a waiting thread."""
        with self._lock:
            while self._coroutines:
                loop, granted = self._coroutines.popleft()
                try:
                    loop.call_soon_threadsafe(_grant, granted, self)
                except RuntimeError:  # its loop is closed: skip that waiter
                    continue
                return  # the place passes on: still taken
            self._taken -= 1
            if self._threads_waiting:
                self._freed.notify()

    def _withdraw(self, granted: asyncio.Future[None]) -> bool:
        """Stop waiting; False if the place was already granted (or is being granted)."""
        with self._lock:
            for index, (_, waiting) in enumerate(self._coroutines):
                if waiting is granted:
                    del self._coroutines[index]
                    return True
        return False

    def __enter__(self) -> None:
        self.take()

    def __exit__(self, *exc_info: object) -> None:
        self.give_back()


def _grant(granted: asyncio.Future[None], slots: RequestSlots) -> None:
    """In the waiter's loop: hand it the place, or pass the place on if it stopped waiting."""
    if granted.done():
        slots.give_back()
    else:
        granted.set_result(None)
