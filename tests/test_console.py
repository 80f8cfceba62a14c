"""The `lestats` console script: `ask`, `check`, `serve`, progress on terminals only.

Each command runs as the installed script (`.venv/bin/lestats`, made by pyproject's
`[project.scripts]`), in a subprocess, against real files and a real `run.py`.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lestats import progress
from lestats.data.demo import write_demo_csv
from lestats.data.loader import load_demo_dataset
from lestats.data.query import Query
from lestats.data.questions import QUESTION_IDS
from lestats.data.statistics import compute

pytest_plugins = ["http_support"]

from http_support import OBESITY, Server  # noqa: E402

LESTATS = Path(sys.executable).with_name("lestats")
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "brfss-real-sample.csv"
SHARED_SAMPLE = Path("/work/shared/data/brfss-real-sample.csv")
MUSCLE_ONLY = (
    "Percent of adults who engage in muscle-strengthening activities on 2 or more days a week"
)
TIMEOUT = 120


def lestats(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [str(LESTATS), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def sample_path() -> Path:
    for path in (SAMPLE, SHARED_SAMPLE):
        if path.exists():
            return path
    pytest.skip("the real 340-row sample is not in ../shared/data")
    raise AssertionError


@pytest.fixture(scope="module")
def demo():
    return load_demo_dataset()


def test_the_script_is_installed_and_lists_its_commands():
    done = lestats("--help")
    assert done.returncode == 0
    for command in ("serve", "ask", "check"):
        assert command in done.stdout
    assert lestats().returncode == 2  # a command is required


# --- ask -------------------------------------------------------------------------------------


def table_rows(stdout: str) -> list[list[str]]:
    """The rows under the table's rule, split on runs of two or more spaces."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("-"))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[rule + 1 :]]


def test_ask_embedded_prints_a_ranked_table_of_the_demo_data(demo, tmp_path):
    done = lestats("ask", "best5", "--question", "obesity", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = compute(demo, Query("best5", OBESITY))
    lines = done.stdout.splitlines()
    assert lines[0] == f"best5 of Q036 {OBESITY}"
    assert lines[1] == "from the demo dataset, job_id_1"
    assert table_rows(done.stdout) == [
        [str(rank), state, f"{value:.2f}"]
        for rank, (state, value) in enumerate(expected.items(), 1)
    ]
    assert not list(tmp_path.iterdir()), "an embedded ask leaves no results behind"


def test_ask_by_category_splits_the_keys_into_columns(demo):
    done = lestats("ask", "state_mean_by_category", "-q", "Q036", "--state", "Ohio")
    assert done.returncode == 0, done.stderr
    expected = compute(demo, Query("state_mean_by_category", OBESITY, "Ohio"))["Ohio"]
    rows = table_rows(done.stdout)
    assert len(rows) == len(expected)
    first_key, first_value = next(iter(expected.items()))
    category, stratum = first_key.strip("()").replace("'", "").split(", ")
    assert rows[0] == ["Ohio", category, stratum, f"{first_value:.2f}"]


def test_ask_json_is_the_exact_result_embedded_and_from_a_server(demo, tmp_path):
    nowhere = lestats("ask", "diff_from_mean", "-q", "2 or more days a week and", "--json")
    assert nowhere.returncode == 1  # that fragment is in no question: refused
    embedded = lestats("ask", "diff_from_mean", "-q", "q046", "--json")
    assert embedded.returncode == 0, embedded.stderr
    expected = compute(demo, Query("diff_from_mean", MUSCLE_ONLY))
    assert json.loads(embedded.stdout) == expected
    server = Server("--workers", "1", "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    try:
        remote = lestats("ask", "diff_from_mean", "-q", "Q046", "--json", "--server", server.url)
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == embedded.stdout
        table = lestats("ask", "state_mean", "-q", "obesity", "-s", "Ohio", "--server", server.url)
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines()[1] == f"from {server.url}, job_id_2"
        expected_ohio = compute(demo, Query("state_mean", OBESITY, "Ohio"))["Ohio"]
        assert table_rows(table.stdout) == [["Ohio", f"{expected_ohio:.2f}"]]
        assert server.stop() == 0
    finally:
        server.kill()


def test_ask_refuses_ambiguous_and_unknown_questions_with_the_candidates():
    ambiguous = lestats("ask", "best5", "-q", "150 minutes")
    assert ambiguous.returncode == 1
    assert "'150 minutes' is ambiguous: it matches 3 questions" in ambiguous.stderr
    for question_id in ("Q043", "Q044", "Q045"):
        assert question_id in ambiguous.stderr
    assert "Q046" not in ambiguous.stderr
    unknown = lestats("ask", "best5", "-q", "smoking")
    assert unknown.returncode == 1
    assert "no question matches 'smoking'" in unknown.stderr
    assert all(question_id in unknown.stderr for question_id in QUESTION_IDS)
    assert "Traceback" not in ambiguous.stderr + unknown.stderr


def test_ask_explains_a_missing_state_an_unknown_statistic_and_a_dead_server():
    missing = lestats("ask", "state_mean", "-q", "obesity")
    assert missing.returncode == 1
    assert "missing 'state' (required by state_mean)" in missing.stderr
    wrong = lestats("ask", "state_mean", "-q", "obesity", "-s", "Atlantis")
    assert wrong.returncode == 1
    assert "unknown state 'Atlantis'" in wrong.stderr
    assert "Wyoming" in wrong.stderr
    unknown = lestats("ask", "best6", "-q", "obesity")
    assert unknown.returncode == 2
    assert "invalid choice: 'best6'" in unknown.stderr
    dead = lestats("ask", "best5", "-q", "obesity", "--server", "http://127.0.0.1:9")
    assert dead.returncode == 1
    assert "http://127.0.0.1:9" in dead.stderr
    for done in (missing, wrong, unknown, dead):
        assert "Traceback" not in done.stderr


# --- check -----------------------------------------------------------------------------------


def test_check_reports_a_usable_file():
    done = lestats("check", str(sample_path()))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"{sample_path()}: usable" in out
    assert "rows       340 read, 340 counted, 0 skipped" in out
    assert "years      2011-2022 (12)" in out
    assert "states     55: Alabama, Alaska" in out
    assert "questions  9:" in out
    assert f"Q036 {OBESITY}" in out
    assert "problems:  none" in out
    assert done.stderr == ""  # not a terminal: no progress bar


def test_check_json_counts_rows_per_question():
    done = lestats("check", str(sample_path()), "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["usable"] is True
    assert sum(report["questions"].values()) == 340
    assert report["years"] == list(range(2011, 2023))
    assert len(report["states"]) == 55


def test_check_lists_the_problems_of_a_usable_file(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text(
        "YearStart,LocationDesc,Question,Data_Value,StratificationCategory1,Stratification1\n"
        f"2020,Ohio,{OBESITY},30.5,Total,Total\n"
        f"2021,Ohio,{OBESITY},,Total,Total\n"
        "2021,Texas,Percent of adults who smoke,12.0,Total,Total\n"
        "2021,Texas,too,few\n",
        encoding="utf-8",
    )
    done = lestats("check", str(path))
    assert done.returncode == 0, done.stderr
    assert "rows       4 read, 2 counted, 2 skipped" in done.stdout
    assert "years      2020-2021 (2)" in done.stdout
    assert "2 of 4 rows skipped" in done.stdout
    assert "8 of the nine course questions have no row: Q018" in done.stdout
    other = "1 questions are not among the course's nine (best5 and worst5 refuse them"
    assert other in done.stdout


def test_check_refuses_an_unusable_file_with_exit_status_1(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Question,LocationDesc\nq,Ohio\n", encoding="utf-8")
    done = lestats("check", str(path))
    assert done.returncode == 1
    assert f"{path}: NOT USABLE" in done.stdout
    missing_columns = "missing columns 'Data_Value', 'StratificationCategory1', 'Stratification1'"
    assert missing_columns in done.stdout
    missing = lestats("check", str(tmp_path / "nowhere.csv"), "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["problems"] == [f"{tmp_path / 'nowhere.csv'}: no such file"]


# --- progress on a terminal, silence in a pipe -------------------------------------------------


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    return write_demo_csv(tmp_path_factory.mktemp("big") / "demo.csv", rows=60_000)


HELD_BACK = 8.0
"""Seconds within which the bar must show a step (tqdm's own hold-back is 10 s)."""


def read_pty(master: int, until: re.Pattern[str] | None, timeout: float = 30.0) -> str:
    """What the pty shows, until `until` matches it (or until the writer closes it)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            seen += chunk
            if until is not None and until.search(seen.decode(errors="replace")):
                break
    return seen.decode(errors="replace")


def test_a_terminal_sees_the_load_progress_and_a_pipe_does_not(big_csv):
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(LESTATS), "check", str(big_csv)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        shown = read_pty(master, until=None)
        out, _ = process.communicate(timeout=TIMEOUT)
    finally:
        os.close(master)
    assert process.returncode == 0
    assert b"60000 read" in out
    assert re.search(r"loading: +\d+%\|", shown), shown
    piped = lestats("check", str(big_csv))
    assert piped.returncode == 0
    assert piped.stderr == ""


def test_the_bar_follows_the_files_offset(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 1_000_000)
    master, slave = pty.openpty()
    terminal = os.fdopen(slave, "w", encoding="utf-8")
    try:
        with progress.reading(path, "loading", terminal), path.open("rb") as reading:
            assert re.search(r"loading: +0%", read_pty(master, re.compile(r"loading: +0%")))
            reading.read(500_000)
            assert re.search(r" 50%\|", read_pty(master, re.compile(r" 50%\|")))
            reading.read()  # a smaller step than the first: tqdm's guess would hold it back 10 s
            shown = read_pty(master, re.compile(r"100%\|"), timeout=HELD_BACK)
            assert re.search(r"100%\|", shown)
    finally:
        terminal.close()
        os.close(master)


def test_no_bar_for_a_stream_that_is_not_a_terminal(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 1000)
    out = (tmp_path / "out.txt").open("w")
    with out, progress.reading(path, "loading", out), path.open("rb") as reading:
        reading.read()
    assert (tmp_path / "out.txt").read_text() == ""
    assert not [t for t in threading.enumerate() if t.name == "lestats-progress"]


# --- serve ------------------------------------------------------------------------------------


def test_serve_is_run_py(tmp_path):
    process = subprocess.Popen(
        [str(LESTATS), "serve", "--port", "0", "--workers", "1"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready
        banner = process.stdout.readline().decode()
        assert "Le Stats Sportif serving on http://127.0.0.1:" in banner
        url = re.search(r"http://[0-9.:]+", banner).group(0)
        asked = lestats("ask", "global_mean", "-q", "Q036", "--server", url, "--json")
        assert asked.returncode == 0, asked.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(60)
        process.stdout.close()
        process.stderr.close()
    assert (tmp_path / "webserver.log").exists()
    help_text = lestats("serve", "--help").stdout
    assert "--log-format" in help_text
    assert "--max-pending" in help_text
