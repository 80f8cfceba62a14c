"""Shared fixtures and helpers for the HTTP tests (spec §4 and §5).

Register it with `pytest_plugins = ["http_support"]` at the top of a test module; import the
helpers by name (`from http_support import ...`). The module is imported before pytest registers
it as a plugin, so its asserts are not rewritten (PYTEST_DONT_REWRITE, which also silences the
warning about it): every helper's assert carries its own message.

Fixtures:
    demo_dataset   the built-in demo dataset, built once per session (a Dataset is immutable)
    http_dataset   a tiny hand-made dataset whose means are integral (33.0, not 33, on the wire)
    serve          `await serve(dataset, runner=..., **engine_options)` -> (client, engine):
                   an `aiohttp_client` over `create_app(Engine(...))`, results under `tmp_path`
    gate           a runner that holds every job until `gate.release()`; released automatically
                   before the client's teardown drains the engine, so a failing test cannot hang

Helpers: `post_job`, `poll`, `get_json`, `json_body` (checks the Content-Type), `num_jobs`,
`wait_idle`, `until` (a condition, with a deadline), `job_body`, `job_number`,
`failing_runner`, the checker's `close_enough`, `key_paths` (key order), `all_floats`; and
`Server`, `run.py` (or another script) in a subprocess (URL from its banner, urllib requests,
`stop(signal)`, `kill()` for a `finally`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lestats.actors.engine import Engine
from lestats.data.dataset import Dataset, Record
from lestats.data.loader import load_demo_dataset
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import compute
from lestats.http.app import create_app

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from lestats.data.query import Query

QUESTIONS: tuple[str, ...] = BEST_IS_MIN + BEST_IS_MAX
"""The nine questions, lower-is-better first."""
OBESITY = BEST_IS_MIN[1]
MUSCLE = BEST_IS_MAX[3]
FRUIT = BEST_IS_MIN[3]
"""A question with no row in `http_dataset`: `{}` everywhere."""

# The nine job endpoints of spec §3, from the tests' own reference rather than the package.
from reference import ENDPOINTS, STATE_ENDPOINTS  # noqa: E402, F401 - re-exported to the HTTP tests

HTTP_STATES = ("Alaska", "Guam", "Ohio", "Texas", "Wyoming")
HTTP_RECORDS: tuple[Record, ...] = (
    # Obesity: Ohio 32.0, Texas 28.0, Alaska 33.0, Wyoming 27.0; global 180 / 6 = 30.0.
    Record(OBESITY, "Ohio", 30.0, "Age (years)", "18 - 24"),
    Record(OBESITY, "Ohio", 34.0, "Age (years)", "25 - 34"),
    Record(OBESITY, "Texas", 30.0, "Gender", "Male"),
    Record(OBESITY, "Texas", 26.0, "Gender", "Female"),
    Record(OBESITY, "Alaska", 33.0, "Total", "Total"),
    Record(OBESITY, "Wyoming", 27.0, "Income", "$75,000 or greater"),
    # Muscle: Ohio 20.0, Texas 24.0, Alaska 31.0, Wyoming 22.5, Guam 40.0; global 27.5.
    Record(MUSCLE, "Ohio", 20.0, "Age (years)", "18 - 24"),
    Record(MUSCLE, "Texas", 24.0, "Gender", "Male"),
    Record(MUSCLE, "Alaska", 31.0, "Total", "Total"),
    Record(MUSCLE, "Wyoming", 22.5, "Total", "Total"),
    Record(MUSCLE, "Guam", 40.0, "Total", "Total"),  # Guam has no obesity row
)
"""Rows of `http_dataset`; the obesity means are all integral, so they test `33.0` vs `33`."""

JSON = "application/json"
GATE_TIMEOUT = 30.0
"""Seconds a gated job waits at most, so that a broken test fails instead of hanging."""
JOB_ID = re.compile(r"job_id_([1-9][0-9]*)")


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_dataset() -> Dataset:
    """The default demo dataset, generated once for the whole session."""
    return load_demo_dataset()


@pytest.fixture
def http_dataset() -> Dataset:
    """Five states, two of the nine questions, integral means for obesity."""
    return Dataset.from_records(HTTP_RECORDS, source="http tests")


class Gate:
    """A job runner that blocks every job until released; counts the jobs that reached it."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.entered = 0

    def __call__(self, dataset: Dataset, query: Query) -> object:
        with self._lock:
            self.entered += 1
        self._open.wait(GATE_TIMEOUT)
        return compute(dataset, query)

    def release(self) -> None:
        """Let every held job (and every later one) run."""
        self._open.set()

    async def wait_entered(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` jobs are being held (i.e. are running in a worker)."""
        deadline = time.monotonic() + timeout
        while self.entered < count:
            assert time.monotonic() < deadline, f"only {self.entered} of {count} jobs started"
            await asyncio.sleep(0.01)


@pytest.fixture
def serve(aiohttp_client, tmp_path: Path) -> Callable[..., Awaitable[tuple[Any, Engine]]]:
    """A factory: `client, engine = await serve(dataset, **engine_options)`.

    The engine's results live in `tmp_path / "results"` unless `results_dir` is given; the
    client (and so the app, which drains and stops the engine) is closed by `aiohttp_client`.
    """

    async def start(dataset: Dataset, **options: Any) -> tuple[Any, Engine]:
        options.setdefault("results_dir", tmp_path / "results")
        options.setdefault("workers", 2)
        engine = Engine(dataset, **options)
        client = await aiohttp_client(create_app(engine))
        return client, engine

    return start


@pytest.fixture
def gate(aiohttp_client):  # noqa: ARG001 - set up after the client, so torn down before it
    """A `Gate`, released at teardown before the client closes and drains the engine."""
    held = Gate()
    yield held
    held.release()


def failing_runner(dataset: Dataset, query: Query) -> object:
    """A runner whose every job fails (the worker must turn it into a job `error`)."""
    del dataset
    raise RuntimeError(f"injected failure for {query.kind}")


# --- helpers -------------------------------------------------------------------------------------


async def json_body(response: Any) -> Any:
    """The response's JSON body, after checking its Content-Type (key order is kept)."""
    assert response.content_type == JSON, response.content_type
    return json.loads(await response.text())


async def post_job(client: Any, endpoint: str, body: object) -> str:
    """POST a job that must be accepted; its `job_id_N`."""
    response = await client.post(f"/api/{endpoint}", json=body)
    data = await json_body(response)
    assert response.status == 200, (response.status, data)
    return data["job_id"]


def job_body(endpoint: str, question: str, state: str | None) -> dict[str, str]:
    """The request body of a job."""
    if endpoint in STATE_ENDPOINTS:
        assert state is not None, endpoint
        return {"question": question, "state": state}
    return {"question": question}


async def poll(client: Any, job_id: str, timeout: float = 10.0, interval: float = 0.02) -> dict:
    """Poll `get_results` (HTTP 200 every time) until the job is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/api/get_results/{job_id}")
        body = await json_body(response)
        assert response.status == 200, (response.status, body)
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, f"{job_id} still running after {timeout} s"
        await asyncio.sleep(interval)


async def get_json(client: Any, path: str, status: int = 200) -> Any:
    """GET `path`, check the status and the Content-Type, return the decoded body."""
    response = await client.get(path)
    body = await json_body(response)
    assert response.status == status, (response.status, body)
    return body


async def num_jobs(client: Any) -> int:
    """`GET /api/num_jobs`."""
    body = await get_json(client, "/api/num_jobs")
    return body["num_jobs"]


async def wait_idle(client: Any, timeout: float = 20.0) -> None:
    """Wait until no accepted job is unfinished."""
    deadline = time.monotonic() + timeout
    while await num_jobs(client):
        assert time.monotonic() < deadline, "jobs still pending"
        await asyncio.sleep(0.02)


async def until(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait (without blocking the loop) until `predicate()` is true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.005)


def job_number(job_id: str) -> int:
    """N of `job_id_N` (and checks the form)."""
    match = JOB_ID.fullmatch(job_id)
    assert match, job_id
    return int(match.group(1))


def close_enough(actual: object, expected: object, tolerance: float = 0.01) -> bool:
    """The course checker's comparison: same structure, numbers within `tolerance`."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(close_enough(actual[k], v, tolerance) for k, v in expected.items())
        )
    if isinstance(expected, float):
        return isinstance(actual, float) and math.isclose(actual, expected, abs_tol=tolerance)
    return actual == expected


def key_paths(value: object) -> list[tuple[str, ...]]:
    """Every key path of nested dicts, in document order (to compare key order exactly)."""
    if not isinstance(value, dict):
        return []
    paths: list[tuple[str, ...]] = []
    for key, inner in value.items():
        paths.append((key,))
        paths.extend((key, *rest) for rest in key_paths(inner))
    return paths


def all_floats(value: object) -> bool:
    """Whether every leaf number of `value` is a float (JSON `33.0`, never `33`)."""
    if isinstance(value, dict):
        return all(all_floats(v) for v in value.values())
    return isinstance(value, float)


# --- run.py as a subprocess ----------------------------------------------------------------------

RUN_PY = Path(__file__).resolve().parent.parent / "run.py"
GATED_RUN_PY = Path(__file__).resolve().parent / "gated_run.py"
"""run.py whose jobs wait for the file named by `LESTATS_TEST_GATE`."""
BANNER = re.compile(r"Le Stats Sportif serving on (http://127\.0\.0\.1:([0-9]+))\b")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""urllib without any proxy from the environment: the server is on this machine."""


class Server:
    """`run.py` in a subprocess; `url` from its start-up banner. Always `kill()` in a `finally`."""

    def __init__(
        self,
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        script: Path = RUN_PY,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.stderr_path = cwd / f"stderr-{time.monotonic_ns()}.txt"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(script), "--port", "0", *args],
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                preexec_fn=preexec_fn,  # noqa: PLW1509 - only setrlimit, before exec
            )
        self.banner = self._read_banner()
        match = BANNER.search(self.banner)
        assert match, f"no banner: {self.banner!r}"
        self.url = match.group(1)
        self.port = int(match.group(2))

    def _read_banner(self) -> str:
        stdout = self.process.stdout
        assert stdout is not None, "stdout is piped"
        ready, _, _ = select.select([stdout], [], [], START_TIMEOUT)
        if not ready:
            self.kill()
            raise AssertionError(f"no banner within {START_TIMEOUT} s: {self.stderr()}")
        line = stdout.readline().decode()
        if not line:
            self.kill()
            raise AssertionError(f"run.py exited at start: {self.stderr()}")
        return line

    def stderr(self) -> str:
        """What the process wrote on stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send `signum` and wait for the exit status."""
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Kill the process if it still runs (for `finally`)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """One HTTP request (urllib): status and decoded JSON body, errors included."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - http to our own server
            self.url + path, data=data, method=method
        )
        if data is not None:
            request.add_header("Content-Type", JSON)
        try:
            with _DIRECT.open(request, timeout=STOP_TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def submit(self, endpoint: str, body: dict[str, str]) -> str:
        """POST a job that must be accepted; its id."""
        status, answer = self.request("POST", f"/api/{endpoint}", body)
        assert status == 200, (status, answer)
        return answer["job_id"]

    def result(self, job_id: str, timeout: float = 20.0) -> dict:
        """Poll until the job is no longer running; the body."""
        deadline = time.monotonic() + timeout
        while True:
            status, answer = self.request("GET", f"/api/get_results/{job_id}?wait=5")
            assert status == 200, (status, answer)
            if answer["status"] != "running":
                return answer
            assert time.monotonic() < deadline, f"{job_id} still running"
