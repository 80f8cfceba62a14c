"""Stop signals on a real `run.py` process: SIGTERM, SIGINT and SIGHUP drain like
`graceful_shutdown` (reads answer, POSTs get 503, every accepted job finishes, exit 0), and a
signal during the data load stops the process at once with one line and exit 0.

Jobs are held in the real process by `tests/gated_run.py` (run.py with a runner that waits for a
gate file); the load is held by a FIFO given as `--data` that nobody writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from http_support import GATED_RUN_PY, OBESITY, QUESTIONS, RUN_PY, STOP_TIMEOUT, Server

pytest_plugins = ["http_support"]

DEADLINE = 20.0
STOPS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
SHUTTING_DOWN = {"status": "error", "reason": "shutting down"}


def wait_for(predicate, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("signum", STOPS, ids=[s.name for s in STOPS])
def test_a_stop_signal_drains_with_reads_answering_then_exits_0(tmp_path, signum):
    gate, results, log = tmp_path / "gate", tmp_path / "results", tmp_path / "server.log"
    server = Server(
        *("--results-dir", str(results), "--log-file", str(log), "--workers", "1"),
        cwd=tmp_path,
        env={"LESTATS_TEST_GATE": str(gate)},
        script=GATED_RUN_PY,
    )
    try:
        job_ids = [server.submit("global_mean", {"question": q}) for q in QUESTIONS[:5]]
        server.process.send_signal(signum)
        wait_for(lambda: not server.request("GET", "/api/health")[1]["accepting"], "draining")

        # Draining: every POST is refused, every read answers, nothing has finished.
        assert server.request("POST", "/api/best5", {"question": OBESITY}) == (503, SHUTTING_DOWN)
        for job_id in job_ids:
            assert server.request("GET", f"/api/get_results/{job_id}") == (
                200,
                {"status": "running"},
            )
        assert server.request("GET", "/api/jobs") == (
            200,
            {"status": "done", "data": [{job_id: "running"} for job_id in job_ids]},
        )
        assert server.request("GET", "/api/num_jobs") == (200, {"status": "done", "num_jobs": 5})
        assert server.request("GET", "/api/graceful_shutdown") == (200, {"status": "running"})
        assert server.request("GET", "/api/health") == (
            200,
            {"status": "ok", "accepting": False, "workers": 1, "num_jobs": 5},
        )
        assert server.process.poll() is None

        gate.touch()
        assert server.process.wait(STOP_TIMEOUT) == 0
    finally:
        server.kill()
    assert "Traceback" not in server.stderr()
    for job_id, question in zip(job_ids, QUESTIONS, strict=False):
        data = json.loads((results / f"{job_id}.json").read_text())
        assert list(data) == ["global_mean"], question
    text = log.read_text()
    assert f"{signum.name} received: draining" in text
    assert text.index("every accepted job finished: closing the listener") > text.index(
        f"{signum.name} received: draining"
    )


def test_a_second_signal_while_draining_is_logged_and_the_drain_goes_on(tmp_path):
    gate, log = tmp_path / "gate", tmp_path / "server.log"
    server = Server(
        *("--results-dir", str(tmp_path / "r"), "--log-file", str(log), "--workers", "1"),
        cwd=tmp_path,
        env={"LESTATS_TEST_GATE": str(gate)},
        script=GATED_RUN_PY,
    )
    try:
        job_id = server.submit("best5", {"question": OBESITY})
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: not server.request("GET", "/api/health")[1]["accepting"], "draining")
        server.process.send_signal(signal.SIGINT)
        wait_for(lambda: "SIGINT received while draining" in log.read_text(), "second signal")
        assert server.request("GET", f"/api/get_results/{job_id}")[1] == {"status": "running"}
        gate.touch()
        assert server.process.wait(STOP_TIMEOUT) == 0
    finally:
        server.kill()
    assert (tmp_path / "r" / f"{job_id}.json").is_file()


@pytest.mark.parametrize("parser", ["csv", "arrow"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_data_load_exits_at_once_with_one_line(tmp_path, signum, parser):
    fifo, log = tmp_path / "data.csv", tmp_path / "server.log"
    os.mkfifo(fifo)  # nobody writes: the load waits for ever
    options = ("--port", "0", "--log-file", str(log), "--results-dir", str(tmp_path / "r"))
    process = subprocess.Popen(
        [sys.executable, str(RUN_PY), "--data", str(fifo), *options],
        cwd=tmp_path,
        env={**os.environ, "LESTATS_CSV_PARSER": parser},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: log.exists() and "loading the data" in log.read_text(), "loading")
        process.send_signal(signum)
        sent = time.monotonic()
        stdout, stderr = process.communicate(timeout=STOP_TIMEOUT)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert elapsed < 5, elapsed
    assert stderr.splitlines() == [
        f"{signum.name} received while loading the data: stopped before serving"
    ]
    assert "serving" not in stdout
    assert not (tmp_path / "r").exists()
    assert f"{signum.name} received while loading the data" in log.read_text()
