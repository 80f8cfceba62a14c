"""The routes of spec §4: job submission, results (with long-poll), listings, shutdown, discovery.

Handlers only translate between HTTP and the engine facade; every error they meet is raised as
one of the package's types and mapped to JSON by the middleware.
"""

from __future__ import annotations

import asyncio
import html
import math
from typing import TYPE_CHECKING

from aiohttp import web

from lestats import jsonio
from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus, parse_job_id
from lestats.errors import InvalidQuery, ShuttingDown, UnknownJob
from lestats.http.keys import CLOSING, ENGINE, OUTCOME
from lestats.http.openapi import openapi_document
from lestats.http.queries import index_rows
from lestats.http.responses import json_response, raw_json_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from lestats.actors.engine import Engine
    from lestats.data.registry import Registry

MAX_WAIT_SECONDS = 30.0
_RUNNING = jsonio.dumps({"status": "running"})
_DONE_PREFIX = b'{"status": "done", "data": '


def _job_handler(endpoint: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def submit(request: web.Request) -> web.Response:
        engine = request.app[ENGINE]
        if not engine.accepting:
            raise ShuttingDown
        body = await _json_object(request)
        job_id = await engine.submit_async(engine.query(endpoint, body))
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
    """Wait for the job to finish, at most `seconds`, and no longer than the server lives.

    Released by the server's closing, the waiter answers `running` without asking the engine
    again: thousands of waiters let go at once must not need thousands of request places. Its
    waiter place is given back before it answers, and at once if its client hangs up (aiohttp
    then cancels this handler).
    """
    waiting = asyncio.ensure_future(engine.wait_async(job_id, seconds))
    closed = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait((waiting, closed), return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        if not waiting.done():
            waiting.cancel()
            await asyncio.wait((waiting,))  # its waiter place is free once it has ended
    if waiting.cancelled():
        return RUNNING
    return waiting.result()


def _outcome_response(outcome: JobOutcome) -> web.Response:
    if outcome.status is JobStatus.DONE:
        return raw_json_response(_DONE_PREFIX + (outcome.result or b"null") + b"}")
    if outcome.status is JobStatus.ERROR:
        return json_response({"status": "error", "reason": outcome.reason})
    return raw_json_response(_RUNNING)


async def jobs(request: web.Request) -> web.StreamResponse:
    """GET /api/jobs[?after=N&limit=M]: job ids with their statuses, in id order.

    Without parameters, every job (the course's answer, byte for byte). The list is asked of
    the engine a page at a time and streamed as it comes, so a million jobs neither hold the
    ResultStore nor sit in memory at once.
    """
    after = _job_number(request.query.get("after"))
    limit = _limit(request.query.get("limit"))
    pages = request.app[ENGINE].job_pages(after, limit)
    # The first page before the answer starts: an error then still becomes a JSON answer.
    first = await anext(pages, None)  # (not `()`: Python 3.11's anext mangles a tuple default)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(_JOBS_HEAD + (_job_entries(first) if first else b""))
    async for page in pages:
        await response.write(b", " + _job_entries(page))
    await response.write(b"]}")
    await response.write_eof()
    return response


_JOBS_HEAD = b'{"status": "done", "data": ['


_JOB_ENTRY = {status: b'{"job_id_%%d": "%s"}' % status.value.encode() for status in JobStatus}


def _job_entries(page: tuple[tuple[int, JobStatus], ...]) -> bytes:
    """`{"job_id_N": "status"}` entries, comma-separated as the whole list's JSON has them."""
    entry = _JOB_ENTRY
    return b", ".join([entry[status] % job_id for job_id, status in page])


def _job_number(text: str | None) -> int:
    """`?after=`: a job number (`N` or `job_id_N`), 0 for "from the start"."""
    if text is None or text == "0":
        return 0
    try:
        return parse_job_id(text)
    except UnknownJob:
        raise InvalidQuery(
            "'after' must be a job id (N or job_id_N, N >= 0) to list the jobs after"
        ) from None


def _limit(text: str | None) -> int | None:
    """`?limit=`: how many jobs at most, a positive integer."""
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise InvalidQuery("'limit' must be a positive integer (jobs listed at most)")
    return int(text)


async def cancel(request: web.Request) -> web.Response:
    """POST /api/jobs/{job_id}/cancel: cancel a queued job; whether it was (`Engine.cancel`)."""
    cancelled = await request.app[ENGINE].cancel_async(request.match_info["job_id"])
    request[OUTCOME] = "cancelled" if cancelled else "not cancelled"
    return json_response({"status": "done", "cancelled": cancelled})


async def forget(request: web.Request) -> web.Response:
    """POST /api/jobs/{job_id}/forget: forget a finished job; whether it was (`Engine.forget`)."""
    forgotten = await request.app[ENGINE].forget_async(request.match_info["job_id"])
    request[OUTCOME] = "forgotten" if forgotten else "not forgotten"
    return json_response({"status": "done", "forgotten": forgotten})


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


async def questions(request: web.Request) -> web.Response:
    """GET /api/questions: the valid questions, by which direction is better.

    Questions of the data with no declared direction (none in the course's data) are listed
    under `no_direction`, present only when there are some.
    """
    engine = request.app[ENGINE]
    registry = engine.registry
    data: dict[str, object] = {
        "best_is_min": registry.questions_by_direction("min"),
        "best_is_max": registry.questions_by_direction("max"),
    }
    undirected = [q for q in registry.questions(engine.dataset) if registry.direction(q) is None]
    if undirected:
        data["no_direction"] = undirected
    return json_response({"status": "done", "data": data})


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


_SERVICE_ROWS = (
    ("GET /api/get_results/{job_id}[?wait=T]", "running, done with data, or error"),
    ("GET /api/jobs[?after=N&limit=M]", "every job with its status (or a page of them)"),
    ("POST /api/jobs/{job_id}/cancel", "cancel a queued job"),
    ("POST /api/jobs/{job_id}/forget", "forget a finished job"),
    ("GET /api/num_jobs", "jobs accepted and not finished"),
    ("GET /api/graceful_shutdown", "stop accepting jobs; done once all finished"),
    ("GET /api/questions", "the valid questions, by which way is better"),
    ("GET /api/states", "the states in the data"),
    ("GET /api/health", "liveness and load"),
    ("GET /api/openapi.json", "the OpenAPI description of this API"),
    ("GET /", "the web page: map, ranking, trend and comparison of the estimates"),
)


def index_page(registry: Registry) -> str:
    """The `GET /api` page: the registry's course statistics, then the service's own routes."""
    statistics = (
        (
            f"POST /api/{statistic.name}",
            f"{statistic.summary}; body: {', '.join(p.name for p in statistic.parameters)}",
        )
        for statistic in registry.course_statistics()
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Le Stats Sportif: API</title></head><body><h1>Le Stats Sportif: API</h1>"
        "<p>BRFSS statistics as asynchronous jobs. Routes (<a href='/'>back to the page</a>):</p>"
        "<ul>"
        + "".join(
            f"<li><code>{html.escape(route)}</code> — {html.escape(what)}</li>"
            for route, what in (*statistics, *index_rows(registry), *_SERVICE_ROWS)
        )
        + "</ul></body></html>"
    )


async def openapi(request: web.Request) -> web.Response:
    """GET /api/openapi.json: the OpenAPI description of this API."""
    engine = request.app[ENGINE]
    return json_response(openapi_document(engine.registry, engine.dataset))


async def route_list(request: web.Request) -> web.Response:
    """GET /api: a short page listing the routes (the web page at `/` links to it)."""
    return web.Response(text=index_page(request.app[ENGINE].registry), content_type="text/html")


def routes(registry: Registry) -> list[web.RouteDef]:
    """Every route of the API: one `POST /api/<name>` per course statistic of `registry`."""
    return [
        *(
            web.post(f"/api/{statistic.name}", _job_handler(statistic.name))
            for statistic in registry.course_statistics()
        ),
        web.get("/api/get_results/{job_id}", get_results),
        web.get("/api/jobs", jobs),
        web.post("/api/jobs/{job_id}/cancel", cancel),
        web.post("/api/jobs/{job_id}/forget", forget),
        web.get("/api/num_jobs", num_jobs),
        web.get("/api/graceful_shutdown", graceful_shutdown),
        web.get("/api/questions", questions),
        web.get("/api/states", states),
        web.get("/api/health", health),
        web.get("/api/openapi.json", openapi),
        web.get("/api", route_list),
    ]
