"""The Dispatcher: round-robin, the poison behind the work, supervision of its Workers."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from conftest import BOOM, MUSCLE, OBESITY, TINY_STATES, Crash, GatedRunner, ask, eventually

from lestats import jsonio
from lestats.actors import messages as m
from lestats.actors.dispatcher import Dispatcher
from lestats.actors.jobs import JobOutcome, JobStatus
from lestats.actors.journal import Journal
from lestats.actors.worker import Worker
from lestats.data.query import Query
from lestats.data.statistics import compute
from lestats.errors import ShuttingDown

QUERIES = [
    Query("state_mean", question, state) for question in (OBESITY, MUSCLE) for state in TINY_STATES
]


def crash_query(n: int = 0) -> Query:
    return Query("global_mean", OBESITY if n % 2 == 0 else MUSCLE, BOOM)


@pytest.fixture
def start_dispatcher(start_store):
    """Start Dispatchers (with a fresh ResultStore unless given); stop any left at teardown."""
    started = []

    def start(spawn_worker, workers=1, store=None):
        store = store if store is not None else start_store()
        spawned = []

        def counting_spawn(dispatcher):
            worker = spawn_worker(dispatcher)
            spawned.append(worker)
            return worker

        ref = Dispatcher.start(store, counting_spawn, workers)
        started.append(ref)
        # The Workers are spawned in the Dispatcher's own thread (on_start): wait for them.
        eventually(lambda: len(spawned) >= workers)
        return ref, store

    yield start
    for ref in started:
        if ref.is_alive():
            ref.stop()


@pytest.fixture
def spawn_recorders(recorder):
    """`(spawn_worker, spawned)`: spawns recording stand-ins in place of Workers."""
    spawned = []

    def spawn(_dispatcher):
        recording = recorder()
        spawned.append(recording)
        return recording.ref

    return spawn, spawned


@pytest.fixture
def real_workers(tiny_dataset):
    """`make(store, runner) -> (spawn_worker, spawned)` spawning real Workers."""

    def make(store, runner):
        spawned = []

        def spawn(dispatcher):
            ref = Worker.start(tiny_dataset, runner, store, dispatcher)
            spawned.append(ref)
            return ref

        return spawn, spawned

    return make


@pytest.fixture
def engine_parts(start_store, start_dispatcher, real_workers):
    """`make(runner, workers) -> (dispatcher, store, spawned)` wired like the Engine does."""

    def make(runner, workers=1):
        store = start_store()
        spawn, spawned = real_workers(store, runner)
        dispatcher, _ = start_dispatcher(spawn, workers, store)
        return dispatcher, store, spawned

    return make


def submit(dispatcher, query):
    return ask(dispatcher, m.SubmitJob(query))


def watch(store, job_id):
    return ask(store, m.WatchJob(job_id), timeout=10)


def drain(dispatcher):
    poison = m.Poison()
    dispatcher.tell(poison)
    return poison.drained


def expected(dataset, query):
    return JobOutcome(JobStatus.DONE, jsonio.dumps(compute(dataset, query)))


# --- round robin -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_round_robin(start_dispatcher, spawn_recorders, workers):
    spawn, spawned = spawn_recorders
    dispatcher, store = start_dispatcher(spawn, workers)
    assert len(spawned) == workers
    queries = QUERIES[:7]
    ids = [submit(dispatcher, query) for query in queries]
    assert ids == list(range(1, 8))
    jobs = [m.RunJob(job_id, query) for job_id, query in zip(ids, queries, strict=True)]
    for slot, recording in enumerate(spawned):
        mine = jobs[slot::workers]
        assert recording.take(len(mine)) == mine
        assert recording.pending() == []
    assert ask(store, m.ListJobs()) == tuple((job_id, JobStatus.RUNNING) for job_id in ids)


def test_the_store_knows_which_worker_holds_each_job(start_dispatcher, spawn_recorders):
    spawn, spawned = spawn_recorders
    dispatcher, store = start_dispatcher(spawn, 2)
    ids = [submit(dispatcher, query) for query in QUERIES[:5]]
    first = spawned[0].ref.actor_urn
    probe = m.Reassign(dead=first, crashed_job=None, reason="probe", replacement="urn:probe")
    assert ask(store, probe) == tuple((job_id, QUERIES[job_id - 1]) for job_id in ids[0::2])


def test_needs_at_least_one_worker(start_store, spawn_recorders):
    spawn, spawned = spawn_recorders
    with pytest.raises(ValueError, match="at least one worker"):
        Dispatcher.start(start_store(), spawn, 0)
    assert spawned == []


def test_unknown_message_is_logged_and_the_dispatcher_goes_on(
    start_dispatcher, spawn_recorders, caplog
):
    spawn, spawned = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, 1)
    with caplog.at_level(logging.WARNING):
        dispatcher.tell("what is this")
        assert submit(dispatcher, QUERIES[0]) == 1
    assert any("what is this" in record.getMessage() for record in caplog.records)
    assert spawned[0].next() == m.RunJob(1, QUERIES[0])


# --- the poison ----------------------------------------------------------------------------------


def test_poison_travels_behind_the_jobs(start_store, start_dispatcher, spawn_recorders):
    spawn, spawned = spawn_recorders
    store = start_store()
    dispatcher, _ = start_dispatcher(spawn, 2, store)
    ids = [submit(dispatcher, query) for query in QUERIES[:5]]
    poison = m.Poison()
    dispatcher.tell(poison)
    late = m.Poison()
    dispatcher.tell(late)  # a second poison just waits for the first
    for slot, recording in enumerate(spawned):
        received = recording.take(len(ids[slot::2]) + 1)
        assert [message.job_id for message in received[:-1]] == ids[slot::2]
        assert isinstance(received[-1], m.Poison)
        assert received[-1].drained is poison.drained
    with pytest.raises(ShuttingDown):
        submit(dispatcher, QUERIES[0])
    dispatcher.tell(m.WorkerStopped(spawned[0].ref.actor_urn))
    assert not poison.drained.done()
    dispatcher.tell(m.WorkerStopped(spawned[1].ref.actor_urn))
    assert poison.drained.result(timeout=5) is None
    assert late.drained.result(timeout=5) is None
    assert dispatcher.actor_stopped.wait(5)
    # The stand-ins never ran the jobs: they stay unfinished, in the journal, for the next start.
    assert ask(store, m.ListJobs()) == tuple((job_id, JobStatus.RUNNING) for job_id in ids)
    store.stop()
    restarted = start_store()
    assert [job_id for job_id, _ in ask(restarted, m.TakeRecovered())] == ids


def test_poison_is_handled_after_every_job_sent_before_it(tiny_dataset, engine_parts):
    runner = GatedRunner(gated=False, delay=0.002)
    dispatcher, store, workers = engine_parts(runner, 3)
    queries = QUERIES * 8
    submissions = [m.SubmitJob(query) for query in queries]
    for submission in submissions:
        dispatcher.tell(submission)  # none waited for: all in the mailbox ahead of the poison
    drained = drain(dispatcher)
    assert drained.result(timeout=10) is None
    ids = [submission.reply.result(timeout=0) for submission in submissions]
    assert ids == list(range(1, len(queries) + 1))
    assert runner.calls == len(queries)
    for job_id, query in zip(ids, queries, strict=True):
        assert ask(store, m.GetOutcome(job_id)) == expected(tiny_dataset, query)
    assert ask(store, m.CountPending()) == 0
    assert dispatcher.actor_stopped.wait(5)
    assert all(worker.actor_stopped.wait(5) for worker in workers)


def test_a_job_after_the_poison_is_refused(engine_parts):
    runner = GatedRunner()
    dispatcher, store, _ = engine_parts(runner, 2)
    first = submit(dispatcher, QUERIES[0])
    drained = drain(dispatcher)
    with pytest.raises(ShuttingDown):
        submit(dispatcher, QUERIES[1])
    assert not drained.done()
    assert ask(store, m.ListJobs()) == ((first, JobStatus.RUNNING),)  # no id used up
    runner.gate.set()
    assert drained.result(timeout=5) is None
    assert ask(store, m.GetOutcome(first)).status is JobStatus.DONE


def test_drain_with_no_jobs(engine_parts):
    dispatcher, store, workers = engine_parts(GatedRunner(gated=False), 3)
    assert drain(dispatcher).result(timeout=5) is None
    assert dispatcher.actor_stopped.wait(5)
    assert all(worker.actor_stopped.wait(5) for worker in workers)
    assert ask(store, m.ListJobs()) == ()


# --- supervision ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_a_dead_worker_is_replaced_and_its_queued_jobs_move(tiny_dataset, engine_parts, workers):
    runner = GatedRunner()
    dispatcher, store, spawned = engine_parts(runner, workers)
    # Every worker is held at the gate on its first job; the crash job is the second one sent,
    # so with one worker it crashes with jobs queued behind it, with two it is worker 2's first.
    queries = [QUERIES[0], crash_query(), *QUERIES[1:7]]
    ids = [submit(dispatcher, query) for query in queries]
    crashed = ids[1]
    runner.gate.set()
    outcomes = {job_id: watch(store, job_id) for job_id in ids}
    assert outcomes[crashed].status is JobStatus.ERROR
    assert "crashed" in outcomes[crashed].reason
    assert "took the worker down" in outcomes[crashed].reason
    for job_id, query in zip(ids, queries, strict=True):
        if job_id != crashed:
            assert outcomes[job_id] == expected(tiny_dataset, query)
    assert runner.crashes == 1
    assert len(spawned) == workers + 1
    assert spawned[workers - 1].actor_stopped.wait(5)  # the one that held the crash job
    assert ask(store, m.CountPending()) == 0
    assert all(status is not JobStatus.RUNNING for _, status in ask(store, m.ListJobs()))
    # The replacement takes its share of the new work.
    later = [submit(dispatcher, query) for query in QUERIES[:4]]
    assert [watch(store, job_id).status for job_id in later] == [JobStatus.DONE] * 4
    assert drain(dispatcher).result(timeout=5) is None


def test_a_crash_during_the_drain(engine_parts):
    runner = GatedRunner()
    dispatcher, store, spawned = engine_parts(runner, 1)
    queries = [QUERIES[0], crash_query(), QUERIES[1], QUERIES[2]]
    ids = [submit(dispatcher, query) for query in queries]
    drained = drain(dispatcher)  # the poison is queued behind the crash
    # Once a job is refused, the Dispatcher has sent the poison on: the Worker still lives then.
    # (Without this, the Dispatcher may find the Worker dead before its WorkerDied arrives: see
    # test_the_job_that_crashed_a_worker_is_not_run_again.)
    with pytest.raises(ShuttingDown):
        submit(dispatcher, QUERIES[3])
    runner.gate.set()
    assert drained.result(timeout=5) is None
    assert [ask(store, m.GetOutcome(job_id)).status for job_id in ids] == [
        JobStatus.DONE,
        JobStatus.ERROR,
        JobStatus.DONE,
        JobStatus.DONE,
    ]
    assert len(spawned) == 2
    assert dispatcher.actor_stopped.wait(5)
    assert all(worker.actor_stopped.wait(5) for worker in spawned)


def test_a_worker_found_dead_is_replaced(start_dispatcher, spawn_recorders):
    spawn, spawned = spawn_recorders
    dispatcher, store = start_dispatcher(spawn, 2)
    spawned[0].ref.stop()  # dead without a word to the dispatcher
    first = submit(dispatcher, QUERIES[0])
    assert len(spawned) == 3
    assert spawned[2].next() == m.RunJob(first, QUERIES[0])
    second = submit(dispatcher, QUERIES[1])
    assert spawned[1].next() == m.RunJob(second, QUERIES[1])
    third = submit(dispatcher, QUERIES[2])
    assert spawned[2].next() == m.RunJob(third, QUERIES[2])
    assert ask(store, m.ListJobs()) == tuple((i, JobStatus.RUNNING) for i in (1, 2, 3))


class GatedJournal(Journal):
    """A journal whose append for job `hold` waits for `gate`: it holds the Dispatcher there."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.hold: int | None = None
        self.gate = threading.Event()

    def record_submitted(self, job_id: int, query: Query) -> None:
        if job_id == self.hold:
            self.gate.wait(10)
        super().record_submitted(job_id, query)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "BUG: lestats/actors/dispatcher.py _send: a Worker found dead before its WorkerDied is "
        "handled is replaced with crashed_job=None, so Reassign moves the job that crashed it "
        "to the replacement, which runs it again; the later WorkerDied is ignored"
    ),
)
def test_the_job_that_crashed_a_worker_is_not_run_again(
    tiny_dataset, start_store, start_dispatcher, real_workers, results_dir
):
    journal = GatedJournal(results_dir / "journal.jsonl")
    store = start_store(journal=journal)
    attempts = []
    crash_gate = threading.Event()

    def runner(dataset, query):
        if query.state == BOOM:
            attempts.append(query)
            if len(attempts) == 1:  # a fault that strikes once (say, memory exhausted)
                crash_gate.wait(10)
                raise Crash("the job took the worker down")
            return compute(dataset, Query(query.endpoint, query.question))
        return compute(dataset, query)

    spawn, spawned = real_workers(store, runner)
    dispatcher, _ = start_dispatcher(spawn, 1, store)
    crashed = submit(dispatcher, crash_query())
    journal.hold = crashed + 1
    nxt = m.SubmitJob(QUERIES[0])
    dispatcher.tell(nxt)  # the Dispatcher is now held inside this submission
    crash_gate.set()
    assert spawned[0].actor_stopped.wait(5)
    time.sleep(0.1)  # its WorkerDied waits in the Dispatcher's mailbox
    journal.gate.set()  # the Dispatcher sends job 2 to the dead worker: found dead
    assert nxt.reply.result(timeout=5) == crashed + 1
    assert watch(store, crashed + 1) == expected(tiny_dataset, QUERIES[0])
    outcome = watch(store, crashed)
    assert len(attempts) == 1, "the crashing job ran again on the replacement"
    assert outcome.status is JobStatus.ERROR


# --- recovery ------------------------------------------------------------------------------------


def test_requeue_runs_recovered_jobs(tiny_dataset, start_store, real_workers, start_dispatcher):
    first = start_store()
    ids = [ask(first, m.RegisterJob(query, "urn:gone")) for query in QUERIES[:5]]
    first.stop()  # stopped with the jobs unfinished, as by a crash
    store = start_store()
    recovered = ask(store, m.TakeRecovered())
    assert recovered == tuple(zip(ids, QUERIES[:5], strict=True))
    spawn, _ = real_workers(store, compute)
    dispatcher, _ = start_dispatcher(spawn, 2, store)
    dispatcher.tell(m.Requeue(recovered))
    for job_id, query in recovered:
        assert watch(store, job_id) == expected(tiny_dataset, query)
    assert submit(dispatcher, QUERIES[5]) == 6
    assert watch(store, 6) == expected(tiny_dataset, QUERIES[5])
    assert drain(dispatcher).result(timeout=5) is None


def test_requeue_goes_round_robin_and_tells_the_store(
    start_store, start_dispatcher, spawn_recorders
):
    first = start_store()
    for query in QUERIES[:5]:
        ask(first, m.RegisterJob(query, "urn:gone"))
    first.stop()
    store = start_store()
    recovered = ask(store, m.TakeRecovered())
    spawn, spawned = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, 2, store)
    dispatcher.tell(m.Requeue(recovered))
    runs = [m.RunJob(job_id, query) for job_id, query in recovered]
    assert spawned[0].take(3) == runs[0::2]
    assert spawned[1].take(2) == runs[1::2]
    # The round robin goes on where the requeue left it.
    assert submit(dispatcher, QUERIES[6]) == 6
    assert spawned[1].next() == m.RunJob(6, QUERIES[6])
    probe = m.Reassign(spawned[0].ref.actor_urn, None, "probe", "urn:probe")
    assert ask(store, probe) == recovered[0::2]
