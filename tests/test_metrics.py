"""`GET /metrics`: exact counts after known workloads, on real servers.

Scrapes are parsed with prometheus-client's own parser of the text format, so what is checked
is what Prometheus would read.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import urllib.request

import pytest
from live_server import LiveServer
from prometheus_client.parser import text_string_to_metric_families

from lestats import metrics
from lestats.actors.engine import Engine
from lestats.client import Client
from lestats.errors import JobFailed, Overloaded, ShuttingDown
from lestats.testing import MUSCLE, OBESITY, GatedRunner, eventually

pytest_plugins = ["http_support", "redis_support"]

from http_support import Server  # noqa: E402

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `url/metrics`, by (name, sorted labels)."""
    with DIRECT.open(f"{url}/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counts_after_a_known_workload_on_run_py(tmp_path):
    server = Server("--workers", "2", "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    try:
        with Client(server.url) as client:
            for _ in range(5):
                client.result(client.submit("best5", OBESITY), timeout=10)
            for state in ("Ohio", "Texas", "Utah"):
                client.result(client.submit("state_mean", OBESITY, state), timeout=10)
            with pytest.raises(Exception, match="unknown question"):
                client.submit("best5", "nope")
        samples = scrape(server.url)
        assert server.stop() == 0
    finally:
        server.kill()
    for statistic, jobs in (("best5", 5), ("state_mean", 3), ("worst5", 0)):
        assert value(samples, "lestats_jobs_accepted_total", statistic=statistic) == jobs
        assert value(samples, "lestats_jobs_done_total", statistic=statistic) == jobs
        assert value(samples, "lestats_jobs_failed_total", statistic=statistic) == 0
        for histogram in ("queue", "run", "end_to_end"):
            name = f"lestats_job_{histogram}_seconds_count"
            assert value(samples, name, statistic=statistic) == jobs
            inf = value(
                samples, f"lestats_job_{histogram}_seconds_bucket", le="+Inf", statistic=statistic
            )
            assert inf == jobs
    assert value(samples, "lestats_journal_commit_jobs_sum") == 8  # every accepted job, once
    assert 1 <= value(samples, "lestats_journal_commit_seconds_count") <= 8
    requests = "lestats_http_requests_total"
    assert value(samples, requests, method="POST", route="/api/best5", status="200") == 5
    assert value(samples, requests, method="POST", route="/api/best5", status="400") == 1
    assert value(samples, requests, method="POST", route="/api/state_mean", status="200") == 3
    results = "/api/get_results/{job_id}"
    assert value(samples, requests, method="GET", route=results, status="200") == 8  # long-polls
    assert value(samples, "lestats_http_request_seconds_count", method="GET", route=results) == 8
    assert value(samples, "lestats_jobs_unfinished") == 0
    assert value(samples, "lestats_longpoll_waiters") == 0
    assert value(samples, "lestats_dataset_rows") == 18538
    assert value(samples, "lestats_dataset_rows_skipped") == 112
    assert value(samples, "lestats_dataset_load_seconds") > 0
    for actor in ("Dispatcher-1", "ResultStore-1", "JournalCommitter-1", "Worker-1", "Worker-2"):
        assert ("lestats_mailbox_depth", (("actor", actor),)) in samples


def test_failures_refusals_waiters_and_unfinished_jobs(tiny_dataset, results_dir):
    gated = GatedRunner(fail=lambda query: query.question == MUSCLE)
    engine = Engine(tiny_dataset, workers=1, results_dir=results_dir, max_pending=2, runner=gated)
    server = LiveServer(engine)
    metrics.install(server.app)
    try:
        with server, Client(server.url, retries=0) as client:
            held = client.submit("best5", OBESITY)
            failing = client.submit("best5", MUSCLE)
            gated.wait_started()
            with pytest.raises(Overloaded):
                client.submit("best5", OBESITY)
            waiter = threading.Thread(target=lambda: client.wait(held, timeout=30))
            waiter.start()
            server.wait_for(lambda: engine.waiting == 1)
            during = scrape(server.url)
            gated.gate.set()
            waiter.join(10)
            client.result(held, timeout=10)
            with pytest.raises(JobFailed):
                client.result(failing, timeout=10)
            client.begin_shutdown().result(10)
            with pytest.raises(ShuttingDown):
                client.submit("best5", OBESITY)
            after = scrape(server.url)
    finally:
        gated.gate.set()
    assert value(during, "lestats_jobs_unfinished") == 2
    assert value(during, "lestats_longpoll_waiters") == 1
    assert value(during, "lestats_http_refusals_total", reason="overloaded") == 1
    assert value(after, "lestats_jobs_accepted_total", statistic="best5") == 2
    assert value(after, "lestats_jobs_done_total", statistic="best5") == 1
    assert value(after, "lestats_jobs_failed_total", statistic="best5") == 1
    assert value(after, "lestats_job_run_seconds_count", statistic="best5") == 2
    assert value(after, "lestats_jobs_unfinished") == 0
    assert value(after, "lestats_longpoll_waiters") == 0
    assert value(after, "lestats_http_refusals_total", reason="overloaded") == 1
    assert value(after, "lestats_http_refusals_total", reason="shutting_down") == 1
    assert (
        value(after, "lestats_http_requests_total", method="POST", route="/api/best5", status="503")
        == 2
    )


def test_processes_sharing_a_directory_add_up(tmp_path):
    shared = tmp_path / "metrics"
    env = {metrics.DIRECTORY_VARIABLE: str(shared)}
    one = Server(
        "--workers",
        "1",
        "--results-dir",
        str(tmp_path / "r1"),
        "--log-file",
        str(tmp_path / "one.log"),
        cwd=tmp_path,
        env=env,
    )
    try:
        two = Server(
            "--workers",
            "1",
            "--results-dir",
            str(tmp_path / "r2"),
            "--log-file",
            str(tmp_path / "two.log"),
            cwd=tmp_path,
            env=env,
        )
        try:
            for server, jobs in ((one, 3), (two, 4)):
                with Client(server.url) as client:
                    for _ in range(jobs):
                        client.result(client.submit("global_mean", OBESITY), timeout=10)
            accepted = ("lestats_jobs_accepted_total", (("statistic", "global_mean"),))
            one_sees: dict = {}

            def added_up() -> bool:
                one_sees.update(scrape(one.url))
                return one_sees.get(accepted) == 7

            eventually(added_up, timeout=20)  # the other process writes every second
            assert value(one_sees, "lestats_dataset_rows") == 18538  # shared state: not doubled
            assert two.stop() == 0
        finally:
            two.kill()
        after = scrape(one.url)
        assert after[accepted] == 7  # what the stopped process did still counts
        assert value(after, "lestats_longpoll_waiters") == 0
        assert one.stop() == 0
    finally:
        one.kill()


def test_the_processes_of_one_server_add_up_by_themselves(tmp_path, redis_url):
    server = Server(
        "--store", redis_url, "--processes", "2", "--workers", "1",
        "--results-dir", str(tmp_path / "results"), "--log-file", str(tmp_path / "pre.log"),
        cwd=tmp_path,
    )  # fmt: skip
    try:
        for _ in range(20):
            with Client(server.url) as client:  # a new connection each: spread over both
                client.result(client.submit("global_mean", OBESITY), timeout=10)
        accepted = ("lestats_jobs_accepted_total", (("statistic", "global_mean"),))
        seen: dict = {}

        def added_up() -> bool:
            seen.update(scrape(server.url))
            return seen.get(accepted) == 20

        eventually(added_up, timeout=20)  # each process shares its numbers every second
        assert value(seen, "lestats_jobs_done_total", statistic="global_mean") == 20
        assert value(seen, "lestats_jobs_unfinished") == 0
        assert server.stop() == 0
    finally:
        if server.process.poll() is None:  # SIGTERM: the parent stops its children too
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop()
        server.kill()
    logs = [tmp_path / "pre-1.log", tmp_path / "pre-2.log"]  # complete once stopped
    assert all("POST /api/global_mean" in log.read_text() for log in logs), "one process idle"
