"""The course checker's protocol over all nine endpoints, on generated data, against the reference.

The checker POSTs a job, polls `GET /api/get_results/<job_id>` every 0.2 s needing HTTP 200 each
time, and compares the data within 0.01. We check that, and more strictly the key sets, the key
order and the exact values (the contract says fsum-exact). Then 32 concurrent clients submit
2,000 jobs: ids 1..2000, each result right.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from typing import NamedTuple

import pytest
from http_support import (
    ENDPOINTS,
    QUESTIONS,
    STATE_ENDPOINTS,
    close_enough,
    job_body,
    job_number,
    json_body,
    key_paths,
    post_job,
)
from reference import parse_rows, reference

from lestats.data.demo import iter_demo_lines
from lestats.data.loader import load_lines

pytest_plugins = ["http_support"]

ROWS = 3000
SEED = 7
POLL_INTERVAL = 0.2
POLL_TIMEOUT = 30.0
CLIENTS = 32
JOBS = 2000

DROPPED = (QUESTIONS[0], "Wyoming")
"""All rows of this (question, state) are removed: the state has no row for the question."""
BLANKED = (QUESTIONS[5], "Guam")
"""All values of this (question, state) are emptied: rows, but no numeric one."""
STATES = ("Alabama", "National", "Texas", "Wyoming", "Guam")
"""The states asked for on the state endpoints, for every question."""


class Job(NamedTuple):
    endpoint: str
    question: str
    state: str | None


def _edited_lines() -> list[str]:
    """The generated CSV, with `DROPPED` removed and `BLANKED` emptied."""
    lines = list(iter_demo_lines(rows=ROWS, seed=SEED))
    header = next(csv.reader(lines[:1]))
    names = [name.strip() for name in header]
    question, state, value = (names.index(n) for n in ("Question", "LocationDesc", "Data_Value"))
    kept = [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line]))
        pair = (row[question], row[state])
        if pair == DROPPED:
            continue
        if pair == BLANKED:
            row[value] = ""
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerow(row)
            line = out.getvalue()  # noqa: PLW2901 - the edited line replaces the original
        kept.append(line)
    return kept


class Data(NamedTuple):
    dataset: object
    jobs: list[Job]
    expected: dict[Job, dict]
    answers: dict[Job, object]
    """The checker's answers, filled by the first test that runs it (one run serves all)."""


@pytest.fixture(scope="module")
def data() -> Data:
    lines = _edited_lines()
    dataset = load_lines(lines, source=f"demo ({ROWS} rows, seed {SEED}, edited)")
    rows = parse_rows(csv.DictReader(lines))
    assert not any(r.question == DROPPED[0] and r.state == DROPPED[1] for r in rows)
    assert any(r.question == BLANKED[0] and r.state == BLANKED[1] for r in rows)
    jobs = [
        Job(endpoint, question, state)
        for question in QUESTIONS
        for endpoint in ENDPOINTS
        for state in (STATES if endpoint in STATE_ENDPOINTS else (None,))
    ]
    expected = {job: reference(job.endpoint, job.question, job.state, rows) for job in jobs}
    assert expected[Job("state_mean", *DROPPED)] == {}
    assert expected[Job("state_mean_by_category", *BLANKED)] == {"Guam": {}}
    return Data(dataset, jobs, expected, {})


async def checker(client, jobs: list[Job]) -> dict[Job, object]:
    """POST every job, then poll each not yet done every 0.2 s; HTTP 200 on every poll."""
    job_ids = {job: await post_job(client, job.endpoint, job_body(*job)) for job in jobs}
    assert [job_number(i) for i in job_ids.values()] == list(range(1, len(jobs) + 1))
    results: dict[Job, object] = {}
    deadline = time.monotonic() + POLL_TIMEOUT
    while len(results) < len(jobs):
        for job, job_id in job_ids.items():
            if job in results:
                continue
            response = await client.get(f"/api/get_results/{job_id}")
            body = await json_body(response)
            assert response.status == 200, (job, response.status, body)
            assert body["status"] in {"running", "done"}, (job, body)
            if body["status"] == "done":
                assert set(body) == {"status", "data"}
                results[job] = body["data"]
        assert time.monotonic() < deadline, f"{len(jobs) - len(results)} jobs never finished"
        if len(results) < len(jobs):
            await asyncio.sleep(POLL_INTERVAL)
    return results


@pytest.fixture
async def answers(serve, data) -> dict[Job, object]:
    """What the checker protocol got for every job, run once per module."""
    if not data.answers:
        client, _ = await serve(data.dataset, workers=4)
        data.answers.update(await checker(client, data.jobs))
    return data.answers


async def test_checker_protocol_within_its_tolerance(data, answers):
    wrong = [job for job in data.jobs if not close_enough(answers[job], data.expected[job])]
    assert not wrong, [(job, answers[job], data.expected[job]) for job in wrong[:3]]


async def test_key_sets_are_exactly_the_references(data, answers):
    for job in data.jobs:
        assert set(key_paths(answers[job])) == set(key_paths(data.expected[job])), job


async def test_key_order_is_exactly_the_references(data, answers):
    for job in data.jobs:
        assert key_paths(answers[job]) == key_paths(data.expected[job]), job


async def test_values_are_exactly_the_references(data, answers):
    for job in data.jobs:
        assert answers[job] == data.expected[job], job


async def test_state_without_rows_answers_empty(answers):
    for endpoint in ("state_mean", "state_diff_from_mean"):
        assert answers[Job(endpoint, *DROPPED)] == {}
        assert answers[Job(endpoint, *BLANKED)] == {}
    assert answers[Job("state_mean_by_category", *DROPPED)] == {"Wyoming": {}}
    assert answers[Job("state_mean_by_category", *BLANKED)] == {"Guam": {}}
    assert "Wyoming" not in answers[Job("states_mean", DROPPED[0], None)]
    assert "Guam" not in answers[Job("diff_from_mean", BLANKED[0], None)]


async def test_32_concurrent_clients_get_2000_consecutive_ids_and_right_results(serve, data):
    client, _ = await serve(data.dataset, workers=4)
    plan = [data.jobs[i % len(data.jobs)] for i in range(JOBS)]
    submitted: list[tuple[str, Job]] = []

    async def submitter(mine: list[Job]) -> None:
        numbers = []
        for job in mine:
            job_id = await post_job(client, job.endpoint, job_body(*job))
            numbers.append(job_number(job_id))
            submitted.append((job_id, job))
        assert numbers == sorted(numbers), "one client's ids must rise"

    await asyncio.gather(*(submitter(plan[c::CLIENTS]) for c in range(CLIENTS)))
    assert sorted(job_number(job_id) for job_id, _ in submitted) == list(range(1, JOBS + 1))

    async def fetcher(mine: list[tuple[str, Job]]) -> list[str]:
        wrong = []
        for job_id, job in mine:
            response = await client.get(f"/api/get_results/{job_id}?wait=20")
            body = await json_body(response)
            assert response.status == 200, (job_id, body)
            if body != {"status": "done", "data": data.expected[job]}:
                wrong.append(job_id)
        return wrong

    wrong = await asyncio.gather(*(fetcher(submitted[c::CLIENTS]) for c in range(CLIENTS)))
    assert not [job_id for chunk in wrong for job_id in chunk]
    response = await client.get("/api/jobs")
    listed = (await json_body(response))["data"]
    assert listed == [{f"job_id_{n}": "done"} for n in range(1, JOBS + 1)]
