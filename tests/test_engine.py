"""The embedding facade, blocking methods: what an embedder (and the HTTP front end) sees."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pykka
import pytest

from lestats import jsonio
from lestats import messages as m
from lestats.actors import engine as engine_module
from lestats.actors.engine import Engine, default_workers
from lestats.actors.jobs import RUNNING, JobStatus
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import COURSE_STATISTICS as ENDPOINTS
from lestats.data.statistics import compute, default_registry
from lestats.errors import InvalidQuery, JobFailed, Overloaded, ShuttingDown, UnknownJob
from lestats.stores.files import JOURNAL_NAME
from lestats.testing import MUSCLE, OBESITY, TINY_STATES, GatedRunner, TellSpy, eventually


@pytest.fixture
def engine(make_engine):
    return make_engine()


def expected(dataset, endpoint, question, state=None):
    return compute(dataset, Query(endpoint, question, state))


def actor_classes():
    """How many actors of each class are registered."""
    return Counter(ref.actor_class.__name__ for ref in pykka.ActorRegistry.get_all())


def test_submit_and_read_back(engine, tiny_dataset, results_dir):
    job = engine.submit("state_mean_by_category", OBESITY, "Ohio")
    assert job == "job_id_1"
    data = engine.result(job, timeout=5)
    assert data == expected(tiny_dataset, "state_mean_by_category", OBESITY, "Ohio")
    assert engine.status(job) is JobStatus.DONE
    assert engine.status("1") is JobStatus.DONE
    assert engine.status(1) is JobStatus.DONE
    outcome = engine.outcome(job)
    assert json.loads(outcome.result) == data
    assert (results_dir / "job_id_1.json").read_bytes() == outcome.result
    assert engine.jobs() == [("job_id_1", JobStatus.DONE)]
    assert engine.num_jobs() == 0


def test_every_endpoint(engine, tiny_dataset):
    jobs = {}
    for endpoint in ENDPOINTS:
        for question in (OBESITY, MUSCLE):
            jobs[endpoint, question] = engine.submit(endpoint, question, "Texas")
    assert [job for job, _ in engine.jobs()] == [f"job_id_{n}" for n in range(1, 19)]
    for (endpoint, question), job in jobs.items():
        state = "Texas" if endpoint.startswith("state_") else None
        assert engine.result(job, timeout=5) == expected(tiny_dataset, endpoint, question, state)


def test_ids_rise_by_one_and_jobs_lists_them_in_order(engine):
    runner_free = [engine.submit("global_mean", OBESITY) for _ in range(20)]
    assert runner_free == [f"job_id_{n}" for n in range(1, 21)]
    for job in runner_free:
        engine.wait(job, timeout=5)
    assert engine.jobs() == [(job, JobStatus.DONE) for job in runner_free]


def test_an_issued_id_is_never_unknown(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    jobs = [engine.submit("best5", MUSCLE) for _ in range(5)]
    assert [engine.status(job) for job in jobs] == [JobStatus.RUNNING] * 5
    assert engine.num_jobs() == 5
    assert engine.jobs() == [(job, JobStatus.RUNNING) for job in jobs]
    runner.gate.set()
    assert [engine.wait(job, timeout=5).status for job in jobs] == [JobStatus.DONE] * 5


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("no_such_endpoint", OBESITY), default_registry().names),
        (("global_mean", "How tall are adults?"), BEST_IS_MIN + BEST_IS_MAX),
        (("state_mean", OBESITY, "Atlantis"), TINY_STATES),
        (("state_mean", OBESITY), None),
        (("state_mean", OBESITY, 7), None),
        (("best5", None), None),
        (("best5", ["a question"]), None),
    ],
)
def test_invalid_queries_are_refused_without_using_an_id(engine, args, allowed):
    with pytest.raises(InvalidQuery) as refused:
        engine.submit(*args)
    assert refused.value.allowed == allowed
    assert refused.value.reason
    assert engine.jobs() == []
    assert engine.submit("global_mean", OBESITY) == "job_id_1"


@pytest.mark.parametrize("job_id", ["job_id_1", "1", 1, "job_id_0", "../x", "007", None, True])
def test_unknown_jobs(engine, job_id):
    with pytest.raises(UnknownJob):
        engine.outcome(job_id)
    with pytest.raises(UnknownJob):
        engine.status(job_id)
    with pytest.raises(UnknownJob):
        engine.wait(job_id, timeout=1)
    with pytest.raises(UnknownJob):
        engine.result(job_id, timeout=1)


def test_a_failing_job_is_an_error_and_the_engine_goes_on(make_engine):
    runner = GatedRunner(gated=False, fail=lambda query: query.question == MUSCLE)
    engine = make_engine(runner=runner)
    bad, good = engine.submit("best5", MUSCLE), engine.submit("best5", OBESITY)
    with pytest.raises(JobFailed) as failed:
        engine.result(bad, timeout=5)
    assert failed.value.job_id == bad
    assert failed.value.reason == "ValueError: this job fails"
    outcome = engine.outcome(bad)
    assert outcome.status is JobStatus.ERROR
    assert outcome.reason == "ValueError: this job fails"
    assert engine.result(good, timeout=5)
    assert engine.jobs() == [(bad, JobStatus.ERROR), (good, JobStatus.DONE)]


def test_a_crashing_job_is_an_error_and_its_worker_is_replaced(make_engine, tiny_dataset):
    runner = GatedRunner(crash=lambda query: query.state == "Ohio")
    engine = make_engine(runner=runner, workers=1)
    jobs = [engine.submit("state_mean", OBESITY, state) for state in TINY_STATES * 2]
    runner.gate.set()
    for job, state in zip(jobs, TINY_STATES * 2, strict=True):
        if state == "Ohio":
            with pytest.raises(JobFailed, match="crashed"):
                engine.result(job, timeout=5)
        else:
            assert engine.result(job, timeout=5) == expected(
                tiny_dataset, "state_mean", OBESITY, state
            )
    assert runner.crashes == 2
    assert runner.calls == len(jobs)  # the crashed jobs were not run again
    assert engine.num_jobs() == 0
    assert engine.result(engine.submit("best5", MUSCLE), timeout=5)


def test_wait_and_result_time_out_while_running(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = engine.submit("global_mean", OBESITY)
    assert engine.wait(job, timeout=0.05) == RUNNING
    with pytest.raises(TimeoutError, match="still running"):
        engine.result(job, timeout=0.05)
    runner.gate.set()
    assert engine.result(job, timeout=5) == {"global_mean": 29.5}
    assert engine.wait(job, timeout=5).status is JobStatus.DONE


def test_a_wait_that_times_out_leaves_no_watcher_behind(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = engine.submit("best5", MUSCLE)
    spy = engine._store = TellSpy(engine._store)
    for _ in range(50):
        assert engine.wait(job, timeout=0.01) == RUNNING
    with pytest.raises(TimeoutError):
        engine.result(job, timeout=0.01)
    watches, unwatches = spy.of_type(m.WatchJob), spy.of_type(m.Unwatch)
    assert len(watches) == 51
    # Each waiter that gave up told the store so, with the reply it no longer waits on.
    assert [(u.job_id, u.reply) for u in unwatches] == [(w.job_id, w.reply) for w in watches]
    runner.gate.set()
    assert engine.wait(job, timeout=5).status is JobStatus.DONE
    # The store forgot them: finishing the job settled none (a kept watcher would be settled).
    assert not any(watch.reply.done() for watch in watches)
    assert engine.num_jobs() == 0


def test_backpressure_on_pending_jobs(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, max_pending=2)
    first, second = engine.submit("best5", OBESITY), engine.submit("worst5", OBESITY)
    with pytest.raises(Overloaded) as refused:
        engine.submit("global_mean", OBESITY)
    assert refused.value.retry_after > 0
    assert engine.num_jobs() == 2
    assert [job for job, _ in engine.jobs()] == [first, second]  # no id used up
    runner.gate.set()
    for job in (first, second):
        engine.wait(job, timeout=5)
    later = [engine.submit("global_mean", OBESITY) for _ in range(2)]
    assert later == ["job_id_3", "job_id_4"]
    assert [engine.result(job, timeout=5) for job in later] == [{"global_mean": 29.5}] * 2


def test_backpressure_on_waiters_leaves_other_requests_alone(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner, max_waiters=2, max_requests=1)
    job = engine.submit("best5", OBESITY)
    waiters = [threading.Thread(target=engine.wait, args=(job, 10)) for _ in range(2)]
    for waiter in waiters:
        waiter.start()
    try:
        # Once both waiter places are held, a third waiter is refused at once, naming the bound.
        eventually(lambda: engine.waiting == 2)
        with pytest.raises(Overloaded, match="waiter bound"):
            engine.wait(job, 10)
        # The single request place is still free: waiters do not hold it.
        assert engine.num_jobs() == 1
        assert engine.status(job) is JobStatus.RUNNING
    finally:
        runner.gate.set()
        for waiter in waiters:
            waiter.join(5)
    assert engine.waiting == 0
    assert engine.num_jobs() == 0
    assert engine.result(job, timeout=5)


def test_graceful_shutdown_finishes_queued_jobs(make_engine, tiny_dataset):
    runner = GatedRunner(delay=0.002)
    engine = make_engine(runner=runner)
    jobs = [engine.submit("state_mean", OBESITY, state) for state in TINY_STATES * 10]
    drained = engine.begin_shutdown()
    assert engine.begin_shutdown() is drained
    assert not engine.accepting
    with pytest.raises(ShuttingDown):
        engine.submit("global_mean", OBESITY)
    assert not drained.done()
    assert engine.num_jobs() == len(jobs)
    runner.gate.set()
    assert drained.result(timeout=10) is None
    assert engine.drained
    # Reads keep working between the drain and the stop.
    assert engine.jobs() == [(job, JobStatus.DONE) for job in jobs]
    assert engine.num_jobs() == 0
    for job, state in zip(jobs, TINY_STATES * 10, strict=True):
        assert engine.result(job, timeout=5) == expected(tiny_dataset, "state_mean", OBESITY, state)
    with pytest.raises(ShuttingDown):
        engine.submit("global_mean", OBESITY)  # used up no id
    assert len(engine.jobs()) == len(jobs)
    engine.shutdown()
    assert not engine.started
    with pytest.raises(ShuttingDown):
        engine.status(jobs[0])
    with pytest.raises(ShuttingDown):
        engine.submit("global_mean", OBESITY)
    engine.shutdown()  # again: nothing to do


def test_shutdown_timeout_stops_nothing(make_engine):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = engine.submit("best5", MUSCLE)
    with pytest.raises(TimeoutError):
        engine.shutdown(timeout=0.05)
    assert engine.started
    assert engine.status(job) is JobStatus.RUNNING
    runner.gate.set()
    engine.shutdown(timeout=5)
    assert not engine.started
    eventually(lambda: pykka.ActorRegistry.get_all() == [])


def test_context_manager(tiny_dataset, results_dir):
    with Engine(tiny_dataset, workers=3, results_dir=results_dir) as engine:
        assert engine.started
        assert engine.accepting
        # N + 3 actors: the store, its journal committer, the dispatcher and 3 workers (spawned
        # in the dispatcher's own thread).
        eventually(lambda: len(pykka.ActorRegistry.get_all()) == 6)
        assert actor_classes() == {
            "ResultStore": 1,
            "JournalCommitter": 1,
            "Dispatcher": 1,
            "Worker": 3,
        }
        job = engine.submit("worst5", OBESITY)
        assert engine.result(job, timeout=5)
    assert not engine.started
    eventually(lambda: pykka.ActorRegistry.get_all() == [])


def test_start_twice_is_refused(engine):
    with pytest.raises(RuntimeError, match="starts once"):
        engine.start()
    engine.begin_shutdown()
    with pytest.raises(RuntimeError, match="starts once"):
        engine.start()
    engine.shutdown(timeout=5)
    eventually(lambda: pykka.ActorRegistry.get_all() == [])


def test_start_after_shutdown_is_refused_and_a_new_engine_carries_on(tiny_dataset, results_dir):
    engine = Engine(tiny_dataset, workers=1, results_dir=results_dir)
    engine.start()
    job = engine.submit("best5", OBESITY)
    data = engine.result(job, timeout=5)
    engine.shutdown()
    with pytest.raises(RuntimeError, match="make a new one"):
        engine.start()
    assert not engine.started
    assert not engine.accepting
    eventually(lambda: pykka.ActorRegistry.get_all() == [])  # the refused start started nothing
    with Engine(tiny_dataset, workers=1, results_dir=results_dir) as again:
        assert again.result(job, timeout=5) == data
        assert again.submit("best5", OBESITY) == "job_id_2"


def test_not_started(tiny_dataset, results_dir):
    engine = Engine(tiny_dataset, workers=1, results_dir=results_dir)
    assert not engine.started
    assert not engine.accepting
    with pytest.raises(ShuttingDown):
        engine.submit("best5", OBESITY)
    with pytest.raises(ShuttingDown):
        engine.num_jobs()
    engine.shutdown()  # nothing to do


def test_two_engines_in_one_process(make_engine, tmp_path):
    first = make_engine(results_dir=tmp_path / "one", workers=1)
    second = make_engine(results_dir=tmp_path / "two", workers=2)
    assert first.submit("best5", OBESITY) == "job_id_1"
    assert second.submit("best5", MUSCLE) == "job_id_1"  # numbering is per engine
    assert first.result("job_id_1", timeout=5) != second.result("job_id_1", timeout=5)
    second_actors = [second._store, second._dispatcher]
    first.shutdown()
    assert not first.started
    assert all(ref.is_alive() for ref in second_actors)
    # Left: the second engine's store, journal committer, dispatcher and 2 workers.
    eventually(lambda: len(pykka.ActorRegistry.get_all()) == 5)
    assert actor_classes() == {
        "ResultStore": 1,
        "JournalCommitter": 1,
        "Dispatcher": 1,
        "Worker": 2,
    }
    job = second.submit("global_mean", OBESITY)
    assert job == "job_id_2"
    assert second.result(job, timeout=5) == {"global_mean": 29.5}
    assert second.jobs() == [("job_id_1", JobStatus.DONE), ("job_id_2", JobStatus.DONE)]
    second.shutdown()
    eventually(lambda: pykka.ActorRegistry.get_all() == [])


def test_restart_continues_numbering_and_reruns_unfinished_jobs(make_engine, results_dir):
    first = make_engine()
    old = [first.submit("state_mean", OBESITY, state) for state in TINY_STATES[:3]]
    old_data = [first.result(job, timeout=5) for job in old]
    first.shutdown()
    # A job accepted (journaled) whose result never came: as after a kill mid-job.
    with (results_dir / JOURNAL_NAME).open("a") as journal:
        journal.write(json.dumps({"job": 4, "endpoint": "global_mean", "question": MUSCLE}) + "\n")
    second = make_engine()
    assert second.result("job_id_4", timeout=5) == {"global_mean": 24.375}
    assert [second.result(job, timeout=5) for job in old] == old_data
    assert second.submit("best5", OBESITY) == "job_id_5"
    assert second.jobs()[:4] == [(f"job_id_{n}", JobStatus.DONE) for n in range(1, 5)]


def test_shutdown_without_drain_keeps_queued_jobs_for_the_next_start(make_engine, tiny_dataset):
    runner = GatedRunner()
    first = make_engine(runner=runner, workers=1)
    jobs = [first.submit("state_mean", MUSCLE, state) for state in TINY_STATES]
    runner.wait_started()  # job 1 is running, the others are queued behind it
    stopper = threading.Thread(target=first.shutdown, kwargs={"timeout": 10, "drain": False})
    stopper.start()
    try:
        runner.gate.set()
    finally:
        stopper.join(10)
    assert not first.started
    assert runner.calls == 1  # the running job finished; the queued ones were not started
    second = make_engine(workers=1)
    for job, state in zip(jobs, TINY_STATES, strict=True):
        assert second.result(job, timeout=5) == expected(tiny_dataset, "state_mean", MUSCLE, state)
    assert second.submit("best5", OBESITY) == "job_id_5"


def test_deleted_result_file_is_an_error_and_the_engine_keeps_serving(make_engine, results_dir):
    engine = make_engine(cache_bytes=0)
    job = engine.submit("best5", OBESITY)
    engine.wait(job, timeout=5)
    (results_dir / "job_id_1.json").unlink()
    outcome = engine.outcome(job)
    assert outcome.status is JobStatus.ERROR
    assert outcome.reason
    with pytest.raises(JobFailed):
        engine.result(job, timeout=5)
    assert engine.result(engine.submit("best5", OBESITY), timeout=5)


def test_results_are_served_byte_for_byte(engine, results_dir):
    job = engine.submit("states_mean", OBESITY)
    data = engine.result(job, timeout=5)
    assert engine.outcome(job).result == jsonio.dumps(data)
    assert (results_dir / "job_id_1.json").read_bytes() == jsonio.dumps(data)


@pytest.mark.parametrize(
    ("configured", "workers"), [("3", 3), (" 5 ", 5), ("0", None), ("x", None), ("", None)]
)
def test_default_workers(monkeypatch, configured, workers):
    monkeypatch.setenv("TP_NUM_OF_THREADS", configured)
    monkeypatch.setattr(engine_module.os, "cpu_count", lambda: 7)
    assert default_workers() == (workers or 7)


class _HeldLock:
    """Stands in for `Engine._lock`: a thread named `late` waits at it until `release` is set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = threading.Event()
        self.release = threading.Event()

    def __enter__(self) -> None:
        if threading.current_thread().name == "late":
            self.waiting.set()
            self.release.wait(5)
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def test_a_shutdown_overtaken_by_begin_shutdown_returns_quietly(make_engine):
    """The HTTP front end calls `begin_shutdown` on its own: it may overtake a `shutdown()`."""
    engine = make_engine()
    job = engine.submit("best5", OBESITY)
    engine._lock = lock = _HeldLock()
    spy = engine._dispatcher = TellSpy(engine._dispatcher)
    errors = []

    def late() -> None:
        try:
            engine.shutdown(timeout=5)
        except Exception as exc:  # noqa: BLE001 - any error is the failure
            errors.append(exc)

    overtaken = threading.Thread(target=late, name="late")
    overtaken.start()
    try:
        assert lock.waiting.wait(5)  # inside shutdown(), waiting at begin_shutdown's lock
        drained = engine.begin_shutdown()  # overtakes it: sends the poison
        assert drained.result(timeout=5) is None
        assert engine.outcome(job).status is JobStatus.DONE  # queries work until the stop
    finally:
        lock.release.set()
        overtaken.join(10)
    assert not overtaken.is_alive()
    assert errors == []
    assert not engine.started
    assert len(spy.of_type(m.Poison)) == 1  # the overtaken shutdown sent no second poison


class _StopSpy(TellSpy):
    """A `TellSpy` that also counts the calls to `stop`."""

    def __init__(self, ref: pykka.ActorRef) -> None:
        super().__init__(ref)
        self.stops = 0

    def stop(self, *args: object, **kwargs: object) -> object:
        self.stops += 1
        return self.ref.stop(*args, **kwargs)


class _CountedLock:
    """Stands in for `Engine._stopping`: counts the threads that reached it and that got it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.arrived = 0
        self.acquired = 0

    def __enter__(self) -> None:
        with self._count_lock:
            self.arrived += 1
        self._lock.acquire()
        with self._count_lock:
            self.acquired += 1

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def test_two_threads_call_shutdown_at_once_both_return(make_engine, results_dir):
    runner = GatedRunner()
    engine = make_engine(runner=runner)
    job = engine.submit("best5", OBESITY)
    runner.wait_started()  # the job holds the drain until the gate opens
    engine._stopping = lock = _CountedLock()
    store = engine._store
    spy = engine._store = _StopSpy(store)
    errors, seen = [], []

    def stop() -> None:
        try:
            engine.shutdown(timeout=5)
        except Exception as exc:  # noqa: BLE001 - any error is the failure
            errors.append(exc)
        else:  # what this caller sees as it returns
            seen.append((store.actor_stopped.is_set(), engine.started))

    stoppers = [threading.Thread(target=stop) for _ in range(2)]
    for stopper in stoppers:
        stopper.start()
    eventually(lambda: lock.arrived == 2)  # both are in shutdown(): one drains...
    assert lock.acquired == 1  # ...the other waits for it
    assert all(stopper.is_alive() for stopper in stoppers)
    assert not engine.accepting
    assert engine.started
    runner.gate.set()
    for stopper in stoppers:
        stopper.join(10)
    assert not any(stopper.is_alive() for stopper in stoppers)
    assert errors == []
    # The second returned only once the first had stopped everything.
    assert seen == [(True, False), (True, False)]
    assert spy.stops == 1  # the second found the engine stopped: it stopped nothing again
    assert lock.acquired == 2
    assert engine.drained
    assert pykka.ActorRegistry.get_all() == []
    assert (results_dir / f"{job}.json").exists()  # the job finished before the stop
    engine.shutdown(timeout=1)  # a third, later call returns at once
