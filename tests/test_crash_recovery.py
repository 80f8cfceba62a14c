"""Crash safety: a server killed with SIGKILL mid-load loses no accepted job.

Four threads post 4,000 jobs; the server is killed once 2,000 have been accepted; a new server on
the same results directory must finish every accepted job exactly once, with the right data.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lestats import jsonio
from lestats.data.loader import load_demo_dataset
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import compute

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = BEST_IS_MIN + BEST_IS_MAX
ENDPOINTS = ("states_mean", "best5", "worst5", "global_mean", "diff_from_mean", "mean_by_category")


def start_server(results_dir: Path, log_file: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "run.py"),
            "--port",
            "0",
            "--workers",
            "2",
            "--results-dir",
            str(results_dir),
            "--log-file",
            str(log_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    banner = process.stdout.readline()
    if "serving on http://127.0.0.1:" not in banner:
        process.kill()
        pytest.fail(f"no banner: {banner!r} {process.stderr.read()}")
    port = int(banner.split("http://127.0.0.1:")[1].split()[0])
    return process, port


def query_for(n: int) -> Query:
    return Query(ENDPOINTS[n % len(ENDPOINTS)], QUESTIONS[n % len(QUESTIONS)])


def post_jobs(port: int, first: int, count: int, *, accepted: dict[str, int], lock, enough) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for n in range(first, first + count):
            query = query_for(n)
            body = json.dumps({"question": query.question})
            connection.request("POST", f"/api/{query.kind}", body=body)
            response = connection.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200, answer
            with lock:
                accepted[answer["job_id"]] = n
                if len(accepted) >= 2000:
                    enough.set()
    except (OSError, http.client.HTTPException):
        return  # the server was killed under us: what was answered is what counts
    finally:
        connection.close()


def get(port: int, path: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_sigkill_mid_load_loses_no_accepted_job(tmp_path):
    results, log_file = tmp_path / "results", tmp_path / "webserver.log"
    server, port = start_server(results, log_file)
    accepted: dict[str, int] = {}
    lock, enough = threading.Lock(), threading.Event()
    try:
        threads = [
            threading.Thread(
                target=post_jobs,
                args=(port, i * 1000, 1000),
                kwargs={"accepted": accepted, "lock": lock, "enough": enough},
            )
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        assert enough.wait(120), f"only {len(accepted)} jobs accepted"
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        for thread in threads:
            thread.join(30)
    finally:
        server.kill()
        server.wait(10)
    assert server.returncode == -signal.SIGKILL
    assert len(accepted) >= 2000

    dataset = load_demo_dataset()
    server, port = start_server(results, log_file)
    try:
        for job_id, n in sorted(accepted.items()):
            status, answer = get(port, f"/api/get_results/{job_id}?wait=20")
            assert status == 200
            assert answer["status"] == "done", (job_id, answer)
            assert answer["data"] == jsonio.loads(jsonio.dumps(compute(dataset, query_for(n))))
        status, listing = get(port, "/api/jobs")
        ids = [next(iter(entry)) for entry in listing["data"]]
        assert len(ids) == len(set(ids))
        assert set(accepted) <= set(ids)
        assert all(next(iter(e.values())) == "done" for e in listing["data"])
        status, counted = get(port, "/api/num_jobs")
        assert counted["num_jobs"] == 0
        highest = max(int(job_id.removeprefix("job_id_")) for job_id in ids)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/api/best5", body=json.dumps({"question": QUESTIONS[0]}))
        fresh = json.loads(connection.getresponse().read())["job_id"]
        connection.close()
        assert fresh == f"job_id_{highest + 1}"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
