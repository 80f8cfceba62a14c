"""Small helpers for message-level tests: ask, wait for a condition, stop an actor, spy, leaks."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

import pykka

if TYPE_CHECKING:
    from collections.abc import Callable

    from lestats.messages import Request

T = TypeVar("T")

REPLY_TIMEOUT = 5.0
"""Seconds a helper waits for an actor before failing instead of hanging."""

ACTOR_THREAD_PREFIXES = ("Dispatcher", "Worker", "ResultStore", "JournalCommitter")
"""pykka names an actor's thread after its class; these are the engine's actors."""


def ask(ref: pykka.ActorRef[Any], message: Request[T], timeout: float = REPLY_TIMEOUT) -> T:
    """Tell `message` (a request with a `reply` future) to `ref` and return its answer.

    Raises whatever the actor refused the request with (`TimeoutError` after `timeout`).
    """
    ref.tell(message)
    return message.reply.result(timeout=timeout)


def eventually(predicate: Callable[[], object], timeout: float = REPLY_TIMEOUT) -> None:
    """Wait until `predicate()` is true (something another thread does has happened).

    Raises:
        AssertionError: still false after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {predicate}")
        time.sleep(0.002)


def stop_actor(ref: pykka.ActorRef[Any], timeout: float = REPLY_TIMEOUT) -> None:
    """Stop `ref` if it is alive and wait until it is stopped.

    Safe on an actor that is already stopped or stopping itself (a Dispatcher after its drain).

    Raises:
        AssertionError: the actor did not stop within `timeout` seconds (instead of hanging).
    """
    if ref.is_alive():
        ref.stop(block=False)
    if not ref.actor_stopped.wait(timeout):
        raise AssertionError(f"{ref} did not stop within {timeout} s")


class TellSpy:
    """Stands in for an `ActorRef`: records every message told through it, then passes it on.

    Put in a collaborator's place to see what is told to the actor behind; every other
    attribute is the wrapped ref's.
    """

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:  # noqa: ANN401 - any message
        """Record `message`, then tell it to the wrapped ref."""
        self.told.append(message)
        self.ref.tell(message)

    def of_type(self, kind: type[T]) -> list[T]:
        """The messages of type `kind` told so far, in order."""
        return [message for message in self.told if isinstance(message, kind)]

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the wrapped ref's
        return getattr(self.ref, name)


def actor_threads(prefixes: tuple[str, ...] = ACTOR_THREAD_PREFIXES) -> list[str]:
    """The live threads named after the engine's actors (pykka names them after the class)."""
    return sorted(
        thread.name
        for thread in threading.enumerate()
        if thread.is_alive() and thread.name.startswith(prefixes)
    )


def leftovers(grace: float = 2.0) -> tuple[list[str], list[str]]:
    """Actors still registered and engine actor threads still alive, after up to `grace` s.

    An actor stopped with `block=False` unregisters and ends its thread a moment later: that is
    not a leak, hence the grace.
    """
    deadline = time.monotonic() + grace
    while True:
        found = [repr(ref) for ref in pykka.ActorRegistry.get_all()], actor_threads()
        if not any(found) or time.monotonic() >= deadline:
            return found
        time.sleep(0.01)
