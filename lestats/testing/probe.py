"""The test probe: an actor that records what it receives, with TestKit-style expectations.

A `Probe` stands in for a collaborator (pass `probe.ref` where an actor expects a ref): every
message it receives is queued for the test, which then asserts on them in order
(`expect_msg`, `expect_msg_type`, `expect_no_msg`), within a time budget (`within`). It can
watch other actors and receive a `Terminated` when one stops (`watch`, `unwatch`,
`expect_terminated`), and answer requests through an `autopilot`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar

import pykka

from lestats.testing.helpers import REPLY_TIMEOUT, stop_actor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Terminated:
    """Sent to a probe that `watch`es `ref` once that actor has stopped."""

    ref: pykka.ActorRef[Any]


class _ProbeActor(pykka.ThreadingActor):
    """Queues every message for the test; runs the autopilot first, if there is one.

    On a daemon thread: a probe a test forgot to stop must not keep the test process alive.
    """

    use_daemon_thread = True

    def __init__(self, received: queue.Queue[Any], autopilot: Callable[[Any], None] | None) -> None:
        super().__init__()
        self._received = received
        self._autopilot = autopilot

    def on_receive(self, message: Any) -> None:  # noqa: ANN401 - any message
        if self._autopilot is not None:
            self._autopilot(message)
        self._received.put(message)


class _Marker:
    """A message only `Probe.flush` sends."""


class Probe:
    """A started probe actor and the messages it received. Stop it with `stop` (or `with`).

    `autopilot` is called with each message in the probe's thread before it is queued: a probe
    standing in for a ResultStore can answer requests there (`messages.answer(msg.reply, 0)`).
    Timeouts default to `REPLY_TIMEOUT`, or to what is left of the enclosing `within` block.
    """

    def __init__(self, autopilot: Callable[[Any], None] | None = None) -> None:
        self.received: queue.Queue[Any] = queue.Queue()
        self.ref: pykka.ActorRef[Any] = _ProbeActor.start(self.received, autopilot)
        self._deadline: float | None = None
        self._watches: dict[str, threading.Event] = {}

    # --- life -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop watching everything, then stop the probe actor (waiting until it has)."""
        for ref_urn in list(self._watches):
            self._watches.pop(ref_urn).set()
        stop_actor(self.ref)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- reading messages -------------------------------------------------------------------------

    def next(self, timeout: float | None = None) -> Any:  # noqa: ANN401 - any message
        """The next message received, waiting up to `timeout` seconds for it.

        Raises:
            AssertionError: none came in time.
        """
        wait = self._timeout(timeout)
        try:
            return self.received.get(timeout=wait)
        except queue.Empty:
            raise AssertionError(f"no message within {wait:.3f} s") from None

    def take(self, count: int, timeout: float | None = None) -> list[Any]:
        """The next `count` messages received."""
        return [self.next(timeout) for _ in range(count)]

    def pending(self) -> list[Any]:
        """The messages received and not taken yet, without waiting."""
        messages = []
        while True:
            try:
                messages.append(self.received.get_nowait())
            except queue.Empty:
                return messages

    def flush(self, timeout: float | None = None) -> list[Any]:
        """Every message told to this probe before now and not taken yet, in arrival order.

        Tells the probe a marker and collects what came before it: after an actor has answered
        a request, `flush()` shows all it sent here before answering, with no sleep.
        """
        marker = _Marker()
        self.ref.tell(marker)
        messages = []
        while (message := self.next(timeout)) is not marker:
            messages.append(message)
        return messages

    # --- expectations -----------------------------------------------------------------------------

    def expect_msg(self, expected: T, timeout: float | None = None) -> T:
        """The next message, which must equal `expected`.

        Raises:
            AssertionError: another message came first, or none in time.
        """
        message = self.next(timeout)
        if message != expected:
            raise AssertionError(f"expected {expected!r}, received {message!r}")
        return message  # type: ignore[no-any-return]

    def expect_msg_type(self, kind: type[T], timeout: float | None = None) -> T:
        """The next message, which must be a `kind`.

        Raises:
            AssertionError: a message of another type came first, or none in time.
        """
        message = self.next(timeout)
        if not isinstance(message, kind):
            raise AssertionError(  # noqa: TRY004 - a failed expectation, not a caller's bug
                f"expected a {kind.__name__}, received {message!r}"
            )
        return message

    def expect_no_msg(self, duration: float = 0.1) -> None:
        """Wait `duration` seconds (or until the enclosing `within` ends): nothing may arrive.

        Raises:
            AssertionError: a message arrived meanwhile.
        """
        wait = duration if self._deadline is None else min(duration, self._remaining())
        try:
            message = self.received.get(timeout=max(wait, 0.0))
        except queue.Empty:
            return
        raise AssertionError(f"expected no message, received {message!r}")

    @contextlib.contextmanager
    def within(self, maximum: float, minimum: float = 0.0) -> Iterator[None]:
        """A block that must take between `minimum` and `maximum` seconds.

        Expectations inside wait at most for what is left of `maximum`.

        Raises:
            AssertionError: the block ended too early or too late.
        """
        outer = self._deadline
        start = time.monotonic()
        self._deadline = start + maximum if outer is None else min(outer, start + maximum)
        try:
            yield
        finally:
            self._deadline = outer
        elapsed = time.monotonic() - start
        if elapsed > maximum:
            raise AssertionError(f"block took {elapsed:.3f} s, more than {maximum} s")
        if elapsed < minimum:
            raise AssertionError(f"block took {elapsed:.3f} s, less than {minimum} s")

    # --- watching ---------------------------------------------------------------------------------

    def watch(self, ref: pykka.ActorRef[Any]) -> None:
        """Receive `Terminated(ref)` once `ref`'s actor has stopped (at once if it has)."""
        if ref.actor_urn in self._watches:
            return
        cancelled = threading.Event()
        self._watches[ref.actor_urn] = cancelled

        def wait_for_the_end() -> None:
            while not cancelled.is_set():
                if ref.actor_stopped.wait(0.01):
                    if not cancelled.is_set():
                        self.ref.tell(Terminated(ref))
                    return

        threading.Thread(
            target=wait_for_the_end, name=f"ProbeWatch-{ref.actor_urn}", daemon=True
        ).start()

    def unwatch(self, ref: pykka.ActorRef[Any]) -> None:
        """Stop watching `ref`: no `Terminated` for it will come (unless already sent)."""
        cancelled = self._watches.pop(ref.actor_urn, None)
        if cancelled is not None:
            cancelled.set()

    def expect_terminated(
        self, ref: pykka.ActorRef[Any], timeout: float | None = None
    ) -> Terminated:
        """The next message, which must be `Terminated(ref)` (for a watched `ref`)."""
        message = self.expect_msg_type(Terminated, timeout)
        if message.ref.actor_urn != ref.actor_urn:
            raise AssertionError(f"expected Terminated({ref!r}), received {message!r}")
        self._watches.pop(ref.actor_urn, None)
        return message

    # --- time -------------------------------------------------------------------------------------

    def _remaining(self) -> float:
        return 0.0 if self._deadline is None else max(self._deadline - time.monotonic(), 0.0)

    def _timeout(self, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        return REPLY_TIMEOUT if self._deadline is None else self._remaining()
