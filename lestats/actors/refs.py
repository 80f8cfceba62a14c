"""pykka's `ask`, made to understand the engine's request messages.

Our requests carry their own `reply` future, which the actor settles when the answer is ready
(often later, after a group commit or when a job finishes), so `on_receive` returns nothing.
Through a plain pykka ref, `ref.ask(CountPending())` would then answer None, silently. Every
engine actor is a `RequestActor`, whose ref (`RequestRef`) asks a request by telling it and
waiting on its `reply`, and refuses to ask a one-way message of ours (nothing would answer it).
Anything else (pykka's proxies, a user's own messages) is asked the pykka way.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Literal, overload

import pykka

from lestats import messages as m


class RequestRef(pykka.ActorRef[Any]):
    """An `ActorRef` whose `ask` answers the engine's requests with their reply (see module)."""

    @overload
    def ask(
        self,
        message: Any,  # noqa: ANN401 - any message may be asked
        *,
        block: Literal[False],
        timeout: float | None = None,
    ) -> pykka.Future[Any]: ...
    @overload
    def ask(
        self,
        message: Any,  # noqa: ANN401
        *,
        block: Literal[True],
        timeout: float | None = None,
    ) -> Any: ...  # noqa: ANN401
    @overload
    def ask(
        self,
        message: Any,  # noqa: ANN401
        *,
        block: bool = True,
        timeout: float | None = None,
    ) -> Any | pykka.Future[Any]: ...  # noqa: ANN401
    def ask(
        self,
        message: Any,
        *,
        block: bool = True,
        timeout: float | None = None,
    ) -> Any | pykka.Future[Any]:
        """Send `message` and wait for (or, with `block=False`, return a future of) its answer.

        A request of ours is answered with what its actor settles its `reply` with (a refusal
        raises, as with `reply.result()`).

        Raises:
            TypeError: `message` is a one-way message of ours: `tell` it instead.
            pykka.Timeout: no answer within `timeout` seconds (when blocking).
        """
        if not isinstance(message, m.Message):
            return super().ask(message, block=block, timeout=timeout)
        if not m.is_request(message):
            raise TypeError(
                f"{type(message).__name__} is a one-way message: nothing answers it; "
                "use tell (requests are the messages with a `reply` future)"
            )
        reply: concurrent.futures.Future[Any] = message.reply
        future: pykka.Future[Any] = self.actor_class._create_future()  # noqa: SLF001
        reply.add_done_callback(lambda done: _settle(future, done))
        try:
            self.tell(message)
        except pykka.ActorDeadError:
            m.refuse(reply, pykka.ActorDeadError(f"{self} not found"))
        if block:
            return future.get(timeout=timeout)
        return future


def _settle(future: pykka.Future[Any], reply: concurrent.futures.Future[Any]) -> None:
    if reply.cancelled():
        error: BaseException | None = concurrent.futures.CancelledError()
    else:
        error = reply.exception()
    if error is None:
        future.set(reply.result())
    else:
        future.set_exception((type(error), error, error.__traceback__))


class RequestActor(pykka.ThreadingActor):
    """The base of the engine's actors: their refs are `RequestRef`s (see the module).

    Their threads are daemon threads: an engine nobody shut down must not keep the interpreter
    alive (`lifetime` stops it at exit).
    """

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self._request_ref = RequestRef(self)

    @property
    def actor_ref(self) -> RequestRef:
        """This actor's ref, whose `ask` understands the engine's requests."""
        return self._request_ref
