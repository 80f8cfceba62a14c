"""`lestats.client.Client`: the embedded Engine's methods, over HTTP, against real servers.

The first test is the promise itself: one program, run once over an embedded `Engine` and once
over a `Client` of `run.py` (the two differ in one line), prints the same transcript. The others
use a server in this process (`LiveServer`: a real socket, the real application) whose engine
the test controls, to see long-polls, retries, kept-alive connections and every error answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest
from live_server import LiveServer

from lestats.actors.engine import Engine
from lestats.actors.jobs import RUNNING, JobStatus
from lestats.client import Client, ConnectionFailed, RemoteError
from lestats.client.protocol import Answer, RetryPolicy, error_for
from lestats.data.query import Query
from lestats.data.statistics import default_registry
from lestats.errors import (
    InvalidQuery,
    JobFailed,
    Overloaded,
    PartlyAccepted,
    ShuttingDown,
    StorageError,
    UnknownJob,
)
from lestats.testing import MUSCLE, OBESITY, TINY_STATES, GatedRunner

pytest_plugins = ["http_support"]

from http_support import Server  # noqa: E402

if TYPE_CHECKING:
    from pathlib import Path

PROGRAM = """
import asyncio
import sys

from lestats import Engine, InvalidQuery, Query, ShuttingDown, UnknownJob, load_demo_dataset
from lestats.cli import statistics
from lestats.client import Client

QUESTION = "Percent of adults aged 18 years and older who have obesity"
MUSCLE = "Percent of adults who engage in muscle-strengthening activities on 2 or more days a week"

engine = {make}

with engine:
    first = engine.submit("best5", QUESTION)
    print(first, engine.result(first, timeout=10))
    print(engine.wait(first, timeout=10), engine.outcome(1), engine.status("1"))
    for endpoint in ("states_mean", "worst5", "global_mean", "diff_from_mean", "mean_by_category"):
        job = engine.submit(endpoint, MUSCLE, "ignored")
        print(job, engine.result(job, timeout=10))
    for endpoint in ("state_mean", "state_diff_from_mean", "state_mean_by_category"):
        job = engine.submit(endpoint, QUESTION, "Ohio")
        print(job, engine.wait(job, timeout=10))
    for bad in [("best6", QUESTION, None), ("best5", "obesity", None), ("best5", 42, None),
                ("state_mean", QUESTION, None), ("state_mean", QUESTION, "Atlantis"),
                ("state_mean", QUESTION, ["Ohio"])]:
        try:
            engine.submit(*bad)
        except InvalidQuery as exc:
            print("InvalidQuery", exc.reason, exc.allowed)
    typed = engine.submit(Query("global_mean", QUESTION))
    keywords = engine.submit("state_diff_from_mean", question=MUSCLE, state="Texas")
    print(typed, engine.result(typed, timeout=10), keywords, engine.result(keywords, timeout=10))
    trend = engine.submit("trend", question="Q036", location=["OH", "US"])
    print(trend, engine.result(trend, timeout=10))
    try:
        engine.submit("trend", question="Q036", location=["Atlantis"])
    except InvalidQuery as exc:
        print("InvalidQuery", exc.reason, exc.allowed)
    print(engine.jobs(after=2, limit=3), engine.jobs(8), engine.jobs(limit=1))
    print(engine.cancel(first), engine.forget(first), engine.outcome(first), engine.forget(1))
    many = engine.submit_many([Query("best5", QUESTION), Query("worst5", MUSCLE)])
    print(many, engine.job(many[1]).result(timeout=10), engine.job(many[0]).status())
    print(sorted((j, o.status) for j, o in engine.as_completed([*many, first], timeout=10)))
    for unknown in ("job_id_999", "../etc", 0, "job_id_01"):
        try:
            engine.outcome(unknown)
        except UnknownJob as exc:
            print("UnknownJob", exc.job_id)

    async def main() -> None:
        job = await engine.submit_async("state_mean", QUESTION, "Ohio")
        print(job, await engine.result_async(job, timeout=10))
        print(await engine.wait_async(job, 5), await engine.outcome_async(job))
        print(await engine.status_async(job), await engine.num_jobs_async())
        print(await engine.jobs_async())
        print(await engine.jobs_async(3, 2), [page async for page in engine.job_pages(9)])
        print(await engine.cancel_async(2), await engine.forget_async(2), engine.status(2))
        more = await engine.submit_many_async([Query("global_mean", QUESTION)])
        done = [job async for job, _ in engine.as_completed_async(more, timeout=10)]
        print(more, done, await engine.job(more[0]))
        try:
            await engine.result_async("job_id_12345")
        except UnknownJob as exc:
            print("UnknownJob", exc.job_id)

    asyncio.run(main())
    print(engine.num_jobs(), engine.jobs())
    engine.begin_shutdown().result(10)
    try:
        engine.submit("best5", QUESTION)
    except ShuttingDown as exc:
        print("ShuttingDown", exc)
    print(engine.num_jobs(), len(engine.jobs()))
"""
EMBEDDED = (
    'Engine(load_demo_dataset(), workers=2, results_dir="embedded-results", '
    "registry=statistics([]))"  # the server's statistics: the course's and the v2 queries
)
REMOTE = "Client(sys.argv[1])"


def run_program(make: str, cwd: Path, *args: str) -> str:
    script = cwd / "program.py"
    script.write_text(PROGRAM.format(make=make), encoding="utf-8")
    finished = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == "", finished.stderr
    return finished.stdout


def test_one_program_runs_the_same_embedded_and_remote(tmp_path):
    embedded_dir, remote_dir = tmp_path / "embedded", tmp_path / "remote"
    embedded_dir.mkdir()
    remote_dir.mkdir()
    embedded = run_program(EMBEDDED, embedded_dir)
    server = Server("--workers", "2", "--results-dir", str(remote_dir / "results"), cwd=remote_dir)
    try:
        remote = run_program(REMOTE, remote_dir, server.url)
        assert server.stop() == 0
    finally:
        server.kill()
    assert remote == embedded
    lines = embedded.splitlines()
    assert len(lines) == 38
    assert lines[0].startswith("job_id_1 {")
    assert "ShuttingDown shutting down" in lines


# --- a server in this process ----------------------------------------------------------------


@pytest.fixture
def live(tiny_dataset, results_dir):
    """`live(**engine_options)` -> a started LiveServer over `tiny_dataset`; stopped after."""
    servers: list[LiveServer] = []

    def start(*, keepalive_timeout: float = 75.0, **options) -> LiveServer:
        options.setdefault("workers", 2)
        options.setdefault("results_dir", results_dir)
        server = LiveServer(Engine(tiny_dataset, **options), keepalive_timeout=keepalive_timeout)
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def gated():
    runner = GatedRunner()
    yield runner
    runner.gate.set()


def test_results_and_statuses_match_the_engine_behind_the_server(live):
    server = live()
    with Client(server.url) as client:
        job = client.submit("state_mean", OBESITY, "Texas")
        assert job == "job_id_1"
        data = client.result(job, timeout=5)
        assert data == server.engine.result(job)
        assert client.outcome(job) == server.engine.outcome(job)  # the result bytes, exactly
        assert client.status(1) is JobStatus.DONE
        assert client.jobs() == [("job_id_1", JobStatus.DONE)]
        assert client.num_jobs() == 0


def test_errors_are_the_engines_exceptions(live):
    server = live(runner=GatedRunner(gated=False, fail=lambda q: q.question == MUSCLE))
    with Client(server.url) as client:
        with pytest.raises(InvalidQuery) as unknown_state:
            client.submit("state_mean", OBESITY, "Atlantis")
        assert unknown_state.value.allowed == TINY_STATES
        with pytest.raises(InvalidQuery) as unknown_question:
            client.submit("best5", "obesity")
        assert unknown_question.value.reason == "unknown question 'obesity'"
        assert len(unknown_question.value.allowed) == 9
        with pytest.raises(InvalidQuery) as unknown_endpoint:
            client.submit("best6", OBESITY)
        assert unknown_endpoint.value.allowed == default_registry().names
        with pytest.raises(UnknownJob) as unknown_job:
            client.outcome("job_id_7")
        assert unknown_job.value.job_id == 7  # as the engine's ResultStore says it
        failing = client.submit("best5", MUSCLE)
        with pytest.raises(JobFailed) as failed:
            client.result(failing, timeout=5)
        assert failed.value.job_id == failing
        assert "this job fails" in failed.value.reason
        with pytest.raises(JobFailed) as embedded:
            server.engine.result(failing)
        assert embedded.value.reason == failed.value.reason
    # ids checked before any request, as the engine checks them
    assert not server.requests("/api/get_results/..")


def test_unknown_routes_and_dead_servers_have_their_own_errors(live):
    server = live()
    with Client(server.url + "/not-here") as client, pytest.raises(RemoteError) as wrong:
        client.num_jobs()
    assert wrong.value.status == 404
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}") as client, pytest.raises(ConnectionFailed):
        client.num_jobs()
    with pytest.raises(ValueError, match="not an http"):
        Client("https://example.invalid")


def test_wait_long_polls_instead_of_polling(live, gated):
    server = live(runner=gated)
    with Client(server.url) as client:
        job = client.submit("best5", OBESITY)
        gated.wait_started()
        began = time.monotonic()
        assert client.wait(job, timeout=0.3) == RUNNING
        assert time.monotonic() - began >= 0.3
        assert len(server.requests("/api/get_results/")) == 1
        answer: list[object] = []
        waiter = threading.Thread(target=lambda: answer.append(client.result(job)))
        waiter.start()
        server.wait_for(lambda: len(server.arrived) == 3)  # the long-poll is waiting
        gated.gate.set()
        waiter.join(10)
        assert answer == [server.engine.result(job)]
        polls = server.requests("/api/get_results/")
        assert len(polls) == 2, polls  # one long-poll answered when the job finished
        assert polls[1].path == "/api/get_results/job_id_1?wait=30.000"


def test_connections_are_kept_alive_and_replaced_when_the_server_closes_them(live):
    server = live(keepalive_timeout=0.2)
    with Client(server.url) as client:
        for _ in range(20):
            client.num_jobs()
        assert len({seen.port for seen in server.seen}) == 1
        server.wait_for(lambda: server.connections() == 0)  # closed by the server when idle
        job = client.submit("best5", OBESITY)  # on a fresh connection, sent once
        assert client.result(job, timeout=5)
    assert len(server.requests("/api/best5")) == 1
    assert len({seen.port for seen in server.seen}) == 2


def test_threads_share_the_client(live):
    server = live()
    with Client(server.url) as client:
        ids: list[str] = []
        lock = threading.Lock()

        def work() -> None:
            for _ in range(10):
                job = client.submit("global_mean", OBESITY)
                client.result(job, timeout=10)
                with lock:
                    ids.append(job)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(ids, key=lambda i: int(i.rsplit("_", 1)[1])) == [
            f"job_id_{n}" for n in range(1, 41)
        ]
        assert len({seen.port for seen in server.seen}) <= 4


def test_overloaded_is_retried_after_retry_after_then_raised(live, gated):
    server = live(runner=gated, max_pending=1)
    with Client(server.url, retries=0) as impatient, Client(server.url) as patient:
        first = impatient.submit("best5", OBESITY)
        gated.wait_started()
        with pytest.raises(Overloaded) as refused:
            impatient.submit("best5", OBESITY)
        assert refused.value.retry_after == 1.0
        accepted: list[str] = []
        began = time.monotonic()
        retrying = threading.Thread(
            target=lambda: accepted.append(patient.submit("best5", OBESITY))
        )
        retrying.start()
        server.wait_for(lambda: len([s for s in server.seen if s.status == 503]) == 2)
        gated.gate.set()
        retrying.join(10)
        assert accepted == ["job_id_2"]  # the refusals used up no id
        assert time.monotonic() - began >= 1.0  # waited at least Retry-After
        assert patient.result(first, timeout=5) == impatient.result(accepted[0], timeout=5)


def test_retries_are_bounded():
    policy = RetryPolicy(retries=2, max_delay=1.5)
    refused = Answer(503, b'{"status": "error", "reason": "busy"}', "1")
    delays = [policy.delay(refused, attempt) for attempt in range(3)]
    assert delays[2] is None
    assert all(1.0 <= d <= 1.5 for d in delays[:2])
    assert policy.delay(Answer(503, b"{}", "100"), 0) == 1.5
    assert policy.delay(Answer(503, b'{"reason": "shutting down"}'), 0) is None


def test_every_server_refusal_maps_to_its_type():
    def answer(status: int, reason: str, retry_after: str | None = None, **extra: object) -> Answer:
        body = json.dumps({"status": "error", "reason": reason, **extra}).encode()
        return Answer(status, body, retry_after)

    storage = error_for(answer(503, "cannot record the job: disk full", "2"))
    assert isinstance(storage, StorageError)
    assert (storage.problem, storage.retry_after, storage.transient) == ("disk full", 2.0, True)
    overloaded = error_for(answer(503, "too many jobs pending", "3"))
    assert isinstance(overloaded, Overloaded)
    assert overloaded.retry_after == 3.0
    assert isinstance(error_for(answer(503, "shutting down")), ShuttingDown)
    too_big = error_for(answer(413, "request body too large"))
    assert isinstance(too_big, InvalidQuery)
    assert too_big.allowed is None
    assert isinstance(error_for(answer(404, "Invalid job_id"), 3), UnknownJob)
    for status in (404, 405, 500, 502):
        wrong = error_for(answer(status, "whatever"))
        assert isinstance(wrong, RemoteError)
        assert wrong.status == status
    assert isinstance(error_for(Answer(502, b"<html>bad gateway</html>")), RemoteError)


def test_cancel_and_forget_through_the_server(live, gated):
    server = live(runner=gated, workers=1)
    with Client(server.url) as client:
        running = client.submit("best5", OBESITY)
        gated.wait_started()
        queued = client.submit("worst5", OBESITY)
        assert client.cancel(queued) is True
        assert client.cancel(running) is False  # already started
        with pytest.raises(JobFailed) as cancelled:
            client.result(queued, timeout=5)
        assert cancelled.value.reason == "cancelled"
        gated.gate.set()
        assert client.result(running, timeout=5) == server.engine.result(running)
        assert client.forget(running) is True
        assert client.forget(running) is False
        assert client.outcome(running) == server.engine.outcome(running)
        with pytest.raises(UnknownJob):
            client.cancel("job_id_0")
        assert server.requests("/api/jobs/job_id_2/cancel")[0].status == 200


def test_submit_many_and_as_completed_through_the_server(live, gated):
    server = live(runner=gated, workers=1, max_pending=2)
    with Client(server.url, retries=0) as client:
        queries = [Query("best5", OBESITY), Query("worst5", OBESITY), Query("best5", MUSCLE)]
        with pytest.raises(PartlyAccepted) as partly:
            client.submit_many(queries)
        assert partly.value.accepted == ("job_id_1", "job_id_2")
        assert isinstance(partly.value.error, Overloaded)
        with pytest.raises(TimeoutError):
            list(client.as_completed(partly.value.accepted, timeout=0.2))
        gated.gate.set()
        finished = list(client.as_completed(["job_id_2", 1], timeout=10))
        assert sorted(job for job, _ in finished) == ["job_id_1", "job_id_2"]
        assert all(outcome.status is JobStatus.DONE for _, outcome in finished)
        assert client.job("job_id_2").result(timeout=5) == server.engine.result("job_id_2")


def test_shutdown_drains_through_the_server(live, gated):
    server = live(runner=gated)
    client = Client(server.url)
    job = client.submit("best5", OBESITY)
    gated.wait_started()
    drained = client.begin_shutdown()
    assert not drained.done()
    assert client.begin_shutdown() is drained
    with pytest.raises(ShuttingDown):
        client.submit("best5", OBESITY)
    with pytest.raises(TimeoutError):
        client.shutdown(timeout=0.1)
    gated.gate.set()
    drained.result(10)
    assert client.status(job) is JobStatus.DONE  # queries keep working
    client.shutdown(timeout=5)


# --- the asyncio side ------------------------------------------------------------------------


def test_async_methods_answer_like_the_blocking_ones(live):
    server = live(runner=GatedRunner(gated=False, fail=lambda q: q.question == MUSCLE))
    client = Client(server.url)

    async def main() -> None:
        job = await client.submit_async("state_mean", OBESITY, "Texas")
        assert await client.result_async(job, timeout=5) == client.result(job)
        assert await client.outcome_async(job) == client.outcome(job)
        assert await client.wait_async(job, 1) == client.wait(job, 1)
        assert await client.status_async(job) is JobStatus.DONE
        assert await client.jobs_async() == client.jobs()
        assert await client.num_jobs_async() == 0
        with pytest.raises(InvalidQuery) as refused:
            await client.submit_async("state_mean", OBESITY, "Atlantis")
        assert refused.value.allowed == TINY_STATES
        with pytest.raises(UnknownJob):
            await client.outcome_async("job_id_99")
        failing = await client.submit_async("best5", MUSCLE)
        with pytest.raises(JobFailed):
            await client.result_async(failing, timeout=5)

    asyncio.run(main())
    client.close()


def test_async_sessions_are_kept_alive_and_closed_with_their_loop(live):
    server = live()
    client = Client(server.url)
    sessions = []

    async def main() -> None:
        for _ in range(10):
            await client.num_jobs_async()
        sessions.append(client._sessions._sessions[asyncio.get_running_loop()])

    asyncio.run(main())
    asyncio.run(main())
    assert len({seen.port for seen in server.seen}) == 2  # one connection per loop
    assert sessions[0] is not sessions[1]
    assert all(session.closed for session in sessions)


async def test_async_long_poll_does_not_block_the_loop(live, gated):
    server = live(runner=gated)
    async with Client(server.url) as client:
        job = await client.submit_async("best5", OBESITY)
        await asyncio.to_thread(gated.wait_started)
        waiting = asyncio.ensure_future(client.result_async(job))
        # the long-poll is waiting, and this loop is free meanwhile
        await asyncio.to_thread(server.wait_for, lambda: len(server.arrived) == 2)
        gated.gate.set()
        assert await asyncio.wait_for(waiting, 10) == server.engine.result(job)
        assert len(server.requests("/api/get_results/")) == 1
        assert await client.wait_async(job, 0) == server.engine.outcome(job)
        await client.shutdown_async(5)
        with pytest.raises(ShuttingDown):
            await client.submit_async("best5", OBESITY)


async def test_async_overloaded_is_retried(live, gated):
    server = live(runner=gated, max_pending=1)
    async with Client(server.url, retries=0) as impatient, Client(server.url) as patient:
        await impatient.submit_async("best5", OBESITY)
        await asyncio.to_thread(gated.wait_started)
        with pytest.raises(Overloaded):
            await impatient.submit_async("best5", OBESITY)
        retrying = asyncio.ensure_future(patient.submit_async("best5", OBESITY))
        await asyncio.to_thread(
            server.wait_for, lambda: len([s for s in server.seen if s.status == 503]) == 2
        )
        gated.gate.set()
        assert await asyncio.wait_for(retrying, 10) == "job_id_2"


def test_closing_twice_and_using_after_close_is_fine(live):
    server = live()
    client = Client(server.url)
    client.close()
    assert client.num_jobs() == 0  # a closed client reconnects
    client.close()
    client.close()
    with contextlib.closing(client):
        assert client.start() is client
