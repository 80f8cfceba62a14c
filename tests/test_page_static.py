"""The web page's files as served: types, caching, compression, versions, weight, no outside URL.

The page's behaviour in a browser is proved by test_page.py; here, what any HTTP client sees.
"""

from __future__ import annotations

import gzip
import re

import pytest

from lestats.http.page import STATIC_DIR, StaticFiles

pytest_plugins = ["http_support"]

PAGE_WEIGHT_GOAL = 500 * 1024
"""Bytes, gzipped: HTML + JS + CSS (+ shapes: none, the map is a tile grid)."""

ASSET_URL = re.compile(r'(?:src|href)="(/static/[0-9a-f]+/[\w.-]+)"')
IMPORT = re.compile(r'from "\./([\w.-]+)"')
EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css"}


@pytest.fixture
async def client(serve, http_dataset):
    client, _ = await serve(http_dataset)
    return client


async def test_the_page_is_html_revalidated_on_every_load(client):
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    page = await response.text()
    assert "<title>Le Stats Sportif" in page
    assert "{{static}}" not in page
    again = await client.get("/", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304
    assert await again.read() == b""


async def test_every_referenced_asset_is_served_versioned_typed_and_immutable(client):
    page = await (await client.get("/")).text()
    urls = set(ASSET_URL.findall(page))
    assert {url.rsplit("/", 1)[1] for url in urls} >= {"main.js", "style.css"}
    for url in urls:
        response = await client.get(url)
        assert response.status == 200, url
        suffix = url[url.rindex(".") :]
        assert response.content_type == EXPECTED_TYPES[suffix], url
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["ETag"]
        cached = await client.get(url, headers={"If-None-Match": response.headers["ETag"]})
        assert cached.status == 304


async def test_every_module_a_script_imports_is_served(client):
    page = await (await client.get("/")).text()
    main = next(url for url in ASSET_URL.findall(page) if url.endswith("/main.js"))
    base = main.rsplit("/", 1)[0]
    seen: set[str] = set()
    todo = ["main.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        response = await client.get(f"{base}/{name}")
        assert response.status == 200, name
        todo.extend(IMPORT.findall(await response.text()))
    assert {"api.js", "tilemap.js", "ranking.js", "trend.js", "compare.js"} <= seen


async def test_gzip_is_sent_when_accepted_and_only_then(client):
    page = await (await client.get("/")).text()
    url = next(url for url in ASSET_URL.findall(page) if url.endswith("/main.js"))
    zipped = await client.get(url, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    body = gzip.decompress(await zipped.read())
    plain = await client.get(url, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert await plain.read() == body == (STATIC_DIR / "main.js").read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/static/000000000000/main.js",  # an older (or made-up) version
        "/static/{version}/nothing.js",
        "/static/{version}/index.html",  # the page template is served at / only
        "/static/{version}/..%2Fpage.py",
        "/static/{version}/",
    ],
)
async def test_unknown_static_paths_are_json_404s(client, path):
    version = StaticFiles.read().version
    response = await client.get(path.format(version=version))
    assert response.status == 404
    assert (await response.json())["status"] == "error"


def test_a_change_of_any_file_changes_the_version(tmp_path):
    for name in ("index.html", "main.js", "style.css"):
        (tmp_path / name).write_bytes((STATIC_DIR / name).read_bytes())
    before = StaticFiles.read(tmp_path)
    (tmp_path / "style.css").write_bytes(b"body{}")
    after = StaticFiles.read(tmp_path)
    assert before.version != after.version
    assert f"/static/{after.version}/main.js".encode() in after.page.body


def test_the_page_weighs_under_its_goal_and_names_no_outside_host():
    files = StaticFiles.read()
    plain, zipped = files.weight()
    assert 0 < zipped < plain
    assert zipped <= PAGE_WEIGHT_GOAL
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        hosts = set(re.findall(r"(?:https?:)?//([\w.-]+\.[a-z]{2,})", text))
        # The SVG namespace is a name, not something fetched.
        assert hosts <= {"www.w3.org"}, (path.name, hosts)


def test_the_page_asks_only_the_public_v2_routes():
    api = (STATIC_DIR / "api.js").read_text()
    assert "`/api/v2/${kind}" in api
    for path in STATIC_DIR.glob("*.js"):
        if path.name != "api.js":
            assert "fetch(" not in path.read_text(), path.name
            assert "/api/" not in path.read_text(), path.name


async def test_the_route_list_moved_to_api_and_links_the_page(client):
    response = await client.get("/api")
    assert response.content_type == "text/html"
    listing = await response.text()
    assert "/api/get_results/" in listing
    assert "href='/'" in listing
