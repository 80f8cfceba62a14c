"""The OpenAPI 3.1 description of the HTTP API, served at `/api/openapi.json`.

Derived from the engine's statistics registry and its dataset (the same table that makes the
routes and validates requests), so it cannot drift from them; the fuzz tests check every answer
of the server against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lestats.http.queries import openapi_paths

if TYPE_CHECKING:
    from lestats.data.dataset import Dataset
    from lestats.data.registry import Parameter, Registry, Statistic

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    return {"description": description, "content": {_JSON: {"schema": schema}}, **extra}


def _error(description: str, **extra: Any) -> dict[str, Any]:  # noqa: ANN401
    return _body(_ref("Error"), description, **extra)


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
_ALLOW = {"Allow": {"schema": {"type": "string"}, "description": "allowed methods"}}


def _done(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "data"],
        "properties": {"status": {"const": "done"}, "data": data},
    }


_JSON_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "strings": {"type": "array", "items": {"type": "string"}},
    "integers": {"type": "array", "items": {"type": "integer"}},
}


def parameter_schema(parameter: Parameter, registry: Registry, dataset: Dataset) -> dict[str, Any]:
    """The JSON schema of one parameter, its allowed values from the loaded data."""
    schema = dict(_JSON_TYPES[parameter.type])
    if parameter.description:
        schema["description"] = parameter.description
    if parameter.choices is not None:
        allowed = list(parameter.choices(registry, dataset))
        if "items" in schema:
            schema["items"] = {**schema["items"], "enum": allowed}
        else:
            schema["enum"] = allowed
    if parameter.default is not None:
        value = parameter.default
        schema["default"] = list(value) if isinstance(value, tuple) else value
    return schema


def request_schema(statistic: Statistic, registry: Registry, dataset: Dataset) -> dict[str, Any]:
    """The JSON schema of a request body for `statistic`."""
    return {
        "type": "object",
        "required": [p.name for p in statistic.parameters if p.required],
        "properties": {
            p.name: parameter_schema(p, registry, dataset) for p in statistic.parameters
        },
    }


def _submit_operation(statistic: Statistic, registry: Registry, dataset: Dataset) -> dict[str, Any]:
    return {
        "operationId": statistic.name,
        "summary": f"Accept a {statistic.name} job: {statistic.summary}",
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": request_schema(statistic, registry, dataset)}},
        },
        "responses": {
            "200": _body(
                _ref("JobAccepted"),
                "accepted",
                headers={"Location": {"schema": {"type": "string"}}},
            ),
            "400": _error("bad body, unknown question or state, or an undecodable body"),
            "403": _error("sent by another web site (Sec-Fetch-Site or Origin)"),
            "405": _error("wrong method", headers=_ALLOW),
            "408": _error("body not received within the body timeout"),
            "413": _error("body too large"),
            "415": _error("unknown Content-Encoding (the answer lists the allowed ones)"),
            "503": _error("shutting down or overloaded", headers=_RETRY_AFTER),
        },
    }


def _get(operation_id: str, summary: str, ok: dict[str, Any], **more: Any) -> dict[str, Any]:  # noqa: ANN401
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "responses": {
                "200": _body(ok, "success"),
                "403": _error("sent by another web site (Sec-Fetch-Site or Origin)"),
                "405": _error("wrong method", headers=_ALLOW),
                "503": _error("overloaded", headers=_RETRY_AFTER),
            },
            **more,
        }
    }


def _job_action(operation_id: str, summary: str, answer: str) -> dict[str, Any]:
    """`POST /api/jobs/{job_id}/<action>`: `{"status": "done", answer: bool}`."""
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "parameters": [_JOB_ID],
            "responses": {
                "200": _body(
                    {
                        "type": "object",
                        "required": ["status", answer],
                        "properties": {"status": {"const": "done"}, answer: {"type": "boolean"}},
                    },
                    "success",
                ),
                "403": _error("sent by another web site (Sec-Fetch-Site or Origin)"),
                "404": _error("Invalid job_id"),
                "405": _error("wrong method", headers=_ALLOW),
                "503": _error("overloaded", headers=_RETRY_AFTER),
            },
        }
    }


_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^(job_id_)?[1-9][0-9]*$"},
}


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["status", "reason"],
        "properties": {
            "status": {"const": "error"},
            "reason": {"type": "string"},
            "allowed": {"type": "array", "items": {"type": "string"}},
        },
    },
    "JobAccepted": {
        "type": "object",
        "required": ["job_id"],
        "properties": {"job_id": {"type": "string", "pattern": "^job_id_[1-9][0-9]*$"}},
        "additionalProperties": False,
    },
    "JobResult": {
        "oneOf": [
            {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"const": "running"}},
                "additionalProperties": False,
            },
            _done({"type": ["object", "array"]}),  # the v2 discovery kinds answer lists
            {
                "type": "object",
                "required": ["status", "reason"],
                "properties": {"status": {"const": "error"}, "reason": {"type": "string"}},
                "additionalProperties": False,
            },
        ]
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["running", "done"]}},
        "additionalProperties": False,
    },
}


def openapi_document(registry: Registry, dataset: Dataset) -> dict[str, Any]:
    """The API description of a server with `registry` over `dataset` (a fresh dict)."""
    paths: dict[str, Any] = {
        f"/api/{statistic.name}": {"post": _submit_operation(statistic, registry, dataset)}
        for statistic in registry.course_statistics()
    }
    paths.update(openapi_paths(registry, dataset))
    results = _get("get_results", "A job's status, with its data or error", _ref("JobResult"))
    results["get"]["parameters"] = [
        {
            "name": "job_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^(job_id_)?[1-9][0-9]*$"},
        },
        {
            "name": "wait",
            "in": "query",
            "required": False,
            "description": "long-poll: answer once the job is finished or after this many seconds",
            "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 30},
        },
    ]
    results["get"]["responses"]["400"] = _error("bad wait value")
    results["get"]["responses"]["404"] = _error("Invalid job_id")
    status_list = {
        "type": "array",
        "items": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": {"enum": ["running", "done", "error"]},
        },
    }
    jobs = _get("jobs", "Every job with its status, in id order (or one page)", _done(status_list))
    jobs["get"]["parameters"] = [
        {
            "name": "after",
            "in": "query",
            "required": False,
            "description": "list the jobs after this one (N or job_id_N; 0: from the start)",
            "schema": {"type": "string", "pattern": "^(0|(job_id_)?[1-9][0-9]{0,17})$"},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "list at most this many jobs",
            "schema": {"type": "integer", "minimum": 1},
        },
    ]
    jobs["get"]["responses"]["400"] = _error("bad after or limit value")
    string_list = {"type": "array", "items": {"type": "string"}}
    paths.update(
        {
            "/api/get_results/{job_id}": results,
            "/api/jobs": jobs,
            "/api/jobs/{job_id}/cancel": _job_action(
                "cancel", "Cancel a queued job (it ends error, cancelled)", "cancelled"
            ),
            "/api/jobs/{job_id}/forget": _job_action(
                "forget", "Forget a finished job (it then answers error, expired)", "forgotten"
            ),
            "/api/num_jobs": _get(
                "num_jobs",
                "Accepted jobs not finished",
                {
                    "type": "object",
                    "required": ["status", "num_jobs"],
                    "properties": {
                        "status": {"const": "done"},
                        "num_jobs": {"type": "integer", "minimum": 0},
                    },
                },
            ),
            "/api/graceful_shutdown": _get(
                "graceful_shutdown", "Stop accepting jobs", _ref("Status")
            ),
            "/api/questions": _get(
                "questions",
                "The valid questions, by which way is better",
                _done(
                    {
                        "type": "object",
                        "required": ["best_is_min", "best_is_max"],
                        "properties": {
                            "best_is_min": string_list,
                            "best_is_max": string_list,
                            "no_direction": string_list,
                        },
                        "additionalProperties": False,
                    }
                ),
            ),
            "/api/states": _get("states", "States in the data", _done(string_list)),
            "/api/health": _get(
                "health",
                "Liveness and load",
                {
                    "type": "object",
                    "required": ["status", "accepting", "workers", "num_jobs"],
                    "properties": {
                        "status": {"const": "ok"},
                        "accepting": {"type": "boolean"},
                        "workers": {"type": "integer", "minimum": 1},
                        "num_jobs": {"type": "integer", "minimum": 0},
                    },
                },
            ),
            "/api/openapi.json": _get("openapi", "This document", {"type": "object"}),
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Le Stats Sportif",
            "version": "1.0.0",
            "description": "BRFSS statistics as asynchronous jobs: POST a question, get a job "
            "id, fetch the result from /api/get_results/{job_id}.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
