"""Which requests come from another web site, and are refused (403) for it.

A browser lets any page it shows send requests to `127.0.0.1:5000`: a form POST, a `fetch` with
a `text/plain` body, an `<img src=".../api/graceful_shutdown">`. It also says where such a
request comes from, in two headers that a page cannot forge:

- `Sec-Fetch-Site` (every current browser): `same-origin` and `none` (typed in the address bar,
  a bookmark) are the user's own; `same-site` (another port or sub-domain of the same site, such
  as another local development server) and `cross-site` are another page's.
- `Origin` (sent with every POST and every cross-origin `fetch`): it must be this server's own
  origin, the scheme and `Host` the request came to; `null` (sandboxed frames, `file:` pages)
  is foreign.

Clients that are not browsers (curl, the course's checker, Python clients) send neither header
and pass. So does a top-level navigation (a link followed from another site) to a page outside
`/api/`: it can read nothing and change nothing, and the user asked for it.

One attack passes both checks: DNS rebinding, where a page's own name is made to resolve to
127.0.0.1, so that its requests are same-origin to the browser. On a loopback address the server
therefore also refuses a `Host` that is not a loopback name (`localhost`, `*.localhost`, or a
loopback IP address).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING

from yarl import URL

if TYPE_CHECKING:
    from aiohttp import web

OWN_SITE = frozenset({"same-origin", "none"})
"""`Sec-Fetch-Site` values of requests the user made on this server's own pages."""
API_PREFIX = "/api/"
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def cross_site_refusal(request: web.BaseRequest) -> str | None:
    """Why the request is refused as cross-site, or None if it is the user's own."""
    if _rebound(request):
        return f"cross-site request refused (Host {request.host[:100]} is not this server)"
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in OWN_SITE:
        if _page_navigation(request):
            return None
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:40]})"
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin, request):
        if _page_navigation(request):
            return None
        return f"cross-site request refused (Origin {origin[:100]} is not this server)"
    return None


def _page_navigation(request: web.BaseRequest) -> bool:
    """A user following a link to one of the pages (not the API): harmless, and wanted."""
    return (
        request.method in _SAFE_METHODS
        and request.headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
        and not request.path.startswith(API_PREFIX)
    )


def _same_origin(origin: str, request: web.BaseRequest) -> bool:
    """Whether `origin` is the scheme, host and port the request was sent to."""
    try:
        claimed = URL(origin.strip())
        own = URL.build(scheme=request.scheme, authority=request.host)
    except (ValueError, TypeError):
        return False
    if not claimed.absolute or claimed.path not in ("", "/") or claimed.query_string:
        return False
    return (claimed.scheme, claimed.host, claimed.port) == (own.scheme, own.host, own.port)


def _rebound(request: web.BaseRequest) -> bool:
    """Whether a request that came to a loopback address names another host (DNS rebinding)."""
    transport = request.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(local, tuple):
        return False
    host = request.headers.get("Host")
    if host is None:
        return False  # HTTP/1.0 without Host: not a browser
    return _names_another_host(str(local[0]), host)


@functools.lru_cache(maxsize=1024)
def _names_another_host(local: str, host: str) -> bool:
    """The verdict for a listening address and a `Host` header: every request asks it.

    Parsing both costs more than the rest of the check; clients send the same few Host values
    again and again, so the answers are kept (a bounded number: a client sending ever new
    names only evicts old answers).
    """
    if not _is_loopback(local):
        return False
    try:
        name = URL.build(scheme="http", authority=host).host or ""
    except (ValueError, TypeError):
        return True
    return not (_is_loopback(name) or name == "localhost" or name.endswith(".localhost"))


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False
