"""A Worker between two recording stand-ins (its ResultStore and its Dispatcher).

Jobs come from the store's JournalCommitter, or from the store itself when it moves them
(`RunJob`), and are reported to the store; only `WorkerStopped` and `WorkerDied` go to the
Dispatcher.
"""

from __future__ import annotations

import threading

import pykka
import pytest

from lestats import jsonio
from lestats import messages as m
from lestats.actors.worker import Worker
from lestats.data.query import Query
from lestats.data.statistics import compute
from lestats.testing import MUSCLE, OBESITY, TINY_STATES, Crash

Q1 = Query("global_mean", OBESITY)
Q2 = Query("state_mean_by_category", OBESITY, "Ohio")
Q3 = Query("best5", MUSCLE)


def crash_on(question: str):
    """A runner that crashes the Worker for `question` and computes everything else."""

    def runner(dataset, query):
        if query.question == question:
            raise Crash("the job took the worker down")
        return compute(dataset, query)

    return runner


def fail_on(question: str):
    """A runner that raises ValueError for `question` and computes everything else."""

    def runner(dataset, query):
        if query.question == question:
            raise ValueError(f"cannot answer {question[:10]}")
        return compute(dataset, query)

    return runner


@pytest.fixture
def stand_ins(recorder):
    """A store stand-in and a dispatcher stand-in."""
    return recorder(), recorder()


@pytest.fixture
def start_worker(tiny_dataset, stand_ins):
    started = []
    store, dispatcher = stand_ins

    def start(runner=compute, store_ref=None, dispatcher_ref=None, **options):
        ref = Worker.start(
            tiny_dataset,
            runner,
            store_ref or store.ref,
            dispatcher_ref or dispatcher.ref,
            **options,
        )
        started.append(ref)
        return ref

    yield start
    for ref in started:
        if ref.is_alive():
            ref.stop()


def test_run_job_reports_done_with_the_json_of_compute(tiny_dataset, stand_ins, start_worker):
    store, dispatcher = stand_ins
    worker = start_worker()
    for job_id, query in enumerate((Q1, Q2, Q3), start=1):
        worker.tell(m.RunJob(job_id, query))
    reports = store.take(3)
    assert reports == [
        m.JobDone(job_id, jsonio.dumps(compute(tiny_dataset, query)))
        for job_id, query in enumerate((Q1, Q2, Q3), start=1)
    ]
    assert jsonio.loads(reports[0].result) == {"global_mean": 29.5}
    assert jsonio.loads(reports[1].result) == {
        "Ohio": {"('Age (years)', '18 - 24')": 30.0, "('Age (years)', '25 - 34')": 34.0}
    }
    assert dispatcher.pending() == []


def test_the_dataset_is_shared_not_copied(tiny_dataset, stand_ins, start_worker):
    store, _ = stand_ins
    seen = []

    def runner(dataset, query):
        seen.append(dataset)
        return compute(dataset, query)

    start_worker(runner).tell(m.RunJob(1, Q1))
    store.next()
    assert seen == [tiny_dataset]
    assert seen[0] is tiny_dataset


def test_an_exception_fails_the_job_and_the_worker_goes_on(stand_ins, start_worker):
    store, dispatcher = stand_ins
    worker = start_worker(fail_on(MUSCLE))
    worker.tell(m.RunJob(1, Q3))
    worker.tell(m.RunJob(2, Q1))
    failed, done = store.take(2)
    assert isinstance(failed, m.JobErrored)
    assert failed.job_id == 1
    assert failed.reason == "ValueError: cannot answer Percent of"
    assert isinstance(done, m.JobDone)
    assert done.job_id == 2
    assert worker.is_alive()
    assert dispatcher.pending() == []


def test_a_result_that_is_not_json_fails_the_job(stand_ins, start_worker):
    store, _ = stand_ins
    results = iter([float("nan"), {1, 2}, {"ok": 1.5}])
    worker = start_worker(lambda _dataset, _query: next(results))
    for job_id in (1, 2, 3):
        worker.tell(m.RunJob(job_id, Q1))
    nan, a_set, ok = store.take(3)
    assert isinstance(nan, m.JobErrored)
    assert nan.reason.startswith("ValueError")
    assert isinstance(a_set, m.JobErrored)
    assert a_set.reason.startswith("TypeError")
    assert ok == m.JobDone(3, b'{"ok": 1.5}')
    assert worker.is_alive()


def test_a_fatal_fault_kills_only_this_worker_and_reports_its_job(
    stand_ins, start_worker, recorder
):
    store, dispatcher = stand_ins
    bystander = recorder()
    worker = start_worker(crash_on(MUSCLE))
    worker.tell(m.RunJob(1, Q1))
    worker.tell(m.RunJob(2, Q3))
    worker.tell(m.RunJob(3, Q1))  # queued behind the crash: never run by this worker
    died = dispatcher.next()
    assert isinstance(died, m.WorkerDied)
    assert died.worker == worker.actor_urn
    assert died.job_id == 2
    assert "Crash" in died.reason
    assert "took the worker down" in died.reason
    assert worker.actor_stopped.wait(5)
    # The Worker fails the job that killed it itself, so the store never hands it out again.
    assert store.take(2) == [
        m.JobDone(1, jsonio.dumps({"global_mean": 29.5})),
        m.JobErrored(2, "the worker running it crashed: Crash: the job took the worker down"),
    ]
    assert died.reason == "the worker running it crashed: Crash: the job took the worker down"
    assert store.pending() == []
    assert dispatcher.pending() == []
    with pytest.raises(pykka.ActorDeadError):
        worker.tell(m.RunJob(4, Q1))
    # pykka stops every actor for a raw BaseException; the Worker must not let that happen.
    assert store.ref.is_alive()
    assert dispatcher.ref.is_alive()
    assert bystander.ref.is_alive()
    assert worker not in pykka.ActorRegistry.get_all()


def test_the_crashed_job_is_failed_before_the_death_is_reported(recorder, start_worker):
    # One stand-in as both store and dispatcher: a single inbox shows the worker's send order.
    both = recorder()
    worker = start_worker(crash_on(MUSCLE), store_ref=both.ref, dispatcher_ref=both.ref)
    worker.tell(m.RunJob(5, Q3))
    failed, died = both.take(2)
    assert isinstance(failed, m.JobErrored)
    assert failed.job_id == 5
    assert isinstance(died, m.WorkerDied)
    assert died == m.WorkerDied(worker.actor_urn, 5, failed.reason)
    assert worker.actor_stopped.wait(5)


@pytest.mark.parametrize("fault", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_builtin_base_exceptions_kill_only_the_worker(stand_ins, start_worker, fault):
    store, dispatcher = stand_ins

    def runner(_dataset, _query):
        raise fault

    worker = start_worker(runner)
    worker.tell(m.RunJob(7, Q1))
    died = dispatcher.next()
    assert died.job_id == 7
    assert died.reason.startswith(f"the worker running it crashed: {fault.__name__}")
    failed = store.next()
    assert failed == m.JobErrored(7, died.reason)
    assert worker.actor_stopped.wait(5)
    assert store.ref.is_alive()
    assert dispatcher.ref.is_alive()


def test_poison_stops_the_worker_after_the_jobs_before_it(recorder, start_worker):
    # One stand-in as both store and dispatcher: a single inbox shows the worker's send order.
    both = recorder()
    worker = start_worker(store_ref=both.ref, dispatcher_ref=both.ref)
    queries = [Query("state_mean", OBESITY, state) for state in TINY_STATES] * 5
    for job_id, query in enumerate(queries, start=1):
        worker.tell(m.RunJob(job_id, query))
    worker.tell(m.Poison())
    messages = both.take(len(queries) + 1)
    assert [type(message) for message in messages] == [m.JobDone] * len(queries) + [m.WorkerStopped]
    assert [message.job_id for message in messages[:-1]] == list(range(1, len(queries) + 1))
    assert messages[-1] == m.WorkerStopped(worker.actor_urn)
    assert worker.actor_stopped.wait(5)
    assert both.pending() == []


def test_unknown_message_is_logged_and_the_worker_goes_on(stand_ins, start_worker, caplog):
    store, _ = stand_ins
    worker = start_worker()
    worker.tell({"not": "a message"})
    worker.tell(m.RunJob(1, Q1))
    assert isinstance(store.next(), m.JobDone)
    assert worker.is_alive()
    assert any("not" in record.getMessage() for record in caplog.records)


def test_abandon_skips_queued_jobs_but_finishes_the_running_one(tiny_dataset, recorder):
    both = recorder()
    abandon = threading.Event()
    started, gate = threading.Event(), threading.Event()

    def runner(dataset, query):
        started.set()
        gate.wait(5)
        return compute(dataset, query)

    worker = Worker.start(tiny_dataset, runner, both.ref, both.ref, abandon)
    try:
        worker.tell(m.RunJob(1, Q1))
        worker.tell(m.RunJob(2, Q2))
        worker.tell(m.Poison())
        assert started.wait(5)
        abandon.set()  # a shutdown without drain, while job 1 runs
        gate.set()
        assert both.take(2) == [
            m.JobDone(1, jsonio.dumps({"global_mean": 29.5})),
            m.WorkerStopped(worker.actor_urn),
        ]
        assert worker.actor_stopped.wait(5)
        assert both.pending() == []
    finally:
        gate.set()
        if worker.is_alive():
            worker.stop()


# --- the memo of encoded results -----------------------------------------------------------------


class CountingRunner:
    """A runner that notes every query it is called with, then answers with `answer`."""

    def __init__(self, answer=compute) -> None:
        self.answer = answer
        self.calls: list[Query] = []

    def __call__(self, dataset, query):
        self.calls.append(query)
        return self.answer(dataset, query)


def sized(size: int):
    """An answer whose JSON encoding is `size` bytes: a string of `size - 2` x's."""
    return lambda _dataset, _query: "x" * (size - 2)


def run_all(worker, store, queries, first_id=1):
    """Run `queries` as jobs numbered from `first_id`; the store stand-in's reports."""
    for job_id, query in enumerate(queries, start=first_id):
        worker.tell(m.RunJob(job_id, query))
    return store.take(len(queries))


def test_with_a_memo_a_repeated_query_runs_once_and_gets_the_same_bytes(
    tiny_dataset, stand_ins, start_worker
):
    store, _ = stand_ins
    runner = CountingRunner()
    worker = start_worker(runner, memo_bytes=1 << 20)
    queries = (Q1, Q2, Q1, Q1, Q2, Q3)
    reports = run_all(worker, store, queries)
    assert runner.calls == [Q1, Q2, Q3]
    assert reports == [
        m.JobDone(job_id, jsonio.dumps(compute(tiny_dataset, query)))
        for job_id, query in enumerate(queries, start=1)
    ]
    assert reports[0].result == reports[2].result == reports[3].result


@pytest.mark.parametrize("options", [{}, {"memo_bytes": 0}], ids=["default", "zero"])
def test_without_a_memo_the_runner_runs_for_every_job(stand_ins, start_worker, options):
    store, _ = stand_ins
    runner = CountingRunner()
    worker = start_worker(runner, **options)
    reports = run_all(worker, store, (Q1, Q1, Q2, Q1))
    assert runner.calls == [Q1, Q1, Q2, Q1]
    assert [type(report) for report in reports] == [m.JobDone] * 4


@pytest.mark.parametrize(("size", "fits"), [(100, 8), (50, 16)])
def test_the_memo_is_bounded_in_bytes_and_forgets_the_least_recently_used(
    stand_ins, start_worker, size, fits
):
    store, _ = stand_ins
    runner = CountingRunner(sized(size))
    worker = start_worker(runner, memo_bytes=800)  # `fits` results of `size` bytes
    q = [Query("state_mean", OBESITY, f"S{n}") for n in range(fits + 2)]
    reports = run_all(worker, store, q[:fits])
    reports += run_all(worker, store, q[:fits], first_id=fits + 1)  # all still there
    assert runner.calls == q[:fits]
    assert {report.result for report in reports} == {jsonio.dumps("x" * (size - 2))}
    assert len(reports[0].result) == size
    more = [q[fits], q[1], q[fits + 1], q[0], q[1]]
    run_all(worker, store, more, first_id=2 * fits + 1)
    # q[fits] pushes out q[0]; q[1], used again, is kept while q[2] goes for q[fits + 1]; q[0]
    # runs again.
    assert runner.calls == [*q[:fits], q[fits], q[fits + 1], q[0]]


@pytest.mark.parametrize(("size", "calls"), [(100, 1), (101, 2)])
def test_a_result_larger_than_an_eighth_of_the_memo_is_not_kept(
    stand_ins, start_worker, size, calls
):
    store, _ = stand_ins
    runner = CountingRunner(sized(size))
    worker = start_worker(runner, memo_bytes=800)
    reports = run_all(worker, store, (Q1, Q1))
    assert len(runner.calls) == calls
    assert reports[0].result == reports[1].result
    assert len(reports[0].result) == size


@pytest.mark.parametrize("fault", ["raises", "not JSON"])
def test_a_failed_job_is_not_memoized(stand_ins, start_worker, fault):
    store, _ = stand_ins
    answers = iter([None, {"ok": 1.5}])

    def answer(_dataset, _query):
        value = next(answers)
        if value is None:
            if fault == "raises":
                raise ValueError("not this time")
            return float("nan")
        return value

    runner = CountingRunner(answer)
    worker = start_worker(runner, memo_bytes=1 << 20)
    failed, done, again = run_all(worker, store, (Q1, Q1, Q1))
    assert isinstance(failed, m.JobErrored)
    assert failed.job_id == 1
    assert done == m.JobDone(2, b'{"ok": 1.5}')
    assert again == m.JobDone(3, b'{"ok": 1.5}')
    assert runner.calls == [Q1, Q1]  # run again after the failure, then from the memo
