"""Cancel, forget and retention: a queued job can be cancelled; a finished one forgotten, by hand
or by `Retention` as jobs finish; a forgotten id answers `error` with reason `expired`, never
`Invalid job_id`; the results directory stops growing. Files and memory stores alike."""

from __future__ import annotations

import os
import time

import pytest

from lestats import messages as m
from lestats.actors.jobs import JobOutcome, JobStatus
from lestats.cli import parse_args, retention
from lestats.data.query import Query
from lestats.errors import JobFailed, UnknownJob
from lestats.stores.base import Retention
from lestats.stores.files import FileStore
from lestats.stores.memory import MemoryStore
from lestats.testing import OBESITY, GatedRunner, ask

EXPIRED = JobOutcome(JobStatus.ERROR, reason="expired")
Q1 = Query("global_mean", OBESITY)


def result_files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("job_id_"))


@pytest.fixture(params=["files", "memory"])
def store_for(request):
    """`store_for()`: the engine option of one kind of store (None: the default FileStore)."""
    return lambda: None if request.param == "files" else MemoryStore()


# --- cancel --------------------------------------------------------------------------------------


def test_a_queued_job_is_cancelled_a_running_or_finished_one_is_not(make_engine, store_for):
    runner = GatedRunner()
    engine = make_engine(runner=runner, workers=1, store=store_for())
    running = engine.submit("global_mean", OBESITY)
    runner.wait_started()
    queued = engine.submit("best5", OBESITY)
    assert engine.cancel(queued) is True
    assert engine.outcome(queued) == JobOutcome(JobStatus.ERROR, reason="cancelled")
    assert engine.cancel(queued) is False  # finished (cancelled) already
    assert engine.cancel(running) is False  # running: unchanged
    assert engine.status(running) is JobStatus.RUNNING
    runner.gate.set()
    assert engine.result(running, timeout=5) == {"global_mean": 29.5}
    assert engine.cancel(running) is False  # done: unchanged
    with pytest.raises(JobFailed, match="cancelled"):
        engine.result(queued, timeout=5)
    engine.shutdown()
    assert runner.calls == 1  # the cancelled job never ran
    assert engine.drained


async def test_cancel_async(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, workers=1)
    await engine.submit_async("global_mean", OBESITY)
    runner.wait_started()
    queued = await engine.submit_async("best5", OBESITY)
    assert await engine.cancel_async(queued) is True
    assert (await engine.outcome_async(queued)).reason == "cancelled"
    runner.gate.set()


def test_a_cancelled_job_stays_cancelled_after_a_restart(make_engine):
    runner = GatedRunner()
    first = make_engine(runner=runner, workers=1)
    first.submit("global_mean", OBESITY)
    runner.wait_started()
    queued = first.submit("best5", OBESITY)
    assert first.cancel(queued)
    runner.gate.set()
    first.shutdown()
    second = make_engine()
    assert second.outcome(queued) == JobOutcome(JobStatus.ERROR, reason="cancelled")


# --- forget --------------------------------------------------------------------------------------


def test_forget_a_finished_job(make_engine, store_for, results_dir):
    engine = make_engine(store=store_for())
    done = engine.submit("global_mean", OBESITY)
    engine.result(done, timeout=5)
    assert engine.forget(done) is True
    assert engine.outcome(done) == EXPIRED  # never "Invalid job_id"
    assert engine.forget(done) is False  # forgotten already
    assert engine.jobs() == []
    with pytest.raises(UnknownJob):
        engine.outcome("job_id_2")
    assert engine.forget("job_id_2") is False  # never issued
    if results_dir.exists():
        assert result_files(results_dir) == []


def test_an_unfinished_job_is_not_forgotten(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, workers=1)
    job = engine.submit("global_mean", OBESITY)
    runner.wait_started()
    assert engine.forget(job) is False
    runner.gate.set()
    assert engine.result(job, timeout=5) == {"global_mean": 29.5}


async def test_forget_async_and_the_loops_copy_forgets_too(make_engine):
    engine = make_engine()
    job = await engine.submit_async("global_mean", OBESITY)
    await engine.result_async(job, timeout=5)
    assert await engine.forget_async(job) is True
    assert (await engine.outcome_async(job)) == EXPIRED


def test_a_forgotten_job_stays_forgotten_after_a_restart(make_engine, results_dir):
    first = make_engine()
    jobs = [first.submit("global_mean", OBESITY) for _ in range(3)]
    for job in jobs:
        first.result(job, timeout=5)
    assert first.forget(jobs[1])
    first.shutdown()
    second = make_engine()
    assert second.outcome(jobs[1]) == EXPIRED
    assert [job for job, _ in second.jobs()] == [jobs[0], jobs[2]]
    assert result_files(results_dir) == ["job_id_1.json", "job_id_3.json"]


# --- retention -----------------------------------------------------------------------------------


def test_keep_last_forgets_older_jobs_as_jobs_finish(make_engine, store_for, results_dir):
    engine = make_engine(retention=Retention(keep_last=3), store=store_for())
    jobs = [engine.submit("global_mean", OBESITY) for _ in range(10)]
    for job in jobs:
        engine.wait(job, timeout=5)
    last = engine.submit("best5", OBESITY)
    engine.result(last, timeout=5)  # expiry runs behind each batch of finished jobs
    assert [job for job, _ in engine.jobs()] == [*jobs[-2:], last]
    assert engine.outcome(jobs[0]) == EXPIRED
    if results_dir.exists():
        assert result_files(results_dir) == ["job_id_10.json", "job_id_11.json", "job_id_9.json"]


def test_a_running_job_is_kept_and_forgotten_once_it_finishes(make_engine):
    runner = GatedRunner(crash=lambda _query: False)
    engine = make_engine(retention=Retention(keep_last=1), runner=runner, workers=1)
    slow = engine.submit("global_mean", OBESITY)
    runner.wait_started()
    engine.cancel(engine.submit("best5", OBESITY))
    assert engine.status(slow) is JobStatus.RUNNING  # older than the last one, still kept
    runner.gate.set()
    engine.wait(slow, timeout=5)
    newest = engine.submit("best5", OBESITY)
    engine.wait(newest, timeout=5)
    assert engine.outcome(slow) == EXPIRED
    assert [job for job, _ in engine.jobs()] == [newest]


def test_max_age_forgets_jobs_finished_longer_ago(make_engine, store_for):
    engine = make_engine(retention=Retention(max_age=0.0), store=store_for())
    first = engine.submit("global_mean", OBESITY)
    engine.wait(first, timeout=5)
    second = engine.submit("best5", OBESITY)
    engine.wait(second, timeout=5)
    assert engine.outcome(first) == EXPIRED


def test_max_age_keeps_young_jobs(make_engine):
    engine = make_engine(retention=Retention(max_age=3600))
    jobs = [engine.submit("global_mean", OBESITY) for _ in range(5)]
    for job in jobs:
        engine.wait(job, timeout=5)
    assert [job for job, _ in engine.jobs()] == jobs


def test_retention_at_start_uses_the_result_files_age(make_engine, results_dir):
    first = make_engine()
    jobs = [first.submit("global_mean", OBESITY) for _ in range(4)]
    for job in jobs:
        first.wait(job, timeout=5)
    first.shutdown()
    old = time.time() - 7200
    for name in ("job_id_1.json", "job_id_2.json"):
        os.utime(results_dir / name, (old, old))
    second = make_engine(retention=Retention(max_age=3600))
    assert [job for job, _ in second.jobs()] == jobs[2:]
    assert second.outcome(jobs[0]) == EXPIRED
    assert result_files(results_dir) == ["job_id_3.json", "job_id_4.json"]


def test_the_results_directory_stops_growing_with_retention(make_engine, results_dir):
    engine = make_engine(retention=Retention(keep_last=50))
    for _ in range(6):
        jobs = [engine.submit("global_mean", OBESITY) for _ in range(100)]
        for job in jobs:
            engine.wait(job, timeout=5)
        assert len(result_files(results_dir)) <= 50 + 100


def test_the_table_drops_its_expired_head(monkeypatch):
    from lestats.stores import table as table_module  # noqa: PLC0415

    monkeypatch.setattr(table_module, "_TRIM_AT", 8)
    store = MemoryStore()
    store.open()
    for _ in range(100):
        job_id = store.accept(Q1)
        store.complete(job_id, b"[0]")
        store.expire(Retention(keep_last=5))
    assert store._table.floor > 50
    assert len(store._table.codes) < 50
    assert [job_id for job_id, _ in store.statuses()] == list(range(96, 101))
    assert store.outcome(3) == EXPIRED
    assert store.accept(Q1) == 101


def test_forget_and_expire_at_the_message_level(start_store, any_store, recorder):
    store = start_store(store=any_store(), retention=Retention(keep_last=2))
    worker = recorder()
    ids = [ask(store, m.RegisterJob(Q1, worker.ref)) for _ in range(4)]
    for job_id in ids:
        store.tell(m.JobDone(job_id, b"[0]"))
    assert ask(store, m.WatchJob(ids[-1])).status is JobStatus.DONE
    assert ask(store, m.ListJobs()) == ((3, JobStatus.DONE), (4, JobStatus.DONE))
    assert ask(store, m.ForgetJob(4)) is True
    assert ask(store, m.ForgetJob(4)) is False
    assert ask(store, m.GetOutcome(4)) == EXPIRED
    assert ask(store, m.CancelJob(3)) is False


# --- run.py's options ----------------------------------------------------------------------------


def test_run_py_retention_options():
    assert retention(parse_args([])) == Retention()
    args = parse_args(["--keep-last", "100", "--keep-for", "86400"])
    assert retention(args) == Retention(keep_last=100, max_age=86400.0)
    for bad in (["--keep-last", "0"], ["--keep-for", "-1"], ["--keep-for", "nan"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_a_file_store_reopened_with_retention_applies_it_at_start(results_dir, start_store):
    store = FileStore(results_dir)
    store.open()
    for _ in range(5):
        store.complete(store.accept(Q1), b"[0]")
    store.close()
    ref = start_store(retention=Retention(keep_last=2))
    assert ask(ref, m.ListJobs()) == ((4, JobStatus.DONE), (5, JobStatus.DONE))
