"""Job handles and finished-job streams: await a job, cancel it, `as_completed`, a callback and
an async iterator of finished jobs, all riding on the store's push of finished jobs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lestats import Job, JobFailed, JobStatus, Overloaded
from lestats.actors import handles
from lestats.testing import MUSCLE, OBESITY, GatedRunner, eventually

BEST_OBESITY = {"Wyoming": 25.0, "Texas": 27.5, "Ohio": 32.0, "Alaska": 33.0}


def test_a_handle_waits_for_and_returns_its_data(make_engine):
    engine = make_engine()
    job = engine.job(engine.submit("best5", OBESITY))
    assert isinstance(job, Job)
    assert repr(job) == "Job(job_id_1)"
    assert job.result(timeout=5) == BEST_OBESITY
    assert job.done()
    assert job.status() is JobStatus.DONE
    assert job.wait(timeout=5).status is JobStatus.DONE
    assert engine.job(1).id == "job_id_1"


async def test_await_a_handle(make_engine):
    engine = make_engine()
    job = engine.job(await engine.submit_async("global_mean", MUSCLE))
    assert await job == {"global_mean": 24.375}
    assert await job.result_async(timeout=5) == {"global_mean": 24.375}
    assert (await job.wait_async(timeout=5)).status is JobStatus.DONE
    assert await job.status_async() is JobStatus.DONE


def test_a_queued_job_is_cancelled_through_its_handle(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, workers=1)
    running = engine.job(engine.submit("best5", OBESITY))
    queued = engine.job(engine.submit("best5", MUSCLE))
    runner.wait_started()
    assert not running.cancel()  # running: it finishes
    assert queued.cancel()
    with pytest.raises(JobFailed, match="cancelled"):
        queued.result(timeout=5)
    runner.release()
    assert running.result(timeout=5) == BEST_OBESITY


async def test_cancel_async_through_a_handle(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, workers=1)
    await engine.submit_async("best5", OBESITY)
    queued = engine.job(await engine.submit_async("best5", MUSCLE))
    assert await queued.cancel_async()
    runner.release()
    assert (await queued.wait_async(timeout=5)).reason == "cancelled"


def test_as_completed_yields_jobs_already_done_first_then_each_as_it_finishes(make_engine):
    runner = GatedRunner(gated=False)
    engine = make_engine(runner=runner, workers=1)
    early = engine.submit("global_mean", OBESITY)
    engine.result(early, timeout=5)
    runner.gate.clear()
    later = [engine.submit("global_mean", MUSCLE) for _ in range(3)]
    runner.wait_started(2)  # the early job's start, then the first of the later ones
    finishing = engine.as_completed([*reversed(later), early], timeout=10)
    assert next(finishing) == (early, engine.outcome(early))  # finished before the call
    runner.release()
    rest = [(job_id, outcome.status) for job_id, outcome in finishing]
    assert sorted(rest) == [(job_id, JobStatus.DONE) for job_id in later]  # each once


def test_as_completed_times_out_on_jobs_still_running(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, workers=1)
    job_id = engine.submit("global_mean", OBESITY)
    with pytest.raises(TimeoutError, match="1 jobs still running"):
        list(engine.as_completed([job_id], timeout=0.05))
    runner.release()
    assert [j for j, _ in engine.as_completed([job_id], timeout=5)] == [job_id]


async def test_as_completed_async(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, workers=1)
    job_ids = [await engine.submit_async("global_mean", OBESITY) for _ in range(4)]
    runner.release()
    seen = [job_id async for job_id, _ in engine.as_completed_async(job_ids, timeout=10)]
    assert sorted(seen) == job_ids
    runner.gate.clear()
    held = await engine.submit_async("global_mean", OBESITY)
    with pytest.raises(TimeoutError):
        await anext(engine.as_completed_async([held], timeout=0.05))
    runner.release()


async def test_finished_streams_every_job_that_finishes(make_engine):
    engine = make_engine()
    stream = engine.finished()
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # the stream subscribes before the jobs are submitted
    job_ids = [await engine.submit_async("global_mean", OBESITY) for _ in range(5)]
    seen = [(await first)[0]]
    while len(seen) < 5:
        job_id, outcome = await anext(stream)
        assert outcome.status is JobStatus.DONE
        seen.append(job_id)
    await stream.aclose()
    assert sorted(seen) == sorted(job_ids)


async def test_a_finished_stream_that_falls_behind_ends_with_overloaded(make_engine):
    engine = make_engine()
    stream = handles.finished_stream(engine._store, backlog=2)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    job_ids = [await engine.submit_async("global_mean", OBESITY) for _ in range(10)]
    await engine.result_async(job_ids[-1], timeout=5)
    await first
    with pytest.raises(Overloaded, match="fell more than 2 jobs behind"):
        await consume(stream, 10)


async def consume(stream, count: int) -> None:
    for _ in range(count):
        await anext(stream)


def test_on_finished_calls_back_for_each_job_even_after_a_callback_error(make_engine):
    engine = make_engine()
    seen: list[str] = []
    lock = threading.Lock()

    def callback(job_id, outcome):
        with lock:
            seen.append(job_id)
        if job_id == "job_id_1":
            raise RuntimeError("a broken callback")
        assert outcome.status is JobStatus.DONE

    with engine.on_finished(callback):
        job_ids = [engine.submit("global_mean", OBESITY) for _ in range(4)]
        eventually(lambda: len(seen) == 4)
    assert sorted(seen) == sorted(job_ids)
    engine.result(engine.submit("global_mean", OBESITY), timeout=5)
    assert len(seen) == 4  # closed: no more calls
