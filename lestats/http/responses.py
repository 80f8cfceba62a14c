"""JSON responses, built the same way for every route and every error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from lestats import jsonio

if TYPE_CHECKING:
    from collections.abc import Mapping


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response of a JSON-ready value."""
    return raw_json_response(jsonio.dumps(body), status, headers)


def raw_json_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response of already-encoded JSON (results are served without decoding them)."""
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")


def error_response(
    status: int,
    reason: str,
    *,
    allowed: tuple[str, ...] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The contract's error body: `{"status": "error", "reason": ...}`, plus `allowed` if given."""
    body: dict[str, object] = {"status": "error", "reason": reason}
    if allowed is not None:
        body["allowed"] = list(allowed)
    return json_response(body, status, headers)
