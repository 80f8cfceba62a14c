"""Every route of spec §4 through the aiohttp test client: status, headers and exact bodies."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest
from http_support import (
    ENDPOINTS,
    FRUIT,
    HTTP_STATES,
    JSON,
    MUSCLE,
    OBESITY,
    STATE_ENDPOINTS,
    all_floats,
    failing_runner,
    get_json,
    job_body,
    json_body,
    num_jobs,
    poll,
    post_job,
    wait_idle,
)

from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import compute

pytest_plugins = ["http_support"]

# The answers for OBESITY (and Ohio) on `http_dataset`, written out by hand in contract order.
EXPECTED: dict[str, dict] = {
    "states_mean": {"Wyoming": 27.0, "Texas": 28.0, "Ohio": 32.0, "Alaska": 33.0},
    "state_mean": {"Ohio": 32.0},
    "best5": {"Wyoming": 27.0, "Texas": 28.0, "Ohio": 32.0, "Alaska": 33.0},
    "worst5": {"Alaska": 33.0, "Ohio": 32.0, "Texas": 28.0, "Wyoming": 27.0},
    "global_mean": {"global_mean": 30.0},
    "diff_from_mean": {"Wyoming": 3.0, "Texas": 2.0, "Ohio": -2.0, "Alaska": -3.0},
    "state_diff_from_mean": {"Ohio": -2.0},
    "mean_by_category": {
        "('Alaska', 'Total', 'Total')": 33.0,
        "('Ohio', 'Age (years)', '18 - 24')": 30.0,
        "('Ohio', 'Age (years)', '25 - 34')": 34.0,
        "('Texas', 'Gender', 'Female')": 26.0,
        "('Texas', 'Gender', 'Male')": 30.0,
        "('Wyoming', 'Income', '$75,000 or greater')": 27.0,
    },
    "state_mean_by_category": {
        "Ohio": {"('Age (years)', '18 - 24')": 30.0, "('Age (years)', '25 - 34')": 34.0}
    },
}
INTEGER_VALUE = re.compile(r":\s*-?[0-9]+\s*[,}]")
"""A JSON value written as an integer (`33` instead of `33.0`)."""
ALASKA_33 = re.compile(r'"Alaska": 33\.0\b')


# --- job submission ------------------------------------------------------------------------------


async def test_each_post_route_accepts_a_job_with_consecutive_ids_and_a_location(
    serve, http_dataset
):
    client, _ = await serve(http_dataset)
    for number, endpoint in enumerate(ENDPOINTS, start=1):
        response = await client.post(f"/api/{endpoint}", json=job_body(endpoint, OBESITY, "Ohio"))
        assert response.status == 200
        assert response.content_type == JSON
        assert json.loads(await response.text()) == {"job_id": f"job_id_{number}"}
        assert response.headers["Location"] == f"/api/get_results/job_id_{number}"


async def test_each_post_route_answers_the_contract_result(serve, http_dataset, tmp_path):
    client, _ = await serve(http_dataset)
    job_ids = {
        endpoint: await post_job(client, endpoint, job_body(endpoint, OBESITY, "Ohio"))
        for endpoint in ENDPOINTS
    }
    for endpoint, job_id in job_ids.items():
        body = await poll(client, job_id)
        assert body == {"status": "done", "data": EXPECTED[endpoint]}, endpoint
        # Written before the job reads done, holding exactly the data.
        on_disk = (tmp_path / "results" / f"{job_id}.json").read_text()
        assert json.loads(on_disk) == body["data"]
        assert list(json.loads(on_disk)) == list(EXPECTED[endpoint])
        assert list(body) == ["status", "data"]
        assert list(body["data"]) == list(EXPECTED[endpoint]), f"{endpoint}: key order"
        assert all_floats(body["data"]), endpoint


async def test_extra_keys_are_ignored(serve, http_dataset):
    client, _ = await serve(http_dataset)
    body = {
        "question": OBESITY,
        "state": "Ohio",
        "extra": [1, 2, {"nested": None}],
        "question ": "not the question key",
        "State": 5,
    }
    job_id = await post_job(client, "state_mean", body)
    assert (await poll(client, job_id))["data"] == {"Ohio": 32.0}
    # A state on an endpoint that takes none is an extra key too, even an unknown one.
    job_id = await post_job(client, "global_mean", {"question": OBESITY, "state": "Atlantis"})
    assert (await poll(client, job_id))["data"] == {"global_mean": 30.0}


async def test_a_question_or_state_without_rows_answers_empty(serve, http_dataset):
    client, _ = await serve(http_dataset)
    expected_guam = {
        "state_mean": {},
        "state_diff_from_mean": {},
        "state_mean_by_category": {"Guam": {}},
    }
    for endpoint, expected in expected_guam.items():
        job_id = await post_job(client, endpoint, {"question": OBESITY, "state": "Guam"})
        assert (await poll(client, job_id))["data"] == expected, endpoint
    for endpoint in ENDPOINTS:
        job_id = await post_job(client, endpoint, job_body(endpoint, FRUIT, "Ohio"))
        assert await poll(client, job_id) == {"status": "done", "data": {}}, endpoint


async def test_higher_is_better_question_ranks_the_other_way(serve, http_dataset):
    client, _ = await serve(http_dataset)
    best = await post_job(client, "best5", {"question": MUSCLE})
    worst = await post_job(client, "worst5", {"question": MUSCLE})
    assert (await poll(client, best))["data"] == {
        "Guam": 40.0,
        "Alaska": 31.0,
        "Texas": 24.0,
        "Wyoming": 22.5,
        "Ohio": 20.0,
    }
    assert list((await poll(client, worst))["data"]) == [
        "Ohio",
        "Wyoming",
        "Texas",
        "Alaska",
        "Guam",
    ]


# --- get_results ---------------------------------------------------------------------------------


async def test_get_results_takes_both_id_forms(serve, http_dataset):
    client, _ = await serve(http_dataset)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    long_form = await poll(client, job_id)
    short = await client.get("/api/get_results/1")
    assert short.status == 200
    assert await json_body(short) == long_form == {"status": "done", "data": {"global_mean": 30.0}}


async def test_get_results_running_then_done_bodies_are_exact(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    job_id = await post_job(client, "state_mean", {"question": OBESITY, "state": "Texas"})
    await gate.wait_entered(1)
    for form in (job_id, "1"):
        response = await client.get(f"/api/get_results/{form}")
        assert response.status == 200
        assert response.content_type == JSON
        assert await response.text() in {'{"status": "running"}', '{"status":"running"}'}
        assert json.loads(await response.text()) == {"status": "running"}
    gate.release()
    assert await poll(client, job_id) == {"status": "done", "data": {"Texas": 28.0}}


async def test_a_failing_job_reads_error_with_a_reason_and_http_200(serve, http_dataset):
    client, _ = await serve(http_dataset, runner=failing_runner)
    job_id = await post_job(client, "best5", {"question": OBESITY})
    body = await poll(client, job_id)
    assert set(body) == {"status", "reason"}
    assert body["status"] == "error"
    assert isinstance(body["reason"], str)
    assert "injected failure for best5" in body["reason"]
    response = await client.get("/api/get_results/1")
    assert response.status == 200
    assert await json_body(response) == body
    assert (await get_json(client, "/api/jobs"))["data"] == [{"job_id_1": "error"}]
    assert await num_jobs(client) == 0


async def test_a_deleted_result_file_crashes_nothing(serve, http_dataset, tmp_path):
    client, _ = await serve(http_dataset)
    job_ids = [await post_job(client, "best5", {"question": OBESITY}) for _ in range(3)]
    await wait_idle(client)
    for job_id in job_ids:
        (tmp_path / "results" / f"{job_id}.json").unlink()
    for job_id in job_ids:
        body = await get_json(client, f"/api/get_results/{job_id}")
        assert body["status"] in {"done", "error"}  # a cached copy may still be served
        body = await get_json(client, f"/api/get_results/{job_id}?wait=1")
        assert body["status"] in {"done", "error"}
    assert len((await get_json(client, "/api/jobs"))["data"]) == 3
    job_id = await post_job(client, "best5", {"question": OBESITY})
    assert job_id == "job_id_4"
    assert (await poll(client, job_id))["data"] == EXPECTED["best5"]


async def test_old_results_are_served_and_numbering_continues(serve, http_dataset, tmp_path):
    results = tmp_path / "old-results"
    results.mkdir()
    (results / "job_id_41.json").write_text('{"Ohio": 1.5}')
    (results / "job_id_7.json").write_text('{"global_mean": 2.0}')
    client, _ = await serve(http_dataset, results_dir=results)
    assert await get_json(client, "/api/get_results/job_id_41") == {
        "status": "done",
        "data": {"Ohio": 1.5},
    }
    assert (await get_json(client, "/api/get_results/7"))["data"] == {"global_mean": 2.0}
    assert await post_job(client, "global_mean", {"question": OBESITY}) == "job_id_42"
    assert (await poll(client, "job_id_42"))["data"] == {"global_mean": 30.0}
    await get_json(client, "/api/get_results/job_id_43", status=404)


async def test_a_restart_keeps_done_and_failed_jobs(serve, http_dataset):
    def fail_best5(dataset, query):
        if query.kind == "best5":
            raise RuntimeError("best5 is broken")
        return compute(dataset, query)

    client, _ = await serve(http_dataset, runner=fail_best5)
    first = await post_job(client, "global_mean", {"question": OBESITY})
    second = await post_job(client, "best5", {"question": OBESITY})
    await wait_idle(client)
    before = [await poll(client, first), await poll(client, second)]
    assert [body["status"] for body in before] == ["done", "error"]
    await client.close()

    client, _ = await serve(http_dataset)
    assert [await poll(client, first), await poll(client, second)] == before
    assert (await get_json(client, "/api/jobs"))["data"] == [
        {"job_id_1": "done"},
        {"job_id_2": "error"},
    ]
    assert await post_job(client, "best5", {"question": OBESITY}) == "job_id_3"
    assert (await poll(client, "job_id_3"))["data"] == EXPECTED["best5"]


# --- long-poll -----------------------------------------------------------------------------------


async def test_wait_returns_as_soon_as_the_job_is_done(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    await gate.wait_entered(1)
    asyncio.get_running_loop().call_later(0.3, gate.release)
    started = time.monotonic()
    response = await client.get(f"/api/get_results/{job_id}?wait=20")
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert await json_body(response) == {"status": "done", "data": {"global_mean": 30.0}}
    assert 0.25 <= elapsed < 3.0, elapsed


async def test_wait_on_a_finished_job_answers_at_once(serve, http_dataset):
    client, _ = await serve(http_dataset)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    await poll(client, job_id)
    started = time.monotonic()
    body = await get_json(client, "/api/get_results/1?wait=30")
    assert time.monotonic() - started < 1.0
    assert body == {"status": "done", "data": {"global_mean": 30.0}}


async def test_wait_on_a_failing_job_answers_the_error(serve, http_dataset):
    client, _ = await serve(http_dataset, runner=failing_runner)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    body = await get_json(client, f"/api/get_results/{job_id}?wait=10")
    assert body["status"] == "error"
    assert "injected failure" in body["reason"]


async def test_wait_answers_running_after_its_timeout(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    started = time.monotonic()
    body = await get_json(client, f"/api/get_results/{job_id}?wait=0.5")
    elapsed = time.monotonic() - started
    assert body == {"status": "running"}
    assert 0.45 <= elapsed < 3.0, elapsed
    gate.release()
    assert (await poll(client, job_id))["status"] == "done"


async def test_many_concurrent_waiters_are_all_released(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    waiters = [
        asyncio.ensure_future(get_json(client, f"/api/get_results/{job_id}?wait=20"))
        for _ in range(50)
    ]
    await asyncio.sleep(0.3)
    assert not any(waiter.done() for waiter in waiters)
    gate.release()
    bodies = await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert all(body == {"status": "done", "data": {"global_mean": 30.0}} for body in bodies)


@pytest.mark.parametrize(
    "wait", ["0", "-1", "30.001", "31", "abc", "", "nan", "inf", "-inf", "1e9", "1,5", "0x10"]
)
async def test_invalid_wait_is_400(serve, http_dataset, wait):
    client, _ = await serve(http_dataset)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    await poll(client, job_id)
    body = await get_json(client, f"/api/get_results/{job_id}?wait={wait}", status=400)
    assert body["status"] == "error"
    assert "wait" in body["reason"]


async def test_wait_at_the_limits_is_accepted(serve, http_dataset):
    client, _ = await serve(http_dataset)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    await poll(client, job_id)
    for wait in ("30", "0.001", "1e1"):
        body = await get_json(client, f"/api/get_results/{job_id}?wait={wait}")
        assert body["status"] == "done"


async def test_wait_on_an_unknown_job_is_404(serve, http_dataset):
    client, _ = await serve(http_dataset)
    body = await get_json(client, "/api/get_results/job_id_7?wait=5", status=404)
    assert body == {"status": "error", "reason": "Invalid job_id"}


# --- listings ------------------------------------------------------------------------------------


async def test_jobs_lists_every_job_in_id_order_with_its_status(serve, http_dataset):
    hold = threading.Event()

    def runner(dataset, query):
        if query.kind == "best5":
            raise ValueError("this one fails")
        if query.kind == "worst5":
            hold.wait(30)
        return compute(dataset, query)

    client, _ = await serve(http_dataset, runner=runner, workers=1)
    assert await get_json(client, "/api/jobs") == {"status": "done", "data": []}
    try:
        first = await post_job(client, "global_mean", {"question": OBESITY})
        second = await post_job(client, "best5", {"question": OBESITY})
        await poll(client, first)
        await poll(client, second)
        await post_job(client, "worst5", {"question": OBESITY})
        await post_job(client, "states_mean", {"question": OBESITY})
        body = await get_json(client, "/api/jobs")
        assert body == {
            "status": "done",
            "data": [
                {"job_id_1": "done"},
                {"job_id_2": "error"},
                {"job_id_3": "running"},
                {"job_id_4": "running"},
            ],
        }
        assert await num_jobs(client) == 2
    finally:
        hold.set()
    await wait_idle(client)
    statuses = [next(iter(item.values())) for item in (await get_json(client, "/api/jobs"))["data"]]
    assert statuses == ["done", "error", "done", "done"]


async def test_num_jobs_counts_queued_and_running_jobs(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    assert await get_json(client, "/api/num_jobs") == {"status": "done", "num_jobs": 0}
    for _ in range(5):
        await post_job(client, "global_mean", {"question": OBESITY})
    await gate.wait_entered(2)  # two workers: two running, three queued
    assert await get_json(client, "/api/num_jobs") == {"status": "done", "num_jobs": 5}
    gate.release()
    await wait_idle(client)
    assert await get_json(client, "/api/num_jobs") == {"status": "done", "num_jobs": 0}


async def test_questions_lists_the_nine_by_direction(serve, http_dataset):
    client, _ = await serve(http_dataset)
    body = await get_json(client, "/api/questions")
    assert body == {
        "status": "done",
        "data": {"best_is_min": list(BEST_IS_MIN), "best_is_max": list(BEST_IS_MAX)},
    }
    assert len(body["data"]["best_is_min"]) == 5
    assert len(body["data"]["best_is_max"]) == 4
    assert (
        "Percent of adults who report consuming fruit less than one time daily"
        in (body["data"]["best_is_min"])
    )


async def test_states_lists_the_states_of_the_loaded_data(serve, http_dataset):
    client, _ = await serve(http_dataset)
    assert await get_json(client, "/api/states") == {"status": "done", "data": list(HTTP_STATES)}


async def test_states_of_the_demo_data_include_national_and_territories(serve, demo_dataset):
    client, _ = await serve(demo_dataset)
    states = (await get_json(client, "/api/states"))["data"]
    assert len(states) == 55
    assert states == sorted(states)
    assert {"National", "District of Columbia", "Guam", "Puerto Rico", "Virgin Islands"} <= set(
        states
    )


async def test_health_reports_its_fields_with_their_types(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate, workers=3)
    body = await get_json(client, "/api/health")
    assert body == {"status": "ok", "accepting": True, "workers": 3, "num_jobs": 0}
    assert type(body["accepting"]) is bool
    assert type(body["workers"]) is int
    assert type(body["num_jobs"]) is int
    await post_job(client, "global_mean", {"question": OBESITY})
    assert (await get_json(client, "/api/health"))["num_jobs"] == 1
    gate.release()
    await wait_idle(client)


async def test_route_list_page_lists_the_routes(serve, http_dataset):
    client, _ = await serve(http_dataset)
    response = await client.get("/api")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "<html" in page.lower()
    routes = [f"/api/{endpoint}" for endpoint in ENDPOINTS] + [
        "/api/get_results/",
        "/api/jobs",
        "/api/num_jobs",
        "/api/graceful_shutdown",
        "/api/questions",
        "/api/states",
        "/api/health",
    ]
    for route in routes:
        assert route in page, route


# --- wire format ---------------------------------------------------------------------------------


async def test_every_json_answer_says_application_json(serve, http_dataset):
    client, _ = await serve(http_dataset)
    job_id = await post_job(client, "states_mean", {"question": OBESITY})
    await poll(client, job_id)
    paths = [
        f"/api/get_results/{job_id}",
        "/api/get_results/1",
        "/api/jobs",
        "/api/num_jobs",
        "/api/questions",
        "/api/states",
        "/api/health",
        "/api/get_results/job_id_42",
        "/api/nope",
    ]
    for path in paths:
        response = await client.get(path)
        assert response.content_type == JSON, path
        assert response.charset in {None, "utf-8"}, path
        json.loads(await response.text())


async def test_every_value_is_a_json_float_on_the_wire(serve, http_dataset):
    client, _ = await serve(http_dataset)
    job_ids = {
        endpoint: await post_job(client, endpoint, job_body(endpoint, OBESITY, "Ohio"))
        for endpoint in ENDPOINTS
    }
    await wait_idle(client)
    for endpoint, job_id in job_ids.items():
        response = await client.get(f"/api/get_results/{job_id}")
        raw = await response.text()
        data = json.loads(raw)["data"]
        assert INTEGER_VALUE.search(raw) is None, f"{endpoint}: integer on the wire: {raw}"
        assert all_floats(data), endpoint
        if endpoint in {"states_mean", "best5", "worst5"}:
            assert ALASKA_33.search(raw), raw
        if endpoint in STATE_ENDPOINTS:
            assert '"Ohio": ' in raw
    raw = await (await client.get(f"/api/get_results/{job_ids['global_mean']}")).text()
    assert re.search(r'"global_mean": 30\.0\b', raw), raw
