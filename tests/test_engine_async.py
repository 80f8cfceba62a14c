"""The facade's `async` twins: the blocking ones' answers, and the event loop never blocks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from typing import Self

import pytest

from lestats import messages as m
from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus, parse_job_id
from lestats.data.query import Query
from lestats.data.registry import Registry
from lestats.data.statistics import compute, default_registry
from lestats.errors import InvalidQuery, JobFailed, Overloaded, ShuttingDown, UnknownJob
from lestats.testing import MUSCLE, OBESITY, TINY_STATES, GatedRunner, TellSpy


class Ticker:
    """Measures the event loop's responsiveness: the longest gap between 10 ms sleeps."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.ticks = 0
        self.max_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.period)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            self.ticks += 1
            last = now

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def expected(dataset, endpoint, question, state=None):
    return compute(dataset, Query(endpoint, question, state))


async def test_submit_and_read_back(make_engine, tiny_dataset):
    engine = make_engine()
    job = await engine.submit_async("state_mean", OBESITY, "Texas")
    assert job == "job_id_1"
    data = await engine.result_async(job, timeout=5)
    assert data == expected(tiny_dataset, "state_mean", OBESITY, "Texas")
    outcome = await engine.wait_async(job, timeout=5)
    assert outcome.status is JobStatus.DONE
    assert await engine.outcome_async(job) == outcome
    assert await engine.outcome_async("1") == outcome
    assert await engine.status_async(1) is JobStatus.DONE
    assert await engine.jobs_async() == [("job_id_1", JobStatus.DONE)]
    assert await engine.num_jobs_async() == 0
    assert engine.outcome(job) == outcome  # the same answer through the blocking twin


async def test_errors_are_the_same_as_the_blocking_ones(make_engine):
    engine = make_engine(runner=GatedRunner(gated=False, fail=lambda q: q.question == MUSCLE))
    with pytest.raises(InvalidQuery) as refused:
        await engine.submit_async("state_mean", OBESITY, "Atlantis")
    assert refused.value.allowed == TINY_STATES
    for job_id in ("job_id_1", "../etc", 0):
        with pytest.raises(UnknownJob):
            await engine.outcome_async(job_id)
        with pytest.raises(UnknownJob):
            await engine.wait_async(job_id, timeout=1)
    bad = await engine.submit_async("best5", MUSCLE)
    with pytest.raises(JobFailed, match="this job fails"):
        await engine.result_async(bad, timeout=5)
    assert await engine.jobs_async() == [(bad, JobStatus.ERROR)]


async def test_wait_async_times_out_with_running(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = await engine.submit_async("best5", OBESITY)
    started = time.perf_counter()
    outcome = await engine.wait_async(job, timeout=0.1)
    elapsed = time.perf_counter() - started
    assert outcome == RUNNING
    assert 0.09 <= elapsed < 0.5
    with pytest.raises(TimeoutError, match="still running"):
        await engine.result_async(job, timeout=0.05)
    assert await engine.num_jobs_async() == 1
    runner.gate.set()
    assert await engine.result_async(job, timeout=5)


JOB_SECONDS = 0.5
"""How long each job of the two tests below holds its Worker."""
BLOCKED = JOB_SECONDS / 2
"""A gap this long means the loop waited on a job: waiting on one costs a whole JOB_SECONDS,
while a busy machine delays a 10 ms tick by tens of milliseconds, not hundreds."""


async def test_the_loop_never_blocks_while_a_job_is_slow(make_engine, tiny_dataset):
    engine = make_engine(runner=GatedRunner(gated=False, delay=JOB_SECONDS))
    async with Ticker() as ticker:
        job = await engine.submit_async("global_mean", MUSCLE)
        data = await engine.result_async(job)
        assert await engine.num_jobs_async() == 0
    assert data == expected(tiny_dataset, "global_mean", MUSCLE)
    assert ticker.ticks >= 10
    assert ticker.max_gap < BLOCKED


async def test_the_loop_never_blocks_while_the_engine_drains(make_engine):
    runner = GatedRunner(gated=False, delay=JOB_SECONDS)
    engine = make_engine(runner=runner, workers=1)
    jobs = [await engine.submit_async("best5", OBESITY) for _ in range(2)]
    async with Ticker() as ticker:
        await engine.shutdown_async(timeout=5)
    assert not engine.started
    assert runner.calls == len(jobs)
    assert ticker.ticks >= 10
    assert ticker.max_gap < BLOCKED
    with pytest.raises(ShuttingDown):
        await engine.submit_async("best5", OBESITY)


async def test_many_concurrent_clients(make_engine, tiny_dataset):
    engine = make_engine(workers=3)
    queries = [(state, question) for state in TINY_STATES for question in (OBESITY, MUSCLE)] * 25

    async def client(state, question):
        job = await engine.submit_async("state_mean", question, state)
        return await engine.result_async(job, timeout=10)

    results = await asyncio.gather(*(client(state, question) for state, question in queries))
    for (state, question), data in zip(queries, results, strict=True):
        assert data == expected(tiny_dataset, "state_mean", question, state)
    jobs = await engine.jobs_async()
    assert [job for job, _ in jobs] == [f"job_id_{n}" for n in range(1, len(queries) + 1)]
    assert {status for _, status in jobs} == {JobStatus.DONE}


async def test_waiters_hold_no_thread(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = await engine.submit_async("best5", OBESITY)
    threads_before = threading.active_count()
    waiters = [asyncio.create_task(engine.wait_async(job, timeout=10)) for _ in range(200)]
    await asyncio.sleep(0.05)
    assert threading.active_count() <= threads_before
    assert not any(waiter.done() for waiter in waiters)
    runner.gate.set()
    outcomes = await asyncio.gather(*waiters)
    assert {outcome.status for outcome in outcomes} == {JobStatus.DONE}


async def test_a_cancelled_waiter_gives_back_its_waiter_slot_and_its_watch(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, max_waiters=1, max_requests=1)
    job = await engine.submit_async("best5", OBESITY)
    spy = engine._store = TellSpy(engine._store)
    waiter = asyncio.create_task(engine.result_async(job))
    await asyncio.sleep(0)  # the waiter's first step takes its place
    assert engine.waiting == 1
    with pytest.raises(Overloaded, match="waiter bound"):
        await engine.wait_async(job, timeout=5)
    assert await engine.num_jobs_async() == 1  # the request place is not the waiter's
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert engine.waiting == 0
    assert await engine.num_jobs_async() == 1
    (watch,) = spy.of_type(m.WatchJob)
    assert spy.of_type(m.Unwatch) == [m.Unwatch(watch.job_id, watch.reply)]
    runner.gate.set()
    outcome = await engine.wait_async(job, timeout=5)
    assert outcome.status is JobStatus.DONE
    # The store forgot the cancelled waiter's reply: finishing the job did not settle it.
    assert not watch.reply.done()


async def test_wait_async_timeouts_do_not_disturb_the_job_nor_pile_up(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = await engine.submit_async("worst5", MUSCLE)
    spy = engine._store = TellSpy(engine._store)
    for _ in range(20):
        assert await engine.wait_async(job, timeout=0.01) == RUNNING
    timed_out = spy.of_type(m.WatchJob)
    assert len(timed_out) == 20
    unwatched = [(message.job_id, message.reply) for message in spy.of_type(m.Unwatch)]
    assert unwatched == [(message.job_id, message.reply) for message in timed_out]
    runner.gate.set()
    done = await engine.wait_async(job, timeout=5)
    assert done.status is JobStatus.DONE
    assert await engine.outcome_async(job) == JobOutcome(JobStatus.DONE, done.result)
    assert not any(message.reply.done() for message in timed_out)


async def test_shutdown_async_timeout_leaves_the_engine_draining(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = await engine.submit_async("best5", OBESITY)
    try:
        with pytest.raises(TimeoutError):
            await engine.shutdown_async(timeout=0.05)
        assert engine.started
        assert not engine.accepting
        assert not engine.drained, "drained while a job still runs"
        assert not engine.begin_shutdown().cancelled()
        with pytest.raises(ShuttingDown):
            await engine.submit_async("best5", OBESITY)
        runner.gate.set()
        assert (await engine.wait_async(job, timeout=5)).status is JobStatus.DONE
        await engine.shutdown_async(timeout=5)
        assert not engine.started
        assert engine.drained
    finally:
        runner.gate.set()


async def test_a_cancelled_shutdown_async_leaves_the_engine_draining(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = await engine.submit_async("best5", OBESITY)
    stopper = asyncio.create_task(engine.shutdown_async())
    await asyncio.sleep(0.02)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert engine.started
    assert not engine.drained
    runner.gate.set()
    await asyncio.to_thread(engine.shutdown, 5)  # the blocking twin finishes the drain
    assert not engine.started
    assert engine.drained
    assert (engine.results_dir / f"{job}.json").exists()


# --- the loop's copy of finished jobs, the memo, the request bound -------------------------------


class UnreachableStore:
    """Stands in for the ResultStore's ref: telling it anything fails the test."""

    def __init__(self) -> None:
        self.told: list[object] = []

    def tell(self, message: object) -> None:
        self.told.append(message)
        raise AssertionError(f"the store was asked: {message!r}")


async def in_the_loop_copy(engine, job: str, timeout: float = 5.0) -> None:
    """Wait until the running loop's copy of finished jobs holds `job`."""
    number = parse_job_id(job)
    deadline = time.monotonic() + timeout
    while engine._loop_side is None or engine._loop_side.finished.get(number) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"{job} never reached the loop's copy")
        await asyncio.sleep(0.002)


async def test_a_finished_job_is_answered_in_the_loop_without_the_store(make_engine, tiny_dataset):
    runner = GatedRunner(fail=lambda query: query.question == MUSCLE)
    engine = make_engine(runner=runner)
    spy = engine._store = TellSpy(engine._store)
    good = await engine.submit_async("best5", OBESITY)
    bad = await engine.submit_async("best5", MUSCLE)
    assert await engine.outcome_async(good) == RUNNING  # not finished: the store is asked
    assert len(spy.of_type(m.GetOutcome)) == 1
    runner.gate.set()
    done = await engine.wait_async(good, timeout=5)
    failed = await engine.wait_async(bad, timeout=5)
    assert done.status is JobStatus.DONE
    assert failed.status is JobStatus.ERROR
    await in_the_loop_copy(engine, good)
    await in_the_loop_copy(engine, bad)
    assert len(spy.of_type(m.Subscribe)) == 1  # once for this loop, whatever the calls
    engine._store = UnreachableStore()
    try:
        assert await engine.outcome_async(good) == done
        assert await engine.outcome_async("2") == failed
        assert await engine.wait_async(good, timeout=1) == done
        assert await engine.wait_async(bad) == failed
        assert await engine.status_async(good) is JobStatus.DONE
        assert await engine.result_async(good) == expected(tiny_dataset, "best5", OBESITY)
        with pytest.raises(JobFailed, match="this job fails"):
            await engine.result_async(bad)
        assert engine._store.told == []
    finally:
        engine._store = spy


async def test_without_a_cache_the_loop_keeps_no_copy_and_asks_the_store(make_engine):
    engine = make_engine(cache_bytes=0)
    spy = engine._store = TellSpy(engine._store)
    job = await engine.submit_async("global_mean", OBESITY)
    done = await engine.wait_async(job, timeout=5)
    assert done.status is JobStatus.DONE
    assert await engine.num_jobs_async() == 0
    for _ in range(3):
        assert await engine.outcome_async(job) == done
    assert await engine.wait_async(job, timeout=5) == done
    assert spy.of_type(m.Subscribe) == []
    assert [message.job_id for message in spy.of_type(m.GetOutcome)] == [1, 1, 1]
    assert [message.job_id for message in spy.of_type(m.WatchJob)] == [1, 1]
    assert engine._loop_side is not None  # made once for this loop, not once per call
    side = engine._loop_side
    await engine.outcome_async(job)
    assert engine._loop_side is side


async def test_an_injected_runner_runs_for_every_job_even_a_repeated_one(make_engine, tiny_dataset):
    runner = GatedRunner(gated=False)
    engine = make_engine(runner=runner, workers=1)
    jobs = [await engine.submit_async("best5", OBESITY) for _ in range(3)]
    results = [await engine.result_async(job, timeout=5) for job in jobs]
    assert results == [expected(tiny_dataset, "best5", OBESITY)] * 3
    assert runner.calls == 3


async def test_the_built_in_runner_is_memoized(make_engine, tiny_dataset):
    calls: list[Query] = []

    def counted(function):
        def run(dataset, query):
            calls.append(query)
            return function(dataset, query)

        return run

    # The course rows, their functions counted: the engine memoizes what the registry calls pure.
    registry = Registry()
    built_in = default_registry()
    for row in built_in:
        registry.add(dataclasses.replace(row, function=counted(row.function)))
    for question in built_in.questions(tiny_dataset):
        registry.set_direction(question, built_in.direction(question))
    engine = make_engine(registry=registry, workers=1)
    asked = [("best5", OBESITY), ("best5", OBESITY), ("worst5", MUSCLE), ("best5", OBESITY)]
    jobs = [await engine.submit_async(endpoint, question) for endpoint, question in asked]
    results = [await engine.result_async(job, timeout=5) for job in jobs]
    assert results == [expected(tiny_dataset, *query) for query in asked]
    assert calls == [Query("best5", OBESITY), Query("worst5", MUSCLE)]


async def test_request_slots_come_back_after_refused_requests(make_engine):
    engine = make_engine(max_requests=1)
    for _ in range(3):
        with pytest.raises(UnknownJob):
            await engine.outcome_async(99)
        with pytest.raises(UnknownJob):
            await engine.wait_async(99, timeout=1)
        with pytest.raises(InvalidQuery):
            await engine.submit_async("state_mean", OBESITY, "Atlantis")
    job = await engine.submit_async("best5", OBESITY)
    assert (await engine.wait_async(job, timeout=5)).status is JobStatus.DONE
    assert await engine.num_jobs_async() == 0
