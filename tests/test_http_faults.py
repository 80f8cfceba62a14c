"""Fault injection over HTTP: crashing jobs and workers, an unwritable results directory, a
deleted result file, a flood past the pending limit, slow jobs next to a responsive event loop.

Each fault must end the affected jobs in `error` with a reason (or refuse them with 503 before
accepting them), keep the server up, and leave every other accepted job `done`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest
from http_support import OBESITY, get_json, poll, post_job

from lestats.data.statistics import compute
from lestats.testing import GatedRunner

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from lestats.data.dataset import Dataset
    from lestats.data.query import Query

pytest_plugins = ["http_support"]


class FatalFault(BaseException):
    """Not an ordinary error: it kills the worker running the job, not just the job."""


def crash_on_texas(dataset: Dataset, query: Query) -> object:
    if query.state == "Texas":
        raise FatalFault("worker killed mid-job")
    return compute(dataset, query)


async def test_a_worker_killed_mid_job_fails_that_job_only(serve, http_dataset):
    client, engine = await serve(http_dataset, runner=crash_on_texas, workers=1)
    before = await post_job(client, "state_mean", {"question": OBESITY, "state": "Ohio"})
    crashing = await post_job(client, "state_mean", {"question": OBESITY, "state": "Texas"})
    behind = [
        await post_job(client, "state_mean", {"question": OBESITY, "state": "Alaska"})
        for _ in range(5)
    ]
    assert (await poll(client, before))["status"] == "done"
    failed = await poll(client, crashing)
    assert failed["status"] == "error"
    assert "crashed" in failed["reason"]
    for job_id in behind:
        assert await poll(client, job_id) == {"status": "done", "data": {"Alaska": 33.0}}
    health = await get_json(client, "/api/health")
    assert health == {"status": "ok", "accepting": True, "workers": 1, "num_jobs": 0}
    again = await post_job(client, "state_mean", {"question": OBESITY, "state": "Ohio"})
    assert (await poll(client, again))["status"] == "done"
    assert engine.accepting


@contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """No new file can be made in `directory` (root ignores modes: use the immutable flag)."""
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None:
            pytest.skip("running as root without chattr: cannot make a directory unwritable")
        subprocess.run([chattr, "+i", str(directory)], check=True)
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(directory)], check=True)
    else:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o755)


async def test_unwritable_results_directory_fails_jobs_then_recovers(serve, http_dataset, tmp_path):
    results = tmp_path / "results"
    client, _ = await serve(http_dataset, results_dir=results)
    body = {"question": OBESITY}
    first = await post_job(client, "global_mean", body)
    assert (await poll(client, first))["status"] == "done"
    with unwritable(results):
        blocked = await post_job(client, "global_mean", body)
        failed = await poll(client, blocked)
        assert failed["status"] == "error"
        assert "could not save the result" in failed["reason"]
        assert (await get_json(client, "/api/health"))["status"] == "ok"
    recovered = await post_job(client, "global_mean", body)
    assert await poll(client, recovered) == {"status": "done", "data": {"global_mean": 30.0}}
    assert await poll(client, first) == {"status": "done", "data": {"global_mean": 30.0}}
    assert (await poll(client, blocked))["status"] == "error"


async def test_a_result_file_deleted_behind_the_servers_back(serve, http_dataset, tmp_path):
    results = tmp_path / "results"
    client, _ = await serve(http_dataset, results_dir=results, cache_bytes=0)
    ids = [await post_job(client, "best5", {"question": OBESITY}) for _ in range(3)]
    for job_id in ids:
        await poll(client, job_id)
    (results / f"{ids[0]}.json").unlink()
    answer = await get_json(client, f"/api/get_results/{ids[0]}")
    assert answer == {"status": "error", "reason": f"the result file of {ids[0]} is gone"}
    assert (await get_json(client, f"/api/get_results/{ids[1]}"))["status"] == "done"
    listing = await get_json(client, "/api/jobs")
    assert [next(iter(entry)) for entry in listing["data"]] == ids
    fresh = await post_job(client, "best5", {"question": OBESITY})
    assert (await poll(client, fresh))["status"] == "done"


def slow_runner(dataset: Dataset, query: Query) -> object:
    time.sleep(0.005)
    return compute(dataset, query)


async def test_a_flood_past_the_pending_limit_gets_503_and_loses_nothing(serve, http_dataset):
    client, _ = await serve(http_dataset, runner=slow_runner, max_pending=20)
    accepted: list[str] = []
    refused = 0

    async def poster(count: int) -> None:
        nonlocal refused
        for _ in range(count):
            response = await client.post("/api/global_mean", json={"question": OBESITY})
            body = await response.json()
            if response.status == 200:
                accepted.append(body["job_id"])
            else:
                assert response.status == 503, body
                assert response.headers["Retry-After"].isdigit()
                assert "too many jobs pending" in body["reason"]
                refused += 1

    await asyncio.gather(*(poster(40) for _ in range(50)))
    assert refused > 0
    assert len(accepted) + refused == 2000
    numbers = sorted(int(job_id.removeprefix("job_id_")) for job_id in accepted)
    assert numbers == list(range(1, len(accepted) + 1)), "a refused POST used up an id"
    for job_id in accepted:
        assert await poll(client, job_id) == {"status": "done", "data": {"global_mean": 30.0}}
    assert (await get_json(client, "/api/num_jobs"))["num_jobs"] == 0


HEALTH_DEADLINE = 5.0
"""Seconds a health request may take while jobs hold every worker: far beyond any scheduling
delay, far below the gate's own timeout."""


async def test_the_event_loop_answers_while_jobs_are_slow(serve, http_dataset):
    """Health answers while both jobs hold their workers; held until the test lets them go.

    A loop that waited on a job would not answer at all until the gate opens, so a generous
    deadline per request tells the two apart without depending on how busy the machine is.
    """
    runner = GatedRunner()
    client, _ = await serve(http_dataset, runner=runner)
    ids = [await post_job(client, "global_mean", {"question": OBESITY}) for _ in range(2)]
    await asyncio.to_thread(runner.wait_started, 2)
    for _ in range(20):
        health = await asyncio.wait_for(get_json(client, "/api/health"), HEALTH_DEADLINE)
        assert health["num_jobs"] == 2
    runner.release()
    for job_id in ids:
        assert (await poll(client, job_id))["status"] == "done"
