"""`run.py` as a real process: banner, real HTTP, SIGTERM/SIGINT drain to exit 0, options of
spec §5, clear one-line errors for bad data, restart on the same results directory."""

from __future__ import annotations

import csv
import gzip
import json
import signal
import subprocess
import sys

import pytest
from http_support import MUSCLE, OBESITY, QUESTIONS, RUN_PY, Server

from lestats.data.demo import write_demo_csv
from lestats.data.loader import load_dataset
from lestats.data.query import Query
from lestats.data.statistics import compute

pytest_plugins = ["http_support"]

OPTIONS = (
    "--host",
    "--port",
    "--data",
    "--workers",
    "--results-dir",
    "--log-file",
    "--log-format",
    "--max-pending",
    "--keep-last",
    "--keep-for",
    "--statistic",
    "--max-waiters",
    "--max-connections",
    "--idle-timeout",
    "--header-timeout",
    "--body-timeout",
    "--send-timeout",
    "--store",
    "--processes",
    "--claim-idle",
)


def run_py(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_PY), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def small_csv(tmp_path):
    """A generated CSV (500 rows) and its Dataset loaded in this process, for expected results."""
    path = write_demo_csv(tmp_path / "small.csv", rows=500, seed=3)
    return path, load_dataset(path)


def expected(dataset, endpoint: str, question: str, state: str | None = None) -> object:
    return compute(dataset, Query(endpoint, question, state))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serves_jobs_then_a_signal_drains_and_exits_0(tmp_path, demo_dataset, signum):
    results, log = tmp_path / "res", tmp_path / "server.log"
    server = Server(
        "--results-dir", str(results), "--log-file", str(log), "--workers", "2", cwd=tmp_path
    )
    try:
        assert server.banner.startswith("Le Stats Sportif serving on http://127.0.0.1:")
        assert server.port > 0
        status, health = server.request("GET", "/api/health")
        assert status == 200
        assert health == {"status": "ok", "accepting": True, "workers": 2, "num_jobs": 0}
        job_ids = []
        for question in QUESTIONS:
            job_ids.append(server.submit("global_mean", {"question": question}))
            job_ids.append(server.submit("states_mean", {"question": question}))
            body = {"question": question, "state": "National"}
            job_ids.append(server.submit("state_mean_by_category", body))
        assert job_ids == [f"job_id_{n}" for n in range(1, 28)]
        first = server.result("job_id_1")
        assert first == {
            "status": "done",
            "data": expected(demo_dataset, "global_mean", QUESTIONS[0]),
        }
        assert server.stop(signum) == 0
    finally:
        server.kill()
    assert "Traceback" not in server.stderr()
    for n, job_id in enumerate(job_ids):
        data = json.loads((results / f"{job_id}.json").read_text())
        question = QUESTIONS[n // 3]
        endpoint, state = [
            ("global_mean", None),
            ("states_mean", None),
            ("state_mean_by_category", "National"),
        ][n % 3]
        assert data == expected(demo_dataset, endpoint, question, state), job_id
    assert not list(results.glob(".*.tmp"))


def test_restart_serves_old_results_and_continues_numbering(tmp_path, small_csv):
    path, dataset = small_csv
    common = ("--data", str(path), "--results-dir", str(tmp_path / "results"), "--workers", "2")
    server = Server(*common, "--log-file", str(tmp_path / "one.log"), cwd=tmp_path)
    try:
        job_ids = [server.submit("best5", {"question": q}) for q in QUESTIONS[:3]]
        assert job_ids == ["job_id_1", "job_id_2", "job_id_3"]
        first_answers = [server.result(job_id) for job_id in job_ids]
        assert server.stop() == 0
    finally:
        server.kill()

    server = Server(*common, "--log-file", str(tmp_path / "two.log"), cwd=tmp_path)
    try:
        for job_id, answer in zip(job_ids, first_answers, strict=True):
            assert server.request("GET", f"/api/get_results/{job_id}") == (200, answer)
        assert server.request("GET", "/api/get_results/3")[1] == first_answers[2]
        status, listed = server.request("GET", "/api/jobs")
        assert status == 200
        assert listed["data"] == [{job_id: "done"} for job_id in job_ids]
        assert server.request("GET", "/api/num_jobs") == (200, {"status": "done", "num_jobs": 0})
        assert server.submit("worst5", {"question": MUSCLE}) == "job_id_4"
        assert server.result("job_id_4")["data"] == expected(dataset, "worst5", MUSCLE)
        assert server.request("GET", "/api/get_results/job_id_5")[0] == 404
        assert server.stop(signal.SIGINT) == 0
    finally:
        server.kill()
    assert sorted(p.name for p in (tmp_path / "results").glob("job_id_*.json")) == [
        f"job_id_{n}.json" for n in range(1, 5)
    ]


def test_help_lists_every_option(tmp_path):
    done = run_py("--help", cwd=tmp_path)
    assert done.returncode == 0
    for option in OPTIONS:
        assert option in done.stdout, option
    for default in ("127.0.0.1", "5000", "TP_NUM_OF_THREADS", "results", "webserver.log"):
        assert default in done.stdout, default
    assert not list(tmp_path.iterdir()), "--help must not create files"


@pytest.mark.parametrize(
    "args",
    [
        ["--workers", "0"],
        ["--max-pending", "0"],
        ["--port", "x"],
        ["--max-waiters", "0"],
        ["--max-connections", "-1"],
        ["--idle-timeout", "0"],
        ["--header-timeout", "nan"],
        ["--body-timeout", "inf"],
        ["--send-timeout", "-3"],
        ["--store", "http://127.0.0.1:6379"],
        ["--processes", "0"],
        ["--claim-idle", "0"],
        ["--claim-idle", "nan"],
    ],
)
def test_bad_option_values_are_refused_with_usage(tmp_path, args):
    done = run_py(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert "usage:" in done.stderr
    assert "Traceback" not in done.stderr


def _write_missing_column(path):
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Question", "LocationDesc", "StratificationCategory1", "Stratification1"])
        writer.writerow([OBESITY, "Ohio", "Total", "Total"])


BAD_FILES = {
    "missing": (lambda _: None, "no such file"),
    "missing-column": (_write_missing_column, "Data_Value"),
    "empty": (lambda path: path.write_text(""), "empty"),
    "binary": (lambda path: path.write_bytes(b"\xff\xfe\x00\x81" * 100), "UTF-8"),
    "directory": (lambda path: path.mkdir(), "directory"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_data_prints_one_clear_line_and_exits_non_zero(tmp_path, case):
    make, what = BAD_FILES[case]
    path = tmp_path / f"{case}.csv"
    make(path)
    done = run_py("--data", str(path), "--port", "0", "--results-dir", "res", cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert str(path) in lines[0]
    assert what in lines[0]
    assert "serving" not in done.stdout


def test_data_with_a_generated_csv_and_default_paths(tmp_path, small_csv):
    path, dataset = small_csv
    server = Server("--data", str(path), cwd=tmp_path, env={"TP_NUM_OF_THREADS": "3"})
    try:
        status, health = server.request("GET", "/api/health")
        assert (status, health["workers"]) == (200, 3)
        assert server.request("GET", "/api/states")[1]["data"] == list(dataset.states)
        job_id = server.submit("mean_by_category", {"question": OBESITY})
        answer = server.result(job_id)
        assert answer == {"status": "done", "data": expected(dataset, "mean_by_category", OBESITY)}
        assert server.stop() == 0
    finally:
        server.kill()
    assert (tmp_path / "results" / f"{job_id}.json").is_file()
    assert (tmp_path / "webserver.log").is_file()


def test_data_with_a_gzipped_csv(tmp_path, small_csv):
    path, dataset = small_csv
    packed = tmp_path / "small.csv.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    server = Server(
        "--data",
        str(packed),
        "--workers",
        "1",
        "--results-dir",
        "r",
        "--log-file",
        "l",
        cwd=tmp_path,
    )
    try:
        job_id = server.submit("state_mean", {"question": MUSCLE, "state": "National"})
        assert server.result(job_id)["data"] == expected(dataset, "state_mean", MUSCLE, "National")
        assert server.stop() == 0
    finally:
        server.kill()
