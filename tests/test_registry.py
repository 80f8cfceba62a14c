"""The statistics registry: one table from which validation, the Workers, the course routes, the
OpenAPI document and the index page are derived; embedders and plug-ins add rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from http_support import RUN_PY, Server, get_json, json_body, poll, post_job

from lestats.data.dataset import Dataset, Record
from lestats.data.params import PARAMETERS
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.registry import Parameter, Registry, Statistic
from lestats.data.statistics import COURSE_STATISTICS, QUESTION, STATE, default_registry
from lestats.errors import InvalidQuery
from lestats.http.openapi import openapi_document
from lestats.testing import MUSCLE, OBESITY, TINY_STATES

pytest_plugins = ["http_support"]

SLEEP = "Percent of adults who sleep less than 7 hours"
"""A question of the data that is not one of the course's nine (no direction declared)."""


@pytest.fixture
def wider_dataset(tiny_dataset) -> Dataset:
    """`tiny_dataset`'s rows plus a tenth question the course does not know."""
    rows = [Record(SLEEP, state, 30.0 + i) for i, state in enumerate(TINY_STATES)]
    rows += [
        Record(question, state, value, category, stratum)
        for (question, state, category, stratum, *_), values in tiny_dataset.groups.items()
        for value in values
    ]
    return Dataset.from_records(rows, source="wider")


def top_states(dataset: Dataset, query: Query) -> object:
    """A custom statistic: the `count` highest state means of the question among `states`."""
    stats = dataset.stats(query.question or "")
    if stats is None:
        return []
    wanted = query.param("states")
    count = query.param("count")
    assert isinstance(count, int)
    ranked = [s for s in stats.descending if wanted is None or s in wanted]
    return ranked[:count]


def top_states_row() -> Statistic:
    return Statistic(
        "top_states",
        top_states,
        "the highest state means",
        (
            QUESTION,
            Parameter("count", "integer", description="how many", default=3),
            Parameter(
                "states",
                "strings",
                description="only these states",
                choices=lambda _registry, dataset: dataset.states,
            ),
        ),
    )


# --- the table ----------------------------------------------------------------------------------


QUERY_KINDS = tuple(PARAMETERS)
"""The v2 query kinds (docs/queries.md), in their registration order."""


def test_the_default_registry_is_the_nine_course_statistics_then_the_query_kinds():
    registry = default_registry()
    assert registry.names == (*COURSE_STATISTICS, *QUERY_KINDS)
    assert [s.name for s in registry.course_statistics()] == list(COURSE_STATISTICS)
    assert all(s.pure for s in registry)
    assert {s.name for s in registry if s.course} == set(COURSE_STATISTICS)
    assert {s.name for s in registry if s.directional} == {"best5", "worst5"}
    assert registry.questions_by_direction("min") == BEST_IS_MIN
    assert registry.questions_by_direction("max") == BEST_IS_MAX


def test_each_call_makes_an_independent_registry():
    first, second = default_registry(), default_registry()
    first.add(top_states_row())
    first.set_direction(SLEEP, "min")
    assert "top_states" not in second
    assert second.direction(SLEEP) is None


@pytest.mark.parametrize("name", ["best5", "Best", "with space", "", "9lives"])
def test_names_are_unique_lower_case_identifiers(name):
    with pytest.raises(ValueError, match="statistic"):
        default_registry().register(name, top_states, summary="x")


def test_a_parameter_is_declared_once():
    with pytest.raises(ValueError, match="twice"):
        Statistic("twice", top_states, "x", (QUESTION, QUESTION))


def test_a_direction_is_min_or_max():
    with pytest.raises(ValueError, match="direction"):
        default_registry().set_direction(SLEEP, "up")  # type: ignore[arg-type]


def test_a_frozen_registry_refuses_changes():
    registry = default_registry()
    registry.freeze()
    with pytest.raises(RuntimeError, match="running engine"):
        registry.add(top_states_row())
    with pytest.raises(RuntimeError, match="running engine"):
        registry.set_direction(SLEEP, "max")


def test_the_engine_freezes_its_registry_at_start(make_engine):
    registry = default_registry()
    make_engine(registry=registry)
    assert registry.frozen
    with pytest.raises(RuntimeError):
        registry.register("late", top_states, summary="too late")


# --- questions from the loaded data -------------------------------------------------------------


def test_valid_questions_are_the_declared_ones_then_the_datas_others(wider_dataset):
    registry = default_registry()
    assert registry.questions(wider_dataset) == (*BEST_IS_MIN, *BEST_IS_MAX, SLEEP)
    error = _invalid(registry, "global_mean", {"question": "nope"}, wider_dataset)
    assert error.allowed == (*BEST_IS_MIN, *BEST_IS_MAX, SLEEP)


def test_a_question_of_the_data_outside_the_nine_is_answered(wider_dataset):
    registry = default_registry()
    query = registry.validate("states_mean", {"question": SLEEP}, wider_dataset)
    assert registry.run(wider_dataset, query) == {
        "Alaska": 30.0,
        "Ohio": 31.0,
        "Texas": 32.0,
        "Wyoming": 33.0,
    }


def test_best5_needs_a_declared_direction(wider_dataset):
    registry = default_registry()
    error = _invalid(registry, "best5", {"question": SLEEP}, wider_dataset)
    assert "which way is better" in error.reason
    assert SLEEP in error.reason
    assert error.allowed == (*BEST_IS_MIN, *BEST_IS_MAX)
    assert registry.validate("global_mean", {"question": SLEEP}, wider_dataset)

    registry.set_direction(SLEEP, "min")
    best = registry.run(
        wider_dataset, registry.validate("best5", {"question": SLEEP}, wider_dataset)
    )
    worst = registry.run(
        wider_dataset, registry.validate("worst5", {"question": SLEEP}, wider_dataset)
    )
    assert list(best) == ["Alaska", "Ohio", "Texas", "Wyoming"]
    assert list(worst) == ["Wyoming", "Texas", "Ohio", "Alaska"]


def test_the_nine_keep_their_direction_even_without_rows(tiny_dataset):
    registry = default_registry()
    fruit = BEST_IS_MIN[3]
    assert registry.validate("best5", {"question": fruit}, tiny_dataset) == Query("best5", fruit)
    assert registry.run(tiny_dataset, Query("best5", fruit)) == {}


# --- parameters beyond question and state -------------------------------------------------------


def test_a_custom_statistic_validates_its_parameters(tiny_dataset):
    registry = default_registry()
    registry.add(top_states_row())
    query = registry.validate(
        "top_states", {"question": OBESITY, "states": ["Ohio", "Texas"]}, tiny_dataset
    )
    assert query == Query(
        "top_states", OBESITY, None, (("count", 3), ("states", ("Ohio", "Texas")))
    )
    assert Query.from_json(json.loads(json.dumps(query.to_json()))) == query
    assert registry.run(tiny_dataset, query) == ["Ohio", "Texas"]


@pytest.mark.parametrize(
    ("arguments", "reason", "allowed"),
    [
        ({"question": OBESITY, "count": "3"}, "'count' must be an integer", None),
        ({"question": OBESITY, "count": True}, "'count' must be an integer", None),
        ({"question": OBESITY, "states": "Ohio"}, "'states' must be a list of strings", None),
        ({"question": OBESITY, "states": ["Ohio", 1]}, "'states' must be a list of strings", None),
        ({"question": OBESITY, "states": ["Atlantis"]}, "unknown states 'Atlantis'", TINY_STATES),
        ({"question": OBESITY, "colour": "red"}, "unknown parameter 'colour'", None),
        ({"count": 2}, "missing 'question'", None),
    ],
)
def test_a_custom_statistic_refuses_bad_parameters(tiny_dataset, arguments, reason, allowed):
    registry = default_registry()
    registry.add(top_states_row())
    error = _invalid(registry, "top_states", arguments, tiny_dataset)
    assert reason in error.reason
    if reason.startswith("unknown parameter"):
        assert error.allowed == ("question", "count", "states")
    else:
        assert error.allowed == allowed


def test_course_statistics_ignore_extra_keys(tiny_dataset):
    query = default_registry().validate(
        "global_mean", {"question": OBESITY, "colour": "red", "state": 5}, tiny_dataset
    )
    assert query == Query("global_mean", OBESITY)


def test_impure_statistics_are_not_memoized():
    registry = default_registry()
    registry.register("clock", top_states, summary="changes", pure=False)
    assert registry.is_pure(Query("best5", OBESITY))
    assert not registry.is_pure(Query("clock"))
    assert not registry.is_pure(Query("never_registered"))


# --- an embedder registers, submits and gets the answer -----------------------------------------


def test_an_embedder_submits_its_own_statistic(make_engine):
    registry = default_registry()
    registry.add(top_states_row())
    engine = make_engine(registry=registry)
    job = engine.submit("top_states", question=MUSCLE, count=2)
    assert engine.result(job, timeout=5) == ["Alaska", "Texas"]
    query = engine.query("top_states", {"question": MUSCLE}, states=["Ohio"])
    assert engine.result(engine.submit(query), timeout=5) == ["Ohio"]
    assert engine.result(engine.submit("best5", OBESITY), timeout=5) == {
        "Wyoming": 25.0,
        "Texas": 27.5,
        "Ohio": 32.0,
        "Alaska": 33.0,
    }
    with pytest.raises(InvalidQuery, match="unknown endpoint"):
        engine.submit(Query("not_registered", OBESITY))
    assert len(engine.jobs()) == 3


def test_a_custom_statistic_that_raises_fails_its_job_only(make_engine):
    def broken(_dataset: Dataset, _query: Query) -> object:
        raise ZeroDivisionError("no data for that")

    registry = default_registry()
    registry.register("broken", broken, summary="always fails", parameters=[QUESTION])
    engine = make_engine(registry=registry)
    outcome = engine.wait(engine.submit("broken", question=OBESITY), timeout=5)
    assert outcome.reason == "ZeroDivisionError: no data for that"
    assert engine.result(engine.submit("global_mean", OBESITY), timeout=5) == {"global_mean": 29.5}


# --- the HTTP views ----------------------------------------------------------------------------


def course_row(name: str) -> Statistic:
    def state_count(dataset: Dataset, query: Query) -> object:
        stats = dataset.stats(query.question or "")
        return {"states": len(stats.state_means) if stats else 0}

    return Statistic(name, state_count, "how many states have rows", (QUESTION,), course=True)


async def test_a_course_statistic_gets_its_route_openapi_entry_and_index_line(serve, http_dataset):
    registry = default_registry()
    registry.add(course_row("state_count"))
    registry.add(top_states_row())  # not a course route: no POST /api/top_states
    client, engine = await serve(http_dataset, registry=registry)

    job_id = await post_job(client, "state_count", {"question": OBESITY, "extra": 1})
    assert await poll(client, job_id) == {"status": "done", "data": {"states": 4}}
    response = await client.post("/api/top_states", json={"question": OBESITY})
    assert response.status == 404

    document = await get_json(client, "/api/openapi.json")
    assert document == openapi_document(engine.registry, http_dataset)
    operation = document["paths"]["/api/state_count"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["question"]
    assert schema["properties"]["question"]["enum"] == [*BEST_IS_MIN, *BEST_IS_MAX]
    assert "/api/top_states" not in document["paths"]
    state_schema = document["paths"]["/api/state_mean"]["post"]["requestBody"]["content"]
    assert state_schema["application/json"]["schema"]["properties"]["state"]["enum"] == list(
        http_dataset.states
    )

    page = await (await client.get("/api")).text()  # the route list (/ is the web page)
    assert "POST /api/state_count" in page
    assert "how many states have rows" in page
    assert "top_states" not in page


async def test_best5_over_http_on_a_question_without_direction_is_a_400(serve, wider_dataset):
    client, _ = await serve(wider_dataset)
    response = await client.post("/api/best5", json={"question": SLEEP})
    body = await json_body(response)
    assert response.status == 400
    assert "which way is better" in body["reason"]
    assert body["allowed"] == [*BEST_IS_MIN, *BEST_IS_MAX]
    job_id = await post_job(client, "global_mean", {"question": SLEEP})
    assert await poll(client, job_id) == {"status": "done", "data": {"global_mean": 31.5}}
    questions = await get_json(client, "/api/questions")
    assert questions["data"]["no_direction"] == [SLEEP]


# --- plug-ins: --statistic and the entry-point group -------------------------------------------

PLUGIN = textwrap.dedent(
    """
    from lestats.data.registry import Statistic
    from lestats.data.statistics import QUESTION


    def row_count(dataset, query):
        stats = dataset.stats(query.question)
        return {"states": len(stats.state_means) if stats else 0}


    STATISTIC = Statistic("state_count", row_count, "states with rows", (QUESTION,), course=True)


    def register(registry):
        registry.set_direction("Percent of adults who sleep less than 7 hours", "max")
    """
)


def test_the_statistic_option_loads_a_plugin(tmp_path):
    (tmp_path / "my_stats.py").write_text(PLUGIN, encoding="utf-8")
    server = Server(
        "--statistic",
        "my_stats:STATISTIC",
        "--statistic",
        "my_stats:register",
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
    )
    try:
        question = BEST_IS_MAX[0]
        job_id = server.submit("state_count", {"question": question})
        assert server.result(job_id) == {"status": "done", "data": {"states": 55}}
        status, body = server.request("GET", "/api/questions")
        assert status == 200
        assert body["data"]["best_is_max"][-1] == SLEEP
        assert server.stop() == 0
    finally:
        server.kill()


def test_an_installed_entry_point_loads_at_start(tmp_path):
    (tmp_path / "my_stats.py").write_text(PLUGIN, encoding="utf-8")
    dist_info = tmp_path / "my_stats-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-stats\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[lestats.statistics]\nstate_count = my_stats:STATISTIC\n", encoding="utf-8"
    )
    server = Server(cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    try:
        job_id = server.submit("state_count", {"question": BEST_IS_MIN[0]})
        assert server.result(job_id) == {"status": "done", "data": {"states": 55}}
        assert server.stop() == 0
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("target", "problem"),
    [("my_stats", "module:attribute"), ("my_stats:NOPE", "NOPE"), ("no_such:X", "no_such")],
)
def test_a_plugin_that_cannot_load_stops_the_server_with_a_message(tmp_path, target, problem):
    (tmp_path / "my_stats.py").write_text(PLUGIN, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(RUN_PY), "--statistic", target, "--port", "0"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot load a statistic" in done.stderr
    assert problem in done.stderr
    assert "Traceback" not in done.stderr


def _invalid(registry: Registry, name: str, arguments: dict, dataset: Dataset) -> InvalidQuery:
    with pytest.raises(InvalidQuery) as caught:
        registry.validate(name, arguments, dataset)
    return caught.value


def test_state_parameter_is_the_courses(tiny_dataset):
    assert STATE.required
    error = _invalid(default_registry(), "state_mean", {"question": OBESITY}, tiny_dataset)
    assert error.reason == "missing 'state' (required by state_mean)"


def test_a_frozen_registry_validates_a_course_query_once_per_dataset(tiny_dataset, wider_dataset):
    registry = default_registry()
    registry.freeze()
    state = TINY_STATES[0]
    first = registry.validate("state_mean", {"question": OBESITY, "state": state}, tiny_dataset)
    # Equal arguments in fresh strings (as every request body brings) give the same Query back.
    again = registry.validate(
        "state_mean", {"question": "".join(OBESITY), "state": "".join(state), "x": 1}, tiny_dataset
    )
    assert again is first
    assert first == Query("state_mean", OBESITY, state)
    # A statistic that does not take a state ignores it, as before.
    assert registry.validate("best5", {"question": OBESITY, "state": 7}, tiny_dataset) == Query(
        "best5", OBESITY
    )
    # What another dataset allows is checked against that dataset, not taken from the first.
    assert registry.validate("global_mean", {"question": SLEEP}, wider_dataset)
    with pytest.raises(InvalidQuery, match="unknown question"):
        registry.validate("global_mean", {"question": SLEEP}, tiny_dataset)
    with pytest.raises(InvalidQuery, match="unknown question"):
        registry.validate("global_mean", {"question": SLEEP}, tiny_dataset)  # refused every time
    with pytest.raises(InvalidQuery):
        registry.validate("state_mean", {"question": OBESITY, "state": [state]}, tiny_dataset)
    with pytest.raises(InvalidQuery, match="missing 'state'"):
        registry.validate("state_mean", {"question": OBESITY}, tiny_dataset)
