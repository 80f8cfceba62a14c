"""Safe lifetimes: a forgotten engine ends with the program, Ctrl+C ends it, `with` and
`async with` stop without draining after an exception, the loop is never blocked, and callers
may wait for a request place instead of being refused."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING, Self

import pytest

from lestats import Engine, JobStatus, Overloaded
from lestats.actors import lifetime
from lestats.errors import InvalidQuery, PartlyAccepted
from lestats.stores.memory import MemoryStore
from lestats.testing import MUSCLE, OBESITY, GatedRunner, eventually, tiny_dataset

if TYPE_CHECKING:
    from pathlib import Path

EXIT_DEADLINE = 60.0
"""Seconds a subprocess gets to end before the test calls it hung (it needs about one)."""

FORGETFUL = textwrap.dedent(
    """
    import sys
    from lestats import Engine
    from lestats.testing import OBESITY, GatedRunner, tiny_dataset

    blocked = sys.argv[2] == "blocked"
    runner = GatedRunner() if blocked else GatedRunner(gated=False, delay=0.05)
    engine = Engine(
        tiny_dataset(), workers=1, results_dir=sys.argv[1], runner=runner, shutdown_timeout=0.5
    )
    engine.start()
    ids = [engine.submit("global_mean", OBESITY) for _ in range(4)]
    runner.wait_started()
    print(*ids, flush=True)
    # No shutdown: the program simply ends here.
    """
)

INTERRUPTED = textwrap.dedent(
    """
    import sys
    from lestats import Engine
    from lestats.testing import OBESITY, GatedRunner, tiny_dataset

    runner = GatedRunner()  # holds every job: the program waits for ever without Ctrl+C
    engine = Engine(
        tiny_dataset(), workers=1, results_dir=sys.argv[1], runner=runner, shutdown_timeout=0.5
    )

    def wait_for_ever():
        job_id = engine.submit("global_mean", OBESITY)
        engine.submit("best5", OBESITY)
        runner.wait_started()
        print("waiting", flush=True)
        engine.result(job_id)

    if sys.argv[2] == "with":
        with engine:
            wait_for_ever()
    else:
        engine.start()
        wait_for_ever()
    """
)


def run(tmp_path, source: str, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "program.py"
    script.write_text(source, encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "results"), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def recovered_results(tmp_path, job_ids: list[str]) -> list[object]:
    """Start a new engine on the same results: the jobs left unfinished run now."""
    with Engine(tiny_dataset(), workers=1, results_dir=tmp_path / "results") as engine:
        return [engine.result(job_id, timeout=10) for job_id in job_ids]


@pytest.mark.parametrize("jobs", ["idle", "blocked"])
def test_a_program_that_forgets_its_engine_exits_by_itself(tmp_path, jobs):
    program = run(tmp_path, FORGETFUL, jobs)
    stdout, stderr = program.communicate(timeout=EXIT_DEADLINE)
    assert program.returncode == 0, stderr
    assert stderr == ""
    job_ids = stdout.split()
    assert job_ids == ["job_id_1", "job_id_2", "job_id_3", "job_id_4"]
    # Stopped without draining: whatever did not finish was journaled and runs now.
    assert recovered_results(tmp_path, job_ids) == [{"global_mean": 29.5}] * 4


@pytest.mark.parametrize("shape", ["with", "started"])
def test_ctrl_c_ends_a_program_waiting_on_a_job(tmp_path, shape):
    program = run(tmp_path, INTERRUPTED, shape)
    assert program.stdout is not None
    assert program.stdout.readline() == "waiting\n"
    program.send_signal(signal.SIGINT)
    _, stderr = program.communicate(timeout=EXIT_DEADLINE)
    assert program.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert recovered_results(tmp_path, ["job_id_1", "job_id_2"]) == [
        {"global_mean": 29.5},
        {"Wyoming": 25.0, "Texas": 27.5, "Ohio": 32.0, "Alaska": 33.0},
    ]


def fail_inside(engine: Engine, runner: GatedRunner, job_ids: list[str]) -> None:
    """Inside `with engine`: submit five jobs, wait for the first to run, then raise."""
    with engine:
        job_ids.extend(engine.submit("global_mean", OBESITY) for _ in range(5))
        runner.wait_started()
        raise RuntimeError("the caller's own error")


async def fail_inside_async(engine: Engine, runner: GatedRunner, job_ids: list[str]) -> None:
    """`fail_inside` with `async with`."""
    async with engine:
        job_ids.extend([await engine.submit_async("global_mean", OBESITY) for _ in range(5)])
        await asyncio.to_thread(runner.wait_started)
        raise RuntimeError("the caller's own error")


def test_an_exception_inside_with_stops_without_draining(tmp_path):
    runner = GatedRunner(gated=False, delay=0.2)
    results = tmp_path / "results"
    engine = Engine(tiny_dataset(), workers=1, results_dir=results, runner=runner)
    job_ids: list[str] = []
    with pytest.raises(RuntimeError, match="the caller's own error"):
        fail_inside(engine, runner, job_ids)
    assert not engine.started
    assert lifetime.running() == 0
    assert runner.calls < 5  # the queued jobs were not run
    assert recovered_results(tmp_path, job_ids) == [{"global_mean": 29.5}] * 5


def test_leaving_with_honours_the_shutdown_timeout(tmp_path, caplog):
    runner = GatedRunner()
    engine = Engine(
        tiny_dataset(),
        workers=1,
        results_dir=tmp_path / "results",
        runner=runner,
        shutdown_timeout=0.2,
    )
    caplog.set_level(logging.WARNING, logger="lestats")
    with pytest.raises(RuntimeError, match="the caller's own error"):
        fail_inside(engine, runner, [])
    # The job still holds its worker: the engine gave up waiting and is still stopping.
    assert engine.started
    assert "still stopping after 0.2 s" in caplog.text
    runner.release()
    engine.shutdown(timeout=10)
    assert lifetime.running() == 0


def test_a_clean_exit_from_with_drains(tmp_path):
    runner = GatedRunner(gated=False, delay=0.01)
    with Engine(tiny_dataset(), workers=1, results_dir=tmp_path / "r", runner=runner) as engine:
        job_ids = [engine.submit("global_mean", OBESITY) for _ in range(5)]
    assert runner.calls == 5
    assert lifetime.running() == 0
    with Engine(tiny_dataset(), workers=1, results_dir=tmp_path / "r") as engine:
        assert [engine.status(job_id) for job_id in job_ids] == [JobStatus.DONE] * 5


# --- asyncio: async with, and the loop never blocked ---------------------------------------------


class LoopWatch:
    """Records the event loop's blocked stretches while it is active.

    asyncio's debug mode reports every callback that runs longer than `slow_callback_duration`
    (the loop can do nothing else meanwhile); a probe task also measures the scheduling delay
    of 5 ms sleeps, for the failure message.
    """

    def __init__(self, caplog: pytest.LogCaptureFixture, limit: float = 0.05) -> None:
        self.caplog = caplog
        self.limit = limit
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._debug = loop.get_debug()
        loop.set_debug(True)
        loop.slow_callback_duration = self.limit
        self.caplog.set_level(logging.WARNING, logger="asyncio")
        self._task = asyncio.create_task(self._probe())
        return self

    async def _probe(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            self.max_lag = max(self.max_lag, time.monotonic() - before - 0.005)

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        asyncio.get_running_loop().set_debug(self._debug)

    def blocked(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if "took" in r.getMessage()]


async def test_the_loop_watch_sees_a_blocking_call(caplog):
    async with LoopWatch(caplog) as watch:
        asyncio.get_running_loop().call_soon(time.sleep, 0.08)
        await asyncio.sleep(0.1)
    assert watch.blocked(), "a blocked loop went unnoticed: the watch below proves nothing"


ATTEMPTS = 3
"""A call that blocks the loop blocks it every time; a stretch lost to a loaded machine (other
processes, another thread holding the GIL) does not repeat: the check fails only if every
attempt saw the loop blocked."""


async def test_start_submit_wait_and_shutdown_never_block_the_loop(tmp_path, caplog):
    seen: list[list[str]] = []
    for attempt in range(ATTEMPTS):
        caplog.clear()
        async with LoopWatch(caplog) as watch:
            await start_submit_wait_and_shut_down(tmp_path / f"attempt-{attempt}")
        if not watch.blocked():
            return
        seen.append([*watch.blocked(), f"max scheduling lag {watch.max_lag:.3f} s"])
    pytest.fail(f"the loop was blocked in every attempt: {seen}")


async def start_submit_wait_and_shut_down(results: Path) -> None:
    """The facade's async paths, each checked, with jobs in flight at the end."""
    started_in: list[threading.Thread] = []

    class Observed(Engine):
        def start(self) -> Observed:
            started_in.append(threading.current_thread())
            return super().start()

    runner = GatedRunner(gated=False, delay=0.02)
    async with Observed(tiny_dataset(), workers=2, results_dir=results, runner=runner) as engine:
        job_ids = [await engine.submit_async("best5", MUSCLE) for _ in range(20)]
        outcomes = await asyncio.gather(*(engine.wait_async(j, timeout=10) for j in job_ids))
        many = await engine.submit_many_async([engine.query("global_mean", question=OBESITY)] * 10)
        assert await engine.result_async(many[-1], timeout=10) == {"global_mean": 29.5}
        for _ in range(5):
            await engine.submit_async("global_mean", OBESITY)
    # Left with jobs in flight: a blocking drain would have stalled the loop there.
    assert not engine.started
    assert started_in
    assert started_in[0] is not threading.main_thread()
    assert {outcome.status for outcome in outcomes} == {JobStatus.DONE}
    assert runner.calls == 35


async def test_an_exception_inside_async_with_stops_without_draining(tmp_path):
    runner = GatedRunner(gated=False, delay=0.2)
    engine = Engine(tiny_dataset(), workers=1, results_dir=tmp_path / "results", runner=runner)
    job_ids: list[str] = []
    with pytest.raises(RuntimeError, match="the caller's own error"):
        await fail_inside_async(engine, runner, job_ids)
    assert not engine.started
    assert runner.calls < 5
    results = await asyncio.to_thread(recovered_results, tmp_path, job_ids)
    assert results == [{"global_mean": 29.5}] * 5


# --- waiting for a place instead of Overloaded ---------------------------------------------------


@pytest.mark.parametrize("max_requests", [64, 4096])
async def test_a_gather_of_5000_submissions_all_get_in_when_waiting_is_allowed(
    make_engine, max_requests
):
    engine = make_engine(max_requests=max_requests, slot_wait=60, store=MemoryStore())
    job_ids = await asyncio.gather(
        *(engine.submit_async("global_mean", OBESITY) for _ in range(5000))
    )
    assert len(set(job_ids)) == 5000
    assert await engine.result_async(job_ids[-1], timeout=30) == {"global_mean": 29.5}


async def test_without_waiting_a_flood_is_refused_as_the_server_wants(make_engine):
    engine = make_engine(max_requests=64, store=MemoryStore())
    answers = await asyncio.gather(
        *(engine.submit_async("global_mean", OBESITY) for _ in range(2000)),
        return_exceptions=True,
    )
    refused = [answer for answer in answers if isinstance(answer, Overloaded)]
    assert refused
    assert all(isinstance(answer, str | Overloaded) for answer in answers)


def test_threads_wait_for_a_place_too(make_engine):
    engine = make_engine(max_requests=2, slot_wait=30)
    job_ids: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(50):
            job_id = engine.submit("global_mean", OBESITY)
            with lock:
                job_ids.append(job_id)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(set(job_ids)) == 400


def test_a_bounded_wait_ends_in_overloaded_or_in_the_freed_place(make_engine):
    engine = make_engine(max_requests=1, slot_wait=0.1)
    slots = engine._requests
    with slots, pytest.raises(Overloaded, match="too many requests"):
        engine.submit("global_mean", OBESITY)
    engine.slot_wait = 30
    slots.take()
    answers: list[str] = []
    submitter = threading.Thread(
        target=lambda: answers.append(engine.submit("global_mean", OBESITY))
    )
    submitter.start()
    eventually(lambda: slots._threads_waiting == 1)
    slots.give_back()
    submitter.join(30)
    assert answers == ["job_id_1"]


# --- submit_many ---------------------------------------------------------------------------------


def test_submit_many_pipelines_past_the_request_bound(make_engine):
    engine = make_engine(max_requests=4)
    queries = [engine.query("best5", question=q) for q in (OBESITY, MUSCLE)] * 150
    job_ids = engine.submit_many(queries)
    assert job_ids == [f"job_id_{n}" for n in range(1, 301)]
    assert engine.result(job_ids[0], timeout=10) == engine.result(job_ids[2], timeout=10)


async def test_submit_many_async_pipelines_past_the_request_bound(make_engine):
    engine = make_engine(max_requests=4)
    job_ids = await engine.submit_many_async([engine.query("global_mean", question=MUSCLE)] * 300)
    assert sorted(job_ids, key=lambda j: int(j.rsplit("_", 1)[1])) == [
        f"job_id_{n}" for n in range(1, 301)
    ]
    assert await engine.result_async(job_ids[-1], timeout=10) == {"global_mean": 24.375}


def test_submit_many_checks_every_query_before_sending_any(make_engine):
    engine = make_engine()
    good = engine.query("global_mean", question=OBESITY)
    with pytest.raises(InvalidQuery, match="unknown endpoint"):
        engine.submit_many([good, good.__class__("no_such_statistic", OBESITY)])
    assert engine.jobs() == []


def test_submit_many_reports_what_got_in_before_a_refusal(make_engine):
    runner = GatedRunner()
    engine = make_engine(max_pending=5, runner=runner, workers=1)
    with pytest.raises(PartlyAccepted) as refused:
        engine.submit_many([engine.query("global_mean", question=OBESITY)] * 8)
    assert refused.value.accepted == tuple(f"job_id_{n}" for n in range(1, 6))
    assert isinstance(refused.value.error, Overloaded)
    runner.release()
    assert engine.result("job_id_5", timeout=10) == {"global_mean": 29.5}
