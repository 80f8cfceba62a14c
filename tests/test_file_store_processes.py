"""FileStore across real processes: a SIGKILL after a torn journal append, the directory lock
held by another process (and released by its death), run.py's one-line exit 2 for a results
directory it cannot use. Issue 11 items 1, 3 and 11 (the results-directory part)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from http_support import OBESITY, RUN_PY, Server

from lestats.actors.engine import Engine
from lestats.errors import StorageError
from lestats.stores.files import FileStore

TESTS = Path(__file__).parent
TIMEOUT = 60


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """A child Python running `code`, with the tests directory importable."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=TESTS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


TORN_THEN_KILLED = """
    import json, os, signal, sys
    from lestats.data.query import Query
    from lestats.errors import StorageError
    from lestats.stores.files import FileStore
    from store_faults import FaultyWrite

    faults = FaultyWrite()
    store = FileStore(sys.argv[1], write=faults)
    store.open()
    answered, refused = [], 0
    query = Query("global_mean", "q")
    for round_ in range(40):
        if round_ % 3 == 1:
            faults.journal_torn.set()  # the disk is full in the middle of this line
        try:
            job_id = store.accept(query)
        except StorageError as exc:
            assert exc.transient, exc
            refused += 1
        else:
            barrier = store.commit_barrier()
            if barrier is not None:
                barrier()
            answered.append(job_id)  # the server would answer this id now
        faults.journal_torn.clear()
    print(json.dumps({"answered": answered, "refused": refused}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_torn_append_then_sigkill_loses_no_accepted_job_and_reissues_no_id(tmp_path):
    """Issue 11 item 1: on main, the fragment glued the next line to it; both jobs were lost
    and their ids issued again after the restart."""
    results = tmp_path / "results"
    child = python(TORN_THEN_KILLED, str(results))
    out, err = child.communicate(timeout=TIMEOUT)
    assert child.returncode == -signal.SIGKILL, err
    figures = json.loads(out)
    answered = figures["answered"]
    assert figures["refused"] > 0
    assert answered == list(range(1, len(answered) + 1))  # refusals used up no id
    store = FileStore(results)
    try:
        recovered = store.open()
        assert [job_id for job_id, _ in recovered.unfinished] == answered
        assert recovered.ignored == 0  # no torn line: every failed append was cut back
        assert store.accept(recovered.unfinished[0][1]) == len(answered) + 1
    finally:
        store.close()


HOLD_LOCK = """
    import sys
    from lestats.stores.files import FileStore

    store = FileStore(sys.argv[1])
    store.open()
    print("locked", flush=True)
    sys.stdin.readline()
    store.close()
"""


def test_a_second_process_is_refused_and_a_dead_holder_never_blocks(tmp_path):
    results = tmp_path / "results"
    holder = python(HOLD_LOCK, str(results))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StorageError) as refused:
            FileStore(results).open()
        assert str(results) in refused.value.problem
        assert f"pid {holder.pid}" in refused.value.problem
        with pytest.raises(StorageError, match=f"pid {holder.pid}"):
            Engine(dataset=None, results_dir=results).start()  # type: ignore[arg-type]
    finally:
        holder.kill()
        holder.communicate(timeout=TIMEOUT)
    assert (results / ".lock").read_text().strip() == str(holder.pid)  # stale, and harmless
    store = FileStore(results)
    store.open()
    store.close()


def run_py(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_PY), "--port", "0", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_run_py_on_a_directory_in_use_says_so_in_one_line_and_exits_2(tmp_path):
    results = tmp_path / "results"
    store = FileStore(results)
    store.open()
    try:
        finished = run_py("--results-dir", str(results), cwd=tmp_path)
    finally:
        store.close()
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"error: {results} is in use by another process (pid {os.getpid()})"
    ]


@pytest.mark.parametrize("damage", ["results dir is a file", "journal is a directory"])
def test_run_py_on_an_unusable_results_dir_says_so_in_one_line_and_exits_2(tmp_path, damage):
    results = tmp_path / "results"
    if damage == "results dir is a file":
        results.write_text("not a directory")
        expected = f"error: {results} is not a directory"
    else:
        (results / "journal.jsonl").mkdir(parents=True)
        journal = results / "journal.jsonl"
        expected = f"error: cannot read {journal}: Is a directory"
    finished = run_py("--results-dir", str(results), cwd=tmp_path)
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [expected]


def test_run_py_keep_last_forgets_older_jobs(tmp_path):
    server = Server(
        "--results-dir",
        str(tmp_path / "results"),
        "--log-file",
        str(tmp_path / "server.log"),
        "--keep-last",
        "2",
        cwd=tmp_path,
    )
    try:
        jobs = [server.submit("global_mean", {"question": OBESITY}) for _ in range(5)]
        for job_id in jobs:
            assert server.result(job_id)["status"] in {"done", "error"}
        status, listed = server.request("GET", "/api/jobs")
        assert status == 200
        assert listed["data"] == [{job_id: "done"} for job_id in jobs[-2:]]
        assert server.request("GET", f"/api/get_results/{jobs[0]}") == (
            200,
            {"status": "error", "reason": "expired"},
        )
    finally:
        assert server.stop() == 0
    files = sorted(p.name for p in (tmp_path / "results").glob("job_id_*.json"))
    assert files == [f"{job_id}.json" for job_id in jobs[-2:]]
