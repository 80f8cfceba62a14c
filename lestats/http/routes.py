"""The routes of spec §4: job submission, results (with long-poll), listings, shutdown, discovery.

Handlers only translate between HTTP and the engine facade; every error they meet is raised as
one of the package's types and mapped to JSON by the middleware.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from aiohttp import web

from lestats import jsonio
from lestats.actors.jobs import JobOutcome, JobStatus
from lestats.data.query import ENDPOINTS
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.errors import InvalidQuery, ShuttingDown
from lestats.http.keys import CLOSING, ENGINE, OUTCOME
from lestats.http.openapi import openapi_document
from lestats.http.responses import json_response, raw_json_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from lestats.actors.engine import Engine

MAX_WAIT_SECONDS = 30.0
_RUNNING = jsonio.dumps({"status": "running"})
_DONE_PREFIX = b'{"status": "done", "data": '


def _job_handler(endpoint: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def submit(request: web.Request) -> web.Response:
        engine = request.app[ENGINE]
        if not engine.accepting:
            raise ShuttingDown
        body = await _json_object(request)
        job_id = await engine.submit_async(endpoint, body.get("question"), body.get("state"))
        request[OUTCOME] = job_id
        return json_response({"job_id": job_id}, headers={"Location": f"/api/get_results/{job_id}"})

    submit.__name__ = f"submit_{endpoint}"
    submit.__doc__ = f"POST /api/{endpoint}: accept a job, answer its id."
    return submit


async def _json_object(request: web.Request) -> dict[str, object]:
    raw = await request.read()
    try:
        body = jsonio.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidQuery("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidQuery("request body must be a JSON object")
    return body


async def get_results(request: web.Request) -> web.Response:
    """GET /api/get_results/{job_id}[?wait=T]: running, done with data, or error with reason."""
    engine = request.app[ENGINE]
    job_id = request.match_info["job_id"]
    wait = _wait_seconds(request.query.get("wait"))
    if wait is None:
        outcome = await engine.outcome_async(job_id)
    else:
        outcome = await _wait_for(engine, job_id, wait, request.app[CLOSING])
    request[OUTCOME] = outcome.status.value
    return _outcome_response(outcome)


def _wait_seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_WAIT_SECONDS:
        raise InvalidQuery(f"'wait' must be a number of seconds in (0, {MAX_WAIT_SECONDS:g}]")
    return seconds


async def _wait_for(
    engine: Engine, job_id: str, seconds: float, closing: asyncio.Event
) -> JobOutcome:
    """Wait for the job to finish, at most `seconds`, and no longer than the server lives."""
    waiting = asyncio.ensure_future(engine.wait_async(job_id, seconds))
    closed = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait((waiting, closed), return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
    if waiting.done():
        return waiting.result()
    waiting.cancel()
    return await engine.outcome_async(job_id)


def _outcome_response(outcome: JobOutcome) -> web.Response:
    if outcome.status is JobStatus.DONE:
        return raw_json_response(_DONE_PREFIX + (outcome.result or b"null") + b"}")
    if outcome.status is JobStatus.ERROR:
        return json_response({"status": "error", "reason": outcome.reason})
    return raw_json_response(_RUNNING)


async def jobs(request: web.Request) -> web.Response:
    """GET /api/jobs: every job id with its status, in id order."""
    listed = await request.app[ENGINE].jobs_async()
    return json_response({"status": "done", "data": [{i: s.value} for i, s in listed]})


async def num_jobs(request: web.Request) -> web.Response:
    """GET /api/num_jobs: accepted jobs not yet finished."""
    return json_response({"status": "done", "num_jobs": await request.app[ENGINE].num_jobs_async()})


async def graceful_shutdown(request: web.Request) -> web.Response:
    """GET /api/graceful_shutdown: stop accepting jobs; say whether all accepted ones finished."""
    engine = request.app[ENGINE]
    engine.begin_shutdown()
    pending = await engine.num_jobs_async()
    request[OUTCOME] = f"{pending} jobs pending"
    return json_response({"status": "running" if pending else "done"})


async def questions(_: web.Request) -> web.Response:
    """GET /api/questions: the nine questions, by which direction is better."""
    return json_response(
        {"status": "done", "data": {"best_is_min": BEST_IS_MIN, "best_is_max": BEST_IS_MAX}}
    )


async def states(request: web.Request) -> web.Response:
    """GET /api/states: the states present in the loaded data."""
    return json_response({"status": "done", "data": request.app[ENGINE].dataset.states})


async def health(request: web.Request) -> web.Response:
    """GET /api/health: whether jobs are accepted, the worker count, the unfinished jobs."""
    engine = request.app[ENGINE]
    return json_response(
        {
            "status": "ok",
            "accepting": engine.accepting,
            "workers": engine.workers,
            "num_jobs": await engine.num_jobs_async(),
        }
    )


_INDEX_ROWS = [
    *((f"POST /api/{name}", "question (and state): accept a job") for name in ENDPOINTS),
    ("GET /api/get_results/{job_id}[?wait=T]", "running, done with data, or error"),
    ("GET /api/jobs", "every job with its status"),
    ("GET /api/num_jobs", "jobs accepted and not finished"),
    ("GET /api/graceful_shutdown", "stop accepting jobs; done once all finished"),
    ("GET /api/questions", "the nine questions"),
    ("GET /api/states", "the states in the data"),
    ("GET /api/health", "liveness and load"),
    ("GET /api/openapi.json", "the OpenAPI description of this API"),
    ("GET /", "the web page: map, ranking, trend and comparison of the estimates"),
]
_INDEX = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
    "<title>Le Stats Sportif: API</title></head><body><h1>Le Stats Sportif: API</h1>"
    "<p>BRFSS statistics as asynchronous jobs. Routes"
    " (<a href='/'>back to the page</a>):</p><ul>"
    + "".join(f"<li><code>{route}</code> — {what}</li>" for route, what in _INDEX_ROWS)
    + "</ul></body></html>"
)


async def openapi(_: web.Request) -> web.Response:
    """GET /api/openapi.json: the OpenAPI description of this API."""
    return json_response(openapi_document())


async def route_list(_: web.Request) -> web.Response:
    """GET /api: a short page listing the routes (the web page at `/` links to it)."""
    return web.Response(text=_INDEX, content_type="text/html")


def routes() -> list[web.RouteDef]:
    """Every route of the API."""
    return [
        *(web.post(f"/api/{name}", _job_handler(name)) for name in ENDPOINTS),
        web.get("/api/get_results/{job_id}", get_results),
        web.get("/api/jobs", jobs),
        web.get("/api/num_jobs", num_jobs),
        web.get("/api/graceful_shutdown", graceful_shutdown),
        web.get("/api/questions", questions),
        web.get("/api/states", states),
        web.get("/api/health", health),
        web.get("/api/openapi.json", openapi),
        web.get("/api", route_list),
    ]
