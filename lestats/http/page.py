"""The web page at `/`: a map, a ranking, a trend and a comparison of the BRFSS estimates.

The page is plain HTML, CSS and JavaScript of our own in `lestats/http/static/`; it reads the data
through the public v2 GET routes only, like any other client. The files are read and gzipped
once, when the routes are built, and served from memory:

- `/` is the page itself, revalidated on every load (`no-cache` with an `ETag`), so a new version
  of the server is seen at once;
- `/static/<version>/<file>` are its scripts and styles; `<version>` is a digest of every static
  file, so a URL names exactly one content and may be cached for a year (`immutable`). A page of
  an older version asks for an older `<version>` and gets a 404 instead of a mix of versions.
  The scripts import each other by relative paths, so they need no rewriting.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Mapping

STATIC_DIR = Path(__file__).parent / "static"
"""Where the page's own files live, inside the package."""

PAGE_FILE = "index.html"
"""The page's HTML; `{{static}}` in it becomes the versioned URL of the static files."""

STATIC_PREFIX = "/static"
"""The URL path under which the versioned static files are served."""

CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
"""The content type of each kind of static file; a file of another kind is not served."""

_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes, gzipped once, with its type and entity tag (unquoted)."""

    body: bytes
    gzipped: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        """The asset of `body`, its tag a digest of its bytes."""
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, gzip.compress(body, 9, mtime=0), content_type, digest)


@dataclass(frozen=True)
class StaticFiles:
    """The page and its static files, read once; `version` names this set of contents."""

    version: str
    page: Asset
    files: Mapping[str, Asset]

    @classmethod
    def read(cls, directory: Path = STATIC_DIR) -> StaticFiles:
        """Read every servable file of `directory` (not its subdirectories)."""
        contents = {
            path.name: path.read_bytes()
            for path in sorted(directory.iterdir())
            if path.is_file() and path.suffix in CONTENT_TYPES
        }
        digest = hashlib.sha256()
        for name, body in contents.items():
            digest.update(f"{name}\0{len(body)}\0".encode())
            digest.update(body)
        version = digest.hexdigest()[:12]
        html = contents.pop(PAGE_FILE).replace(b"{{static}}", f"{STATIC_PREFIX}/{version}".encode())
        files = {
            name: Asset.of(body, CONTENT_TYPES[Path(name).suffix])
            for name, body in contents.items()
        }
        return cls(version, Asset.of(html, CONTENT_TYPES[".html"]), files)

    def weight(self) -> tuple[int, int]:
        """The page's own weight in bytes: (as is, gzipped), HTML and every static file."""
        assets = (self.page, *self.files.values())
        return sum(len(a.body) for a in assets), sum(len(a.gzipped) for a in assets)


def _serve(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    """`asset` as the answer to `request`: 304 when the client has it, gzipped when accepted."""
    headers = {"ETag": f'"{asset.etag}"', "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if any(tag.value in {asset.etag, "*"} for tag in request.if_none_match or ()):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    response = web.Response(body=body, headers=headers, content_type=asset.content_type)
    if asset.content_type.startswith("text/"):
        response.charset = "utf-8"
    return response


def page_routes(static: StaticFiles | None = None) -> list[web.RouteDef]:
    """The routes of the page: `/` and its versioned static files."""
    files = static or StaticFiles.read()

    async def page(request: web.Request) -> web.Response:
        """GET /: the web page (map, ranking, trend, comparison)."""
        return _serve(request, files.page, _REVALIDATE)

    async def static_file(request: web.Request) -> web.Response:
        """GET /static/{version}/{name}: a script or style of the page, cached for good."""
        asset = files.files.get(request.match_info["name"])
        if request.match_info["version"] != files.version or asset is None:
            raise web.HTTPNotFound
        return _serve(request, asset, _IMMUTABLE)

    return [
        web.get("/", page),
        web.get(STATIC_PREFIX + "/{version}/{name}", static_file),
    ]
