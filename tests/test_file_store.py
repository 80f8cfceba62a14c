"""FileStore on its own: whole journal lines under faults, compaction that keeps the old journal
when it cannot write the new one, the directory lock, distrust of what is found on disk, syncs of
our own files only and off the owner's thread, one source of truth for listings and outcomes.

Issue 11 items 1, 2, 3, 5, 13 and 14; the process-level halves (SIGKILL, a second process,
run.py's exit status) are in test_file_store_processes.py.
"""

from __future__ import annotations

import json
import logging
import os
import threading

import pytest
from store_faults import FaultyWrite

from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus
from lestats.data.query import Query
from lestats.errors import StorageError, UnknownJob
from lestats.stores import files as files_module
from lestats.stores.files import FileStore
from lestats.stores.result_files import ResultFiles
from lestats.testing import MUSCLE, OBESITY

Q1 = Query("global_mean", OBESITY)
Q2 = Query("state_mean", MUSCLE, "Ohio")


@pytest.fixture
def opened(results_dir):
    """`opened(**options)`: an open FileStore on `results_dir`; closed at teardown."""
    stores: list[FileStore] = []

    def open_store(**options) -> FileStore:
        store = FileStore(results_dir, **options)
        store.open()
        stores.append(store)
        return store

    yield open_store
    for store in stores:
        store.close()


def journal_lines(results_dir) -> list[bytes]:
    return (results_dir / "journal.jsonl").read_bytes().split(b"\n")


# --- item 1: every journal write is whole, or cut back -------------------------------------------


def test_short_writes_are_continued_until_the_line_is_whole(opened):
    faults = FaultyWrite()
    faults.short = 7
    store = opened(write=faults)
    ids = [store.accept(Q2) for _ in range(20)]
    assert ids == list(range(1, 21))
    assert store.complete(3, b'{"Ohio": 1.5}')
    store.close()
    reopened = opened()
    assert reopened.statuses()[:3] == [
        (1, JobStatus.RUNNING),
        (2, JobStatus.RUNNING),
        (3, JobStatus.DONE),
    ]
    assert reopened.outcome(3) == JobOutcome(JobStatus.DONE, b'{"Ohio": 1.5}')
    assert reopened.accept(Q1) == 21


def test_a_torn_append_is_cut_back_refused_as_transient_and_uses_no_id(opened, results_dir):
    faults = FaultyWrite()
    store = opened(write=faults)
    assert store.accept(Q1) == 1
    before = (results_dir / "journal.jsonl").read_bytes()
    faults.journal_torn.set()
    with pytest.raises(StorageError) as refused:
        store.accept(Q2)
    assert refused.value.transient
    assert refused.value.retry_after > 0
    assert "No space left" in refused.value.problem
    # No fragment left for the next line to be glued to.
    assert (results_dir / "journal.jsonl").read_bytes() == before
    faults.journal_torn.clear()
    assert store.accept(Q2) == 2
    barrier = store.commit_barrier()
    assert barrier is not None
    barrier()
    assert all(json.loads(line) for line in journal_lines(results_dir) if line)
    store.close()
    recovered = FileStore(results_dir).open()
    assert recovered.unfinished == ((1, Q1), (2, Q2))
    assert recovered.ignored == 0


def test_a_failure_journaled_on_a_full_disk_is_refused_and_the_job_stays_unfinished(opened):
    faults = FaultyWrite()
    store = opened(write=faults)
    job_id = store.accept(Q1)
    faults.journal_torn.set()
    with pytest.raises(StorageError) as refused:
        store.fail(job_id, "ValueError: x")
    assert refused.value.transient
    assert store.outcome(job_id) == RUNNING
    faults.journal_torn.clear()
    assert store.fail(job_id, "ValueError: x")
    assert store.outcome(job_id) == JobOutcome(JobStatus.ERROR, reason="ValueError: x")


# --- item 2: a compaction that cannot write the whole new journal keeps the old -----------------


def test_a_compaction_that_cannot_write_the_new_journal_keeps_the_old(results_dir, caplog):
    faults = FaultyWrite()
    store = FileStore(results_dir, write=faults)
    store.open()
    ids = [store.accept(Q2) for _ in range(2000)]
    store.complete(ids[0], b"[1]")
    old = (results_dir / "journal.jsonl").read_bytes()
    faults.compaction_full.set()
    with caplog.at_level(logging.ERROR, logger="lestats.stores.files"):
        store.close()  # the final compaction fails half-way
    assert any("compaction failed" in record.getMessage() for record in caplog.records)
    assert (results_dir / "journal.jsonl").read_bytes() == old
    assert not (results_dir / "journal.jsonl.tmp").exists()
    recovered = FileStore(results_dir)
    try:
        found = recovered.open()
        assert [job_id for job_id, _ in found.unfinished] == ids[1:]
        assert recovered.outcome(ids[0]) == JobOutcome(JobStatus.DONE, b"[1]")
        assert recovered.accept(Q1) == 2001
    finally:
        recovered.close()


def test_a_compaction_at_run_time_that_fails_keeps_appending_to_the_old_journal(
    opened, results_dir, monkeypatch
):
    monkeypatch.setattr(files_module, "COMPACT_AFTER_LINES", 10)
    faults = FaultyWrite()
    store = opened(write=faults)
    faults.compaction_full.set()
    for _ in range(30):
        job_id = store.accept(Q1)
        store.complete(job_id, b"[0]")
    if store._sync is not None:
        store._sync.join()
    for _ in range(5):
        job_id = store.accept(Q2)
    faults.compaction_full.clear()
    store.close()
    recovered = FileStore(results_dir)
    try:
        assert [i for i, _ in recovered.open().unfinished] == [31, 32, 33, 34, 35]
        assert recovered.last_id() == 35
    finally:
        recovered.close()


# --- item 3: one owner per directory -------------------------------------------------------------


def test_a_second_store_on_the_same_directory_is_refused_naming_the_holder(opened, results_dir):
    opened()
    with pytest.raises(StorageError) as refused:
        FileStore(results_dir).open()
    assert str(results_dir) in refused.value.problem
    assert f"pid {os.getpid()}" in refused.value.problem
    assert not refused.value.transient


def test_the_lock_is_released_at_close(results_dir):
    first = FileStore(results_dir)
    first.open()
    first.close()
    first.close()  # idempotent
    second = FileStore(results_dir)
    second.open()
    second.close()


# --- item 5: nothing found on disk is trusted blindly --------------------------------------------


def test_a_stray_result_file_far_above_the_ids_issued_is_ignored_with_one_warning(
    opened, results_dir, caplog
):
    store = opened()
    assert store.accept(Q1) == 1
    store.complete(1, b"[1]")
    store.close()
    (results_dir / "job_id_999999999999999999.json").write_bytes(b'{"evil": 1}')
    (results_dir / "job_id_50.json").write_bytes(b'{"stray": 1}')
    with caplog.at_level(logging.WARNING, logger="lestats.stores"):
        store = opened()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "2 result files" in warnings[0]
    assert store.accept(Q2) == 2  # the journal says 2 is next: strays change nothing
    for job_id in (10, 50, 999999999999999999):
        with pytest.raises(UnknownJob):
            store.outcome(job_id)
    assert store.statuses() == [(1, JobStatus.DONE), (2, JobStatus.RUNNING)]


@pytest.mark.parametrize(
    "line",
    [
        b'{"next": 1e300}',
        b'{"next": 1000000000000000001}',
        b'{"next": true}',
        b'{"job": 0, "query": {"kind": "best5", "question": "q"}}',
        b'{"job": -4, "query": {"kind": "best5", "question": "q"}}',
        b'{"job": 1e30, "query": {"kind": "best5", "question": "q"}}',
        b'{"failed": "3", "reason": "x"}',
        b'{"expired": [[1, 1e99]]}',
    ],
)
def test_ids_read_from_the_journal_are_validated(opened, results_dir, line):
    store = opened()
    store.accept(Q1)
    store.close()
    with (results_dir / "journal.jsonl").open("ab") as file:
        file.write(line + b"\n")
    store = opened()
    assert store.last_id() == 1
    assert store.accept(Q2) == 2
    assert [job_id for job_id, _ in store.statuses()] == [1, 2]


def test_a_journal_claiming_more_ids_than_a_store_holds_is_refused(results_dir):
    results_dir.mkdir()
    (results_dir / "journal.jsonl").write_bytes(b'{"next": 100000000000000000}\n')
    with pytest.raises(StorageError, match="refusing to guess"):
        FileStore(results_dir).open()
    FileStore(results_dir).close()  # and the lock was released


def test_a_damaged_next_line_cannot_make_ids_issued_again(opened, results_dir):
    store = opened()
    for _ in range(5):
        store.complete(store.accept(Q1), b"[5]")
    store.close()  # compacted: the journal is now one line, {"next": 6}
    (results_dir / "journal.jsonl").write_bytes(b'{"next": 6')  # ...torn
    store = opened()
    assert store.accept(Q2) == 6  # the result files 1..5 still count
    assert store.outcome(5) == JobOutcome(JobStatus.DONE, b"[5]")


def test_a_result_file_that_is_not_json_is_an_error_never_data(opened, results_dir):
    store = opened(cache_bytes=0)
    job_id = store.accept(Q1)
    store.complete(job_id, b"[1]")
    (results_dir / f"job_id_{job_id}.json").write_bytes(b"not json")
    failed = store.outcome(job_id)
    assert failed.status is JobStatus.ERROR
    assert "JSON" in failed.reason
    assert store.statuses() == [(job_id, JobStatus.ERROR)]  # and the listing agrees


def test_a_result_file_replaced_by_a_symlink_is_not_followed(opened, results_dir, tmp_path):
    store = opened(cache_bytes=0)
    job_id = store.accept(Q1)
    store.complete(job_id, b"[1]")
    secret = tmp_path / "secret.json"
    secret.write_bytes(b'{"secret": true}')
    path = results_dir / f"job_id_{job_id}.json"
    path.unlink()
    path.symlink_to(secret)
    failed = store.outcome(job_id)
    assert failed.status is JobStatus.ERROR
    assert "symlink" in failed.reason
    assert failed.result is None


def test_a_journaled_job_whose_file_is_a_symlink_runs_again(opened, results_dir, tmp_path):
    store = opened()
    job_id = store.accept(Q1)
    store.close()
    secret = tmp_path / "secret.json"
    secret.write_bytes(b"[0]")
    (results_dir / f"job_id_{job_id}.json").symlink_to(secret)
    store = FileStore(results_dir)
    try:
        assert store.open().unfinished == ((job_id, Q1),)
    finally:
        store.close()


# --- item 13: sync only our files, off the owner's thread ----------------------------------------


class SyncSpy:
    """Wraps `ResultFiles.sync`: notes the thread and ids of each call; may hold it at `gate`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self._real = ResultFiles.sync

    def __call__(self, files, job_ids) -> None:
        job_ids = list(job_ids)
        self.calls.append((threading.current_thread().name, job_ids))
        self.entered.set()
        assert self.gate.wait(10)
        self._real(files, job_ids)


@pytest.fixture
def sync_spy(monkeypatch):
    spy = SyncSpy()

    def sync(files, job_ids) -> None:
        spy(files, job_ids)

    monkeypatch.setattr(ResultFiles, "sync", sync)
    monkeypatch.setattr(os, "sync", lambda: pytest.fail("os.sync syncs every file system"))
    yield spy
    spy.gate.set()


def test_compaction_syncs_the_files_written_since_the_last_in_a_thread_of_its_own(
    opened, results_dir, monkeypatch, sync_spy
):
    monkeypatch.setattr(files_module, "COMPACT_AFTER_LINES", 10)
    store = opened()
    owner = threading.current_thread().name
    sync_spy.calls.clear()
    sync_spy.entered.clear()
    for _ in range(11):
        store.complete(store.accept(Q1), b"[0]")
    assert sync_spy.entered.wait(5)
    store._sync.join()
    assert sync_spy.calls == [("FileStoreSync", list(range(1, 12)))]
    assert all(name != owner for name, _ in sync_spy.calls)
    store.complete(store.accept(Q1), b"[0]")  # the next call swaps in the compacted journal
    lines = [json.loads(line) for line in journal_lines(results_dir) if line]
    assert lines[0] == {"next": 13}


def test_jobs_finished_after_the_sync_began_stay_unfinished_in_the_compacted_journal(
    opened, results_dir, monkeypatch, sync_spy
):
    monkeypatch.setattr(files_module, "COMPACT_AFTER_LINES", 10)
    store = opened()
    sync_spy.gate.clear()
    sync_spy.entered.clear()
    late = [store.accept(Q2) for _ in range(3)]
    for _ in range(10):
        store.complete(store.accept(Q1), b"[0]")
    assert sync_spy.entered.wait(5)  # the sync of jobs 4..13 has begun and is held
    for job_id in late:
        store.complete(job_id, b"[1]")  # finished after the sync began
    sync_spy.gate.set()
    store._sync.join()
    store.complete(store.accept(Q1), b"[0]")  # swaps in the compacted journal
    lines = [json.loads(line) for line in journal_lines(results_dir) if line]
    assert lines[0] == {"next": 15}
    assert sorted(line["job"] for line in lines if "job" in line) == [*late, 14]
    assert store.statuses()[:3] == [(job_id, JobStatus.DONE) for job_id in late]


# --- item 14: one source of truth for listings and outcomes -------------------------------------


def test_the_listing_and_the_outcome_agree_on_a_deleted_result(opened, results_dir):
    store = opened(cache_bytes=0)
    job_id = store.accept(Q1)
    store.complete(job_id, b"[1]")
    (results_dir / f"job_id_{job_id}.json").unlink()
    gone = store.outcome(job_id)
    assert gone.status is JobStatus.ERROR
    assert store.statuses() == [(job_id, JobStatus.ERROR)]
    store.close()
    store = opened()
    assert store.statuses() == [(job_id, JobStatus.ERROR)]
    assert store.outcome(job_id) == gone


def test_ids_below_a_stray_file_are_never_issued(results_dir, opened):
    results_dir.mkdir()
    (results_dir / "journal.jsonl").write_bytes(b'{"next": 3}\n')
    (results_dir / "job_id_50.json").write_bytes(b"[50]")
    store = opened()
    assert store.statuses() == [(1, JobStatus.ERROR), (2, JobStatus.ERROR)]
    for job_id in (3, 10, 49, 50):
        with pytest.raises(UnknownJob):
            store.outcome(job_id)
    assert store.accept(Q1) == 3


def test_a_few_files_are_fsynced_one_by_one_many_with_one_syncfs(results_dir, monkeypatch):
    from lestats.stores import result_files as module  # noqa: PLC0415

    calls = []
    real_fsync, real_syncfs = os.fsync, module._syncfs
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(module, "_syncfs", lambda fd: calls.append("syncfs") or real_syncfs(fd))
    monkeypatch.setattr(module, "FSYNC_AT_MOST", 3)
    results_dir.mkdir()
    files = ResultFiles(results_dir, 0)
    for job_id in range(1, 6):
        files.save(job_id, b"[0]")
    files.sync([1, 2, 3])
    assert calls == ["fsync"] * 4  # three files and the directory
    calls.clear()
    files.sync([1, 2, 3, 4, 5])
    assert calls == ["syncfs"]  # one call for this file system, none for the others
