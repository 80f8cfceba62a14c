"""Property-based HTTP fuzzing: random methods, paths, headers and bodies against a live server.

Every answer must be below 500, arrive in time, and match the OpenAPI document the server
publishes; afterwards the server is healthy and the jobs accepted before and during the fuzz
all end done with the right data.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import threading
import urllib.parse
from typing import Self

import jsonschema
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lestats.actors.engine import Engine
from lestats.data.dataset import Dataset, Record
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import default_registry
from lestats.http.app import create_app
from lestats.http.openapi import openapi_document

QUESTIONS = BEST_IS_MIN + BEST_IS_MAX
STATES = ("Alabama", "Ohio", "National", "Guam")
DATASET = Dataset.from_records(
    Record(q, s, str(10.0 + i * 1.5 + j), "Gender", g)
    for i, q in enumerate(QUESTIONS)
    for j, s in enumerate(STATES)
    for g in ("Male", "Female")
)
DOCUMENT = openapi_document(default_registry(), DATASET)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


class ServerThread:
    """The real application on its own event loop thread, bound to a free loopback port."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-server")
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self._app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        assert not self._thread.is_alive()


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


HTML_PAGES = {"/", "/api"}
"""The web page and the route list: HTML, not in the OpenAPI document."""


def _template_for(path: str) -> str | None:
    for template in DOCUMENT["paths"]:
        pattern = re.escape(template).replace(r"\{job_id\}", "[^/]+")
        if re.fullmatch(pattern, path):
            return template
    return None


def _validate(schema: dict, document: object) -> None:
    resolver_root = {"components": DOCUMENT["components"], **schema}
    jsonschema.validate(document, resolver_root, cls=jsonschema.Draft202012Validator)


def check_against_openapi(method: str, path: str, status: int, headers: dict, body: bytes) -> None:
    """The answer is documented: its status for that route and method, and its body's shape."""
    assert status < 500 or status == 503, (method, path, status, body[:300])
    if method == "HEAD":
        return
    bare_path = urllib.parse.urlsplit(path).path
    if bare_path in HTML_PAGES and status == 200:
        assert headers["Content-Type"].startswith("text/html")
        return
    assert headers.get("Content-Type", "").startswith("application/json"), (path, headers)
    document = json.loads(body)
    template = _template_for(urllib.parse.unquote(bare_path))
    operations = DOCUMENT["paths"].get(template, {}) if template else {}
    if method.lower() not in operations:
        assert status in {400, 404, 405}, (method, path, status)
        _validate(DOCUMENT["components"]["schemas"]["Error"], document)
        if status == 405:
            assert "Allow" in headers
        return
    responses = operations[method.lower()]["responses"]
    assert str(status) in responses or status in {400, 404, 413}, (method, path, status, body)
    spec = responses.get(str(status)) or {"content": {"application/json": {"schema": {}}}}
    _validate(spec["content"]["application/json"]["schema"], document)
    if status == 503:
        assert "Retry-After" in headers, (method, path, document)


job_ids = st.one_of(
    st.integers(min_value=-5, max_value=10**20).map(str),
    st.integers(min_value=0, max_value=50).map(lambda n: f"job_id_{n}"),
    st.text(max_size=30).map(lambda t: urllib.parse.quote(t, safe="")),
    st.sampled_from(["..%2F..%2Fetc%2Fpasswd", "job_id_1%00", "%2e%2e", "job_id_01"]),
)
# graceful_shutdown is left out: it would turn every later job POST into a (correct) 503; so are
# a job's cancel and forget: they would (correctly) end the jobs this test then waits for.
FUZZED_TEMPLATES = [
    template
    for template in DOCUMENT["paths"]
    if "shutdown" not in template and not template.endswith(("/cancel", "/forget"))
]
paths = st.one_of(
    st.sampled_from(FUZZED_TEMPLATES).flatmap(
        lambda template: job_ids.map(lambda job: template.replace("{job_id}", job))
    ),
    st.text(max_size=40).map(lambda t: "/api/" + urllib.parse.quote(t)),
    st.sampled_from(["/", "/api", "/api/", "//api/best5", "/api/best5/"]),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(["0", "0.05", "-1", "31", "nan", "inf", "abc", "1e309"]).map(
        lambda w: f"?wait={w}"
    ),
    st.text(max_size=20).map(lambda t: "?" + urllib.parse.quote(t, safe="=&")),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
job_bodies = st.fixed_dictionaries(
    {},
    optional={
        "question": st.one_of(st.sampled_from(QUESTIONS), json_values),
        "state": st.one_of(st.sampled_from(STATES), json_values),
        "extra": json_values,
    },
)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    job_bodies.map(lambda v: json.dumps(v).encode()),
)
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json", "text/plain", "multipart/form-data", "x/y; charset=nope"]
        ),
        "Accept": st.sampled_from(["*/*", "text/html", "application/json"]),
        "X-Random": st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126)),
    },
)


@pytest.fixture
def server(tmp_path):
    engine = Engine(DATASET, workers=2, results_dir=tmp_path / "results", max_pending=100)
    with ServerThread(create_app(engine)) as running:
        yield running


def _wait_done(port: int, job_id: str) -> dict:
    status, _, body = request(port, "GET", f"/api/get_results/{job_id}?wait=10")
    assert status == 200
    document = json.loads(body)
    assert document["status"] == "done", document
    return document["data"]


def test_fuzzing_never_breaks_the_server(server):
    port = server.port
    question = QUESTIONS[0]
    before = {}
    for endpoint in ("states_mean", "best5", "global_mean"):
        _, _, body = request(
            port, "POST", f"/api/{endpoint}", json.dumps({"question": question}).encode()
        )
        before[json.loads(body)["job_id"]] = endpoint
    expected = {job_id: _wait_done(port, job_id) for job_id in before}
    accepted: list[str] = []

    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        method=st.sampled_from(METHODS), path=paths, query=queries, body=bodies, headers=header_sets
    )
    def one_request(method, path, query, body, headers):
        status, answer_headers, answer = request(port, method, path + query, body, headers)
        check_against_openapi(method, path + query, status, answer_headers, answer)
        if method == "POST" and status == 200:
            accepted.append(json.loads(answer)["job_id"])

    one_request()

    status, _, body = request(port, "GET", "/api/health")
    assert status == 200
    assert json.loads(body)["accepting"] is True
    for job_id in accepted:
        _wait_done(port, job_id)
    assert {job_id: _wait_done(port, job_id) for job_id in before} == expected
    status, _, body = request(port, "GET", "/api/num_jobs")
    assert json.loads(body)["num_jobs"] == 0


def test_openapi_document_is_served_and_valid(server):
    status, headers, body = request(server.port, "GET", "/api/openapi.json")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    document = json.loads(body)
    assert document == DOCUMENT
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name
    for template, operations in document["paths"].items():
        for operation in operations.values():
            assert "200" in operation["responses"], template
