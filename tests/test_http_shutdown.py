"""`GET /api/graceful_shutdown` and the app's own shutdown: every accepted job drains, nothing else
is accepted, reads keep answering, long-polls are let go."""

from __future__ import annotations

import asyncio
import json
import time

from http_support import (
    ENDPOINTS,
    OBESITY,
    get_json,
    job_body,
    json_body,
    num_jobs,
    poll,
    post_job,
    until,
)

pytest_plugins = ["http_support"]

SHUTTING_DOWN = {"status": "error", "reason": "shutting down"}
BURST = 50


async def shutdown_status(client) -> str:
    body = await get_json(client, "/api/graceful_shutdown")
    assert set(body) == {"status"}
    return body["status"]


async def assert_refused(client) -> None:
    """Every job POST answers 503 shutting down."""
    for endpoint in ENDPOINTS:
        response = await client.post(f"/api/{endpoint}", json=job_body(endpoint, OBESITY, "Ohio"))
        assert response.status == 503, endpoint
        assert await json_body(response) == SHUTTING_DOWN
        assert "Location" not in response.headers


async def test_graceful_shutdown_during_a_burst(serve, http_dataset, gate, tmp_path):
    client, _ = await serve(http_dataset, runner=gate)
    job_ids = [
        await post_job(client, ENDPOINTS[i % 9], job_body(ENDPOINTS[i % 9], OBESITY, "Texas"))
        for i in range(BURST)
    ]
    assert job_ids == [f"job_id_{n}" for n in range(1, BURST + 1)]
    await gate.wait_entered(2)

    assert await shutdown_status(client) == "running"
    await assert_refused(client)
    # Reads keep answering while the jobs are held.
    assert await get_json(client, "/api/get_results/job_id_1") == {"status": "running"}
    assert await get_json(client, f"/api/get_results/{BURST}") == {"status": "running"}
    listed = (await get_json(client, "/api/jobs"))["data"]
    assert listed == [{job_id: "running"} for job_id in job_ids]
    assert await num_jobs(client) == BURST
    health = await get_json(client, "/api/health")
    assert health == {"status": "ok", "accepting": False, "workers": 2, "num_jobs": BURST}
    await get_json(client, "/api/questions")
    await get_json(client, "/api/states")
    assert await shutdown_status(client) == "running"  # calling again is safe
    await get_json(client, "/api/get_results/job_id_51", status=404)  # no id was used up

    gate.release()
    deadline = time.monotonic() + 20
    while await num_jobs(client):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await shutdown_status(client) == "done"
    assert await shutdown_status(client) == "done"
    listed = (await get_json(client, "/api/jobs"))["data"]
    assert listed == [{job_id: "done"} for job_id in job_ids]
    for n, job_id in enumerate(job_ids):
        body = await poll(client, job_id)
        assert body["status"] == "done"
        on_disk = json.loads((tmp_path / "results" / f"{job_id}.json").read_text())
        assert on_disk == body["data"], job_id
        if ENDPOINTS[n % 9] == "state_mean":
            assert body["data"] == {"Texas": 28.0}
    await assert_refused(client)
    await get_json(client, "/api/get_results/job_id_51", status=404)
    assert (await get_json(client, "/api/health"))["accepting"] is False


async def test_graceful_shutdown_with_nothing_pending_is_done_at_once(serve, http_dataset):
    client, _ = await serve(http_dataset)
    assert await shutdown_status(client) == "done"
    await assert_refused(client)
    assert await shutdown_status(client) == "done"
    assert (await get_json(client, "/api/jobs"))["data"] == []


async def test_every_job_post_after_shutdown_is_503_even_a_malformed_one(serve, http_dataset):
    client, _ = await serve(http_dataset)
    assert await shutdown_status(client) == "done"
    for raw in (b"nope", b"[]", b'{"question": "x"}', b'{"question": 5}'):
        response = await client.post("/api/state_mean", data=raw)
        assert (response.status, await json_body(response)) == (503, SHUTTING_DOWN), raw
    response = await client.post("/api/state_mean", json={"question": OBESITY, "state": "Mars"})
    assert (response.status, await json_body(response)) == (503, SHUTTING_DOWN)


async def test_concurrent_graceful_shutdown_calls_are_safe(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    statuses = await asyncio.gather(*(shutdown_status(client) for _ in range(20)))
    assert set(statuses) == {"running"}
    gate.release()
    assert await poll(client, job_id) == {"status": "done", "data": {"global_mean": 30.0}}
    statuses = await asyncio.gather(*(shutdown_status(client) for _ in range(20)))
    assert set(statuses) == {"done"}


async def test_a_long_poll_during_graceful_shutdown_gets_the_result(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    waiter = asyncio.ensure_future(get_json(client, f"/api/get_results/{job_id}?wait=20"))
    assert await shutdown_status(client) == "running"
    await asyncio.sleep(0.2)
    assert not waiter.done()
    gate.release()
    body = await asyncio.wait_for(waiter, 10)
    assert body == {"status": "done", "data": {"global_mean": 30.0}}


async def test_a_long_poll_returns_promptly_when_the_server_closes(
    serve, http_dataset, gate, tmp_path
):
    client, engine = await serve(http_dataset, runner=gate)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    waiter = asyncio.ensure_future(client.get(f"/api/get_results/{job_id}?wait=30"))
    await until(lambda: engine._waiters.taken == 1, "the long-poll waits in the engine")
    assert not waiter.done()

    started = time.monotonic()
    closing = asyncio.ensure_future(client.server.close())
    response = await asyncio.wait_for(waiter, 10)
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert await json_body(response) == {"status": "running"}
    assert elapsed < 3.0, elapsed

    # The server still drains the accepted job before it is closed.
    await asyncio.sleep(0.2)
    assert not closing.done()
    gate.release()
    await asyncio.wait_for(closing, 20)
    result = json.loads((tmp_path / "results" / f"{job_id}.json").read_text())
    assert result == {"global_mean": 30.0}


async def test_closing_the_app_drains_every_accepted_job(serve, http_dataset, gate, tmp_path):
    client, engine = await serve(http_dataset, runner=gate)
    job_ids = [await post_job(client, "best5", {"question": OBESITY}) for _ in range(10)]
    asyncio.get_running_loop().call_later(0.3, gate.release)
    await asyncio.wait_for(client.close(), 20)
    assert not engine.started
    for job_id in job_ids:
        data = json.loads((tmp_path / "results" / f"{job_id}.json").read_text())
        assert list(data) == ["Wyoming", "Texas", "Ohio", "Alaska"]
