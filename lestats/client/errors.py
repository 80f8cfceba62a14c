"""The client's own failures: those that have no counterpart in an embedded engine.

Every answer the server gives on purpose maps to the library's types (`InvalidQuery`,
`UnknownJob`, `Overloaded`, ...); what is left is a server that cannot be reached, or one that
answers what this API never answers (another service on that port, a proxy's error page).
"""

from __future__ import annotations

from lestats.errors import LeStatsError


class RemoteError(LeStatsError):
    """The server answered something this API does not: `status` and what it said."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class ConnectionFailed(LeStatsError, ConnectionError):  # noqa: N818 - reads as what happened
    """No answer: the server is unreachable, closed the connection, or took too long.

    A `ConnectionError` too, so that code catching the standard type catches it.
    """

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"{url}: {problem}")
        self.url = url
        self.problem = problem
