"""The HTTP side of docs/queries.md: `POST /api/v2/jobs` and `GET /api/v2/<kind>`.

Why this exists: the v2 queries are jobs of the engine like the course statistics, but users
also want shareable, cacheable URLs. A GET validates the query (every bad parameter is named,
with its allowed values), then answers at once: from the loop-side cache of finished answers
when it has the canonical query, else by submitting the job and waiting for it. An answer never
changes for a loaded dataset, so the cache needs no invalidation and the `ETag` is a hash of the
dataset's fingerprint and the canonical query (a `304` needs no answer at all). `?format=csv`
gives the same answer as an RFC 4180 table.

The routes are derived from the registry: every statistic that reads its own parameters (the
v2 kinds) is a `GET /api/v2/<kind>`; `POST /api/v2/jobs` takes any registered statistic.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lestats import jsonio
from lestats.actors.jobs import JobStatus
from lestats.actors.sized_cache import SizedCache
from lestats.data.catalog import unit
from lestats.data.params import InvalidParameters
from lestats.errors import InvalidQuery, Overloaded, ShuttingDown
from lestats.http.keys import ENGINE, OUTCOME
from lestats.http.responses import json_response, raw_json_response

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from lestats.actors.engine import Engine
    from lestats.data.dataset import Dataset
    from lestats.data.query import Query
    from lestats.data.registry import Parameter, Registry

ANSWER_TIMEOUT = 30.0
"""Seconds a GET waits for its job before answering 503 (the engine is that busy)."""
CACHE_BYTES = 8 << 20
"""How much encoded answer the loop keeps, by canonical query and format."""
CACHE_CONTROL = "public, max-age=300"
"""Answers never change for a loaded dataset; after 5 minutes a client revalidates (cheap 304)."""
FORMATS = ("json", "csv")
_JSON = "application/json"
CAVEAT = (
    "Each value is the CDC's survey estimate for one population: one location, one year, one "
    "group, with its 95 % confidence interval. An average of values of several states, years "
    "or groups is not the value of any population (states differ in size, groups overlap), "
    "which is why the course's /api means describe no one; compare estimates instead."
)
SOURCE = (
    "CDC, Behavioral Risk Factor Surveillance System: Nutrition, Physical Activity, and "
    "Obesity (data.cdc.gov hn4x-zwk7)"
)
_FILE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

ANSWERS = web.AppKey("v2_answers", SizedCache[str, "Answer"])
"""The loop-side cache of served answers, by URL as given and by (format, canonical query)."""


def v2_kinds(registry: Registry) -> tuple[str, ...]:
    """The kinds served as `GET /api/v2/<kind>`: the statistics that read their own parameters.

    A URL gives every value as text; only a statistic with its own `parse` (the v2 kinds of
    lestats/data/kinds.py) reads `year=2021` or `location=OH,US`. Any statistic can still be
    asked through `POST /api/v2/jobs`.
    """
    return tuple(s.name for s in registry if s.parse is not None and not s.course)


def _parameters_error(error: InvalidParameters) -> web.Response:
    body: dict[str, object] = {
        "status": "error",
        "reason": error.reason,
        "allowed": None if error.allowed is None else list(error.allowed),
        "errors": [
            {
                "parameter": p.parameter,
                "reason": p.reason,
                "allowed": None if p.allowed is None else list(p.allowed),
            }
            for p in error.problems
        ],
    }
    if error.allowed is None:
        del body["allowed"]
    return json_response(body, 400)


async def submit(request: web.Request) -> web.Response:
    """POST /api/v2/jobs: any query as one JSON object (`kind` and its parameters)."""
    engine = request.app[ENGINE]
    if not engine.accepting:
        raise ShuttingDown
    body = await _json_object(request)
    kind = body.pop("kind", None)
    if not isinstance(kind, str):
        raise InvalidQuery("'kind' must name a statistic", engine.registry.names)
    try:
        query = engine.query(kind, body)
    except InvalidParameters as error:
        return _parameters_error(error)
    job_id = await engine.submit_async(query)
    request[OUTCOME] = job_id
    return json_response({"job_id": job_id}, headers={"Location": f"/api/get_results/{job_id}"})


async def _json_object(request: web.Request) -> dict[str, object]:
    try:
        body = jsonio.loads(await request.read())
    except (ValueError, RecursionError):
        raise InvalidQuery("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidQuery("request body must be a JSON object")
    return body


def _arguments(request: web.Request) -> dict[str, object]:
    """The URL's parameters: a repeated one as a list, `format` left out."""
    arguments: dict[str, object] = {}
    for name in request.query:
        if name != "format" and name not in arguments:
            values = request.query.getall(name)
            arguments[name] = values if len(values) > 1 else values[0]
    return arguments


def etag(dataset: Dataset, form: str, canonical: bytes) -> str:
    """The entity tag of an answer: the dataset's fingerprint, the format, the canonical query."""
    digest = hashlib.sha256(dataset.fingerprint.encode())
    digest.update(form.encode())
    digest.update(canonical)
    return f'"{digest.hexdigest()[:40]}"'


def _matches(header: str | None, tag: str) -> bool:
    """Whether `If-None-Match` names `tag` (weak or strong, or `*`)."""
    if header is None:
        return False
    for candidate in header.split(","):
        value = candidate.strip()
        if value == "*" or value.removeprefix("W/") == tag:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Answer:
    """An encoded answer as served: its entity tag, body, and file name for CSV."""

    tag: str
    body: bytes
    file_name: str | None = None

    def size(self) -> int:
        """Bytes it holds, roughly (for the cache's bound)."""
        return len(self.body) + len(self.tag) + 100


async def answer(request: web.Request) -> web.StreamResponse:
    """GET /api/v2/<kind>: the query's answer now, JSON with `meta` or `?format=csv`.

    A URL seen before is answered from the cache without parsing it again; another spelling of
    a known query is parsed, then found by its canonical form; a new query runs as a job.
    """
    cache = request.app[ANSWERS]
    seen = f"url {request.raw_path}"  # as sent: no URL object made again
    cached = cache.get(seen)
    if cached is not None:
        request[OUTCOME] = "cached"
        return _served(request, cached)
    engine = request.app[ENGINE]
    kind = request.match_info["kind"]
    kinds = v2_kinds(engine.registry)
    if kind not in kinds:
        unknown = {"status": "error", "reason": f"unknown kind {kind!r}", "allowed": list(kinds)}
        return json_response(unknown, 404)
    form = request.query.get("format", "json")
    if form not in FORMATS:
        raise InvalidQuery(f"unknown format {form!r}", FORMATS)
    try:
        query = engine.query(kind, _arguments(request))
    except InvalidParameters as error:
        return _parameters_error(error)
    canonical = jsonio.dumps(query.to_json())
    key = f"query {form} {canonical.decode()}"
    found = cache.get(key)
    if found is None:
        tag = etag(engine.dataset, form, canonical)
        if _matches(request.headers.get("If-None-Match"), tag):
            request[OUTCOME] = "304"
            return web.Response(status=304, headers=_headers(tag))
        data = await _computed(engine, query)
        if form == "csv":
            name = _FILE_NAME.sub("-", f"{kind}-{query.question or 'all'}-{tag[1:9]}.csv")
            found = Answer(tag, _csv(query, data), name)
        else:
            found = Answer(tag, _document(engine, query, data))
        cache.put(key, found)
        request[OUTCOME] = "computed"
    else:
        request[OUTCOME] = "cached"
    cache.put(seen, found)
    return _served(request, found)


def _headers(tag: str) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": CACHE_CONTROL}


def _served(request: web.Request, found: Answer) -> web.Response:
    """The answer as a response: `304` if the client has it, else JSON or CSV."""
    headers = _headers(found.tag)
    if _matches(request.headers.get("If-None-Match"), found.tag):
        return web.Response(status=304, headers=headers)
    if found.file_name is None:
        return raw_json_response(found.body, headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{found.file_name}"'
    return web.Response(body=found.body, headers=headers, content_type="text/csv", charset="utf-8")


async def _computed(engine: Engine, query: Query) -> bytes:
    """The job's encoded data: submitted to the engine, waited for (the loop never blocks)."""
    job_id = await engine.submit_async(query)
    outcome = await engine.wait_async(job_id, ANSWER_TIMEOUT)
    if outcome.status is JobStatus.DONE:
        return outcome.result or b"null"
    if outcome.status is JobStatus.ERROR:
        raise RuntimeError(f"{job_id} failed: {outcome.reason}")
    raise Overloaded(f"{job_id} did not finish within {ANSWER_TIMEOUT:g} s; retry", 5.0)


def meta(dataset: Dataset, query: Query) -> dict[str, Any]:
    """What a JSON answer says about itself: question, unit, source, dataset, caveat."""
    question = dataset.catalog.questions.get(query.question or "")
    return {
        "kind": query.kind,
        "query": query.to_json(),
        "question": question.text if question else None,
        "unit": unit(question) if question else None,
        "source": f"{SOURCE}; file {PurePath(dataset.source).name}",
        "dataset": dataset.fingerprint,
        "caveat": CAVEAT,
    }


def _document(engine: Engine, query: Query, data: bytes) -> bytes:
    described = jsonio.dumps(meta(engine.dataset, query))
    return b'{"status": "done", "data": ' + data + b', "meta": ' + described + b"}"


# --- CSV -----------------------------------------------------------------------------------------

ESTIMATE_COLUMNS = (
    "question",
    "location",
    "name",
    "year",
    "category",
    "category_name",
    "stratum",
    "stratum_name",
    "value",
    "low",
    "high",
    "sample_size",
    "suppressed",
    "footnote",
)
POINT_COLUMNS = ("location", "name", "year", "value", "low", "high", "sample_size", "gap")
RANK_COLUMNS = (
    "rank",
    "location",
    "name",
    "value",
    "low",
    "high",
    "sample_size",
    "overlaps_previous",
    "overlaps_next",
    "note",
)
TEST_COLUMNS = ("difference", "z", "p_value", "significant", "reason")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(map(_cell, value))
    return str(value)


def _table(kind: str, data: Any) -> tuple[Sequence[str], Iterable[Mapping[str, Any]]]:  # noqa: ANN401
    """The answer of `kind` as a header and rows (dicts by column)."""
    if kind == "estimates":
        return ESTIMATE_COLUMNS, data["rows"]
    if kind == "trend":
        return POINT_COLUMNS, (
            {"location": s["location"], "name": s["name"], **point}
            for s in data["series"]
            for point in s["points"]
        )
    if kind == "ranking":
        reference = (
            [{**data["reference"], "note": "national reference"}] if data["reference"] else []
        )
        missing = [{**item, "note": item["reason"]} for item in data["no_data"]]
        return RANK_COLUMNS, [*data["rows"], *reference, *missing]
    if kind == "compare":
        test = {name: data.get(name) for name in TEST_COLUMNS}
        return ("side", *ESTIMATE_COLUMNS, *TEST_COLUMNS), (
            {"side": side, **data[side], **test} for side in ("a", "b")
        )
    if kind == "strata":
        return ("category", "category_name", "stratum", "name"), (
            {"category": c["category"], "category_name": c["name"], **s}
            for c in data
            for s in c["strata"]
        )
    rows = data if isinstance(data, list) else [{"key": k, "value": v} for k, v in data.items()]
    columns = list(dict.fromkeys(name for row in rows for name in row))
    return columns, rows


def _csv(query: Query, data: bytes) -> bytes:
    """RFC 4180: a header row, CRLF line ends, fields quoted when they need it."""
    columns, rows = _table(query.kind, jsonio.loads(data))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in columns])
    return out.getvalue().encode()


# --- routes, OpenAPI, index ----------------------------------------------------------------------


def query_routes() -> list[web.RouteDef]:
    """The v2 routes (the kinds are looked up in the engine's registry per request)."""
    return [web.post("/api/v2/jobs", submit), web.get("/api/v2/{kind}", answer)]


def install(app: web.Application) -> None:
    """Add the v2 routes and their answer cache to `app`."""
    app[ANSWERS] = SizedCache(CACHE_BYTES, Answer.size)
    app.add_routes(query_routes())


def index_rows(registry: Registry) -> list[tuple[str, str]]:
    """The index page's lines for the v2 routes."""
    return [
        ("POST /api/v2/jobs", "any query as one JSON object ({'kind': ..., ...}): a job id"),
        *(
            (
                f"GET /api/v2/{statistic.name}"
                + (
                    f"?{'&'.join(p.name + '=' for p in statistic.parameters)}"
                    if statistic.parameters
                    else ""
                ),
                f"{statistic.summary} (answered at once; ?format=csv)",
            )
            for statistic in registry
            if statistic.name in v2_kinds(registry)
        ),
    ]


def _query_parameter(parameter: Parameter, registry: Registry, dataset: Dataset) -> dict[str, Any]:
    many = parameter.type in {"strings", "integers"}
    item: dict[str, Any] = {"type": "integer" if "integer" in parameter.type else "string"}
    if parameter.choices is not None:
        allowed = ", ".join(map(str, parameter.choices(registry, dataset)))
        item["description"] = f"ids: {allowed} (names are accepted too)"
    return {
        "name": parameter.name,
        "in": "query",
        "required": parameter.required,
        "description": parameter.description
        + ("; repeat it or separate values by commas" if many else ""),
        "schema": {"type": "array", "items": item} if many else item,
        **({"style": "form", "explode": True} if many else {}),
    }


_ERRORS = {
    "type": "object",
    "required": ["status", "reason"],
    "properties": {
        "status": {"const": "error"},
        "reason": {"type": "string"},
        "allowed": {"type": "array"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["parameter", "reason"],
                "properties": {
                    "parameter": {"type": "string"},
                    "reason": {"type": "string"},
                    "allowed": {"type": ["array", "null"], "items": {"type": "string"}},
                },
            },
        },
    },
}
_ANSWER = {
    "type": "object",
    "required": ["status", "data", "meta"],
    "properties": {
        "status": {"const": "done"},
        "data": {"type": ["object", "array"]},
        "meta": {
            "type": "object",
            "required": ["question", "unit", "source", "dataset", "caveat"],
            "properties": {
                "kind": {"type": "string"},
                "query": {"type": "object"},
                "question": {"type": ["string", "null"]},
                "unit": {"type": ["string", "null"]},
                "source": {"type": "string"},
                "dataset": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "caveat": {"type": "string"},
            },
        },
    },
}


def openapi_paths(registry: Registry, dataset: Dataset) -> dict[str, Any]:
    """The OpenAPI paths of the v2 routes, from the registry's rows."""
    errors = {"description": "bad parameters, each named", "content": {_JSON: {"schema": _ERRORS}}}
    paths: dict[str, Any] = {
        "/api/v2/jobs": {
            "post": {
                "operationId": "v2_submit",
                "summary": "Accept any query as one JSON object: its kind and its parameters",
                "requestBody": {
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": {
                                "type": "object",
                                "required": ["kind"],
                                "properties": {"kind": {"enum": list(registry.names)}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "the job id (then GET /api/get_results/{job_id})",
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["job_id"],
                                    "properties": {"job_id": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "400": errors,
                    "503": {"description": "shutting down or overloaded"},
                },
            }
        }
    }
    form = {
        "name": "format",
        "in": "query",
        "required": False,
        "schema": {"enum": list(FORMATS), "default": "json"},
    }
    for statistic in registry:
        if statistic.name not in v2_kinds(registry):
            continue
        paths[f"/api/v2/{statistic.name}"] = {
            "get": {
                "operationId": f"v2_{statistic.name}",
                "summary": f"{statistic.summary}, answered at once (cached, with an ETag)",
                "parameters": [
                    *(_query_parameter(p, registry, dataset) for p in statistic.parameters),
                    form,
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the answer, with meta (JSON) or as a table (CSV)",
                        "headers": {
                            "ETag": {"schema": {"type": "string"}},
                            "Cache-Control": {"schema": {"type": "string"}},
                        },
                        "content": {
                            _JSON: {"schema": _ANSWER},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "304": {"description": "not modified (If-None-Match matched the ETag)"},
                    "400": errors,
                    "503": {"description": "shutting down or overloaded"},
                },
            }
        }
    return paths
