"""Engines end with the interpreter: a forgotten engine never keeps a program alive.

The actors run on daemon threads, so nothing the engine started holds the interpreter at exit,
and every started engine is held here (strongly: a forgotten one must not be collected while
its actors run) until it shuts down. At exit, each one still running is stopped without
draining (`drain=False`): the job running now may finish within the exit timeout; the jobs
still queued stay in the journal and run at the next start on the same store, so nothing
accepted is lost.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Protocol

log = logging.getLogger(__name__)

EXIT_TIMEOUT = 5.0
"""Seconds an engine's running jobs get at exit when it has no `shutdown_timeout` of its own."""


class _Stoppable(Protocol):
    shutdown_timeout: float | None

    def shutdown(self, timeout: float | None = None, *, drain: bool = True) -> None: ...


_running: list[_Stoppable] = []
_lock = threading.Lock()


def started(engine: _Stoppable) -> None:
    """Hold `engine` until `stopped`, to stop it at exit if nobody did."""
    with _lock:
        _running.append(engine)


def stopped(engine: _Stoppable) -> None:
    """`engine` has shut down: forget it."""
    with _lock:
        if engine in _running:
            _running.remove(engine)


def running() -> int:
    """How many engines of this process are started and not shut down."""
    with _lock:
        return len(_running)


def stop_all(default_timeout: float = EXIT_TIMEOUT) -> None:
    """Stop every engine still running, without draining (what the interpreter does at exit)."""
    with _lock:
        engines = list(_running)
    for engine in engines:
        timeout = engine.shutdown_timeout
        try:
            engine.shutdown(default_timeout if timeout is None else timeout, drain=False)
        except Exception:
            log.exception("an engine did not stop at exit; its queued jobs stay in its journal")
        else:
            log.info("an engine left running was stopped at exit (queued jobs stay journaled)")


atexit.register(stop_all)
