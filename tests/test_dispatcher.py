"""The Dispatcher: round-robin, the poison behind the work, supervision of its Workers.

Jobs and the poison reach the Workers through the ResultStore: with a recording stand-in as the
store, a test sees what the Dispatcher asks of it; with a real store and stand-in workers, where
each job lands; with real Workers, the whole road.
"""

from __future__ import annotations

import logging
import threading

import pytest

from lestats import jsonio
from lestats import messages as m
from lestats.actors.dispatcher import Dispatcher
from lestats.actors.jobs import JobOutcome, JobStatus
from lestats.actors.worker import Worker
from lestats.data.query import Query
from lestats.data.statistics import compute
from lestats.errors import ShuttingDown
from lestats.stores.files import FileStore
from lestats.testing import (
    BOOM,
    MUSCLE,
    OBESITY,
    TINY_STATES,
    Crash,
    GatedRunner,
    ask,
    eventually,
    stop_actor,
)

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
        stop_actor(ref)  # it may be stopping itself after a drain: never wait on a second stop


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


@pytest.fixture
def store_stand_in(recorder):
    """A recording stand-in ResultStore: shows what the Dispatcher tells the store."""
    return recorder()


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


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_submission_goes_to_the_store_naming_the_next_worker(
    start_dispatcher, spawn_recorders, store_stand_in, workers
):
    spawn, spawned = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, workers, store_stand_in.ref)
    submissions = [m.SubmitJob(query) for query in QUERIES[:7]]
    for submission in submissions:
        dispatcher.tell(submission)
    registered = store_stand_in.take(len(submissions))
    assert [type(message) for message in registered] == [m.RegisterJob] * len(submissions)
    assert [message.query for message in registered] == QUERIES[:7]
    assert [message.worker for message in registered] == [
        spawned[n % workers].ref for n in range(len(submissions))
    ]
    # The client's own reply goes along: the store answers it; the Dispatcher did not wait.
    for message, submission in zip(registered, submissions, strict=True):
        assert message.reply is submission.reply
        assert not submission.reply.done()
    # Jobs go through the store only: no worker heard from the Dispatcher.
    assert all(recording.flush() == [] for recording in spawned)


def test_the_store_knows_which_worker_holds_each_job(start_dispatcher, spawn_recorders, recorder):
    spawn, spawned = spawn_recorders
    dispatcher, store = start_dispatcher(spawn, 2)
    ids = [submit(dispatcher, query) for query in QUERIES[:5]]
    probe = recorder()
    store.tell(m.Reassign(spawned[0].ref.actor_urn, probe.ref))
    assert ask(store, m.CountPending()) == 5
    assert probe.take(3) == [m.RunJob(job_id, QUERIES[job_id - 1]) for job_id in ids[0::2]]
    assert probe.flush() == []


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


def test_a_submission_with_the_store_gone_is_refused(
    start_dispatcher, spawn_recorders, store_stand_in, caplog
):
    spawn, _ = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, 2, store_stand_in.ref)
    stop_actor(store_stand_in.ref)
    with (
        caplog.at_level(logging.ERROR, logger="lestats.actors.dispatcher"),
        pytest.raises(ShuttingDown),
    ):
        submit(dispatcher, QUERIES[0])
    assert any("failed to handle" in record.getMessage() for record in caplog.records)
    assert dispatcher.is_alive()


# --- the poison ----------------------------------------------------------------------------------


def test_the_poison_goes_to_the_store_for_every_worker(
    start_dispatcher, spawn_recorders, store_stand_in
):
    spawn, spawned = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, 3, store_stand_in.ref)
    submissions = [m.SubmitJob(query) for query in QUERIES[:4]]
    for submission in submissions:
        dispatcher.tell(submission)
    poison, late = m.Poison(), m.Poison()
    dispatcher.tell(poison)
    dispatcher.tell(late)  # a second poison just waits for the first
    refused = m.SubmitJob(QUERIES[5])
    dispatcher.tell(refused)
    with pytest.raises(ShuttingDown):
        refused.reply.result(timeout=5)
    told = store_stand_in.flush()
    assert [type(message) for message in told] == [m.RegisterJob] * 4 + [m.ForwardPoison]
    forward = told[-1]
    assert forward.workers == tuple(recording.ref for recording in spawned)
    assert forward.poison is poison  # behind every job the store was given before it
    # The Workers answer the Dispatcher; once all have stopped, the store flushes and settles.
    for recording in spawned[:2]:
        dispatcher.tell(m.WorkerStopped(recording.ref.actor_urn))
    dispatcher.tell(m.WorkerStopped("urn:uuid:not-a-worker-of-mine"))
    assert store_stand_in.flush() == []
    assert dispatcher.is_alive()
    dispatcher.tell(m.WorkerStopped(spawned[2].ref.actor_urn))
    drained = store_stand_in.next()
    assert isinstance(drained, m.EngineDrained)
    assert drained.drained is poison.drained
    assert dispatcher.actor_stopped.wait(5)
    assert not late.drained.done()
    poison.drained.set_result(None)  # as the store does once flushed
    assert late.drained.result(timeout=5) is None
    # The stand-ins never stopped themselves: the Dispatcher stops what it leaves alive. Not
    # one message went from the Dispatcher to a Worker.
    for recording in spawned:
        assert recording.ref.actor_stopped.wait(5)
        assert recording.pending() == []


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
    assert list(ask(restarted, m.TakeRecovered())) == ids


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


def test_requests_queued_behind_a_stop_are_refused(start_dispatcher, recorder, store_stand_in):
    """A stop without the poison (the Engine never does it) still leaves no request unanswered."""
    spawned, entered, release = [], threading.Event(), threading.Event()

    def spawn(_dispatcher):
        if spawned:  # a replacement: hold the Dispatcher in its own thread until released
            entered.set()
            release.wait(5)
        recording = recorder()
        spawned.append(recording)
        return recording.ref

    dispatcher, _ = start_dispatcher(spawn, 1, store_stand_in.ref)
    dispatcher.tell(m.WorkerDied(spawned[0].ref.actor_urn, None, "gone"))
    assert entered.wait(5)  # the Dispatcher is busy
    dispatcher.stop(block=False)
    late = m.SubmitJob(QUERIES[0])
    dispatcher.tell(late)  # queued behind the stop; the Dispatcher is still alive
    release.set()
    with pytest.raises(ShuttingDown):
        late.reply.result(timeout=5)
    assert dispatcher.actor_stopped.wait(5)
    assert [type(message) for message in store_stand_in.flush()] == [m.Reassign]
    # Stopped without the poison, it stops the Workers it has (the replacement among them).
    assert spawned[1].ref.actor_stopped.wait(5)


# --- supervision ---------------------------------------------------------------------------------


def test_a_dead_worker_is_replaced_and_the_store_told(
    start_dispatcher, spawn_recorders, store_stand_in, caplog
):
    spawn, spawned = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, 2, store_stand_in.ref)
    dead = spawned[0].ref.actor_urn
    with caplog.at_level(logging.ERROR, logger="lestats.actors.dispatcher"):
        dispatcher.tell(m.WorkerDied(dead, 3, "Crash: x"))
        reassign = store_stand_in.next()
    assert any("died running job 3" in record.getMessage() for record in caplog.records)
    assert len(spawned) == 3
    assert reassign == m.Reassign(dead, spawned[2].ref, None)
    # The replacement takes the dead worker's place in the round robin.
    for query in QUERIES[:3]:
        dispatcher.tell(m.SubmitJob(query))
    registered = store_stand_in.take(3)
    assert [message.worker for message in registered] == [
        spawned[2].ref,
        spawned[1].ref,
        spawned[2].ref,
    ]
    # A second report of the same death, or of a worker it does not know, changes nothing.
    dispatcher.tell(m.WorkerDied(dead, None, "again"))
    dispatcher.tell(m.WorkerDied("urn:uuid:stranger", None, "?"))
    assert submit_to_stand_in(dispatcher, store_stand_in).worker == spawned[1].ref
    assert len(spawned) == 3


def submit_to_stand_in(dispatcher, store_stand_in):
    dispatcher.tell(m.SubmitJob(QUERIES[0]))
    (message,) = store_stand_in.take(1)
    assert store_stand_in.pending() == []
    return message


def test_a_death_during_the_drain_hands_the_poison_to_the_replacement(
    start_dispatcher, spawn_recorders, store_stand_in
):
    spawn, spawned = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, 2, store_stand_in.ref)
    poison = m.Poison()
    dispatcher.tell(poison)
    assert store_stand_in.next() == m.ForwardPoison((spawned[0].ref, spawned[1].ref), poison)
    dead = spawned[0].ref.actor_urn
    dispatcher.tell(m.WorkerDied(dead, 1, "Crash: x"))
    assert store_stand_in.next() == m.Reassign(dead, spawned[2].ref, poison)
    dispatcher.tell(m.WorkerStopped(spawned[1].ref.actor_urn))
    dispatcher.tell(m.WorkerStopped(dead))  # the dead one no longer counts
    assert store_stand_in.flush() == []
    dispatcher.tell(m.WorkerStopped(spawned[2].ref.actor_urn))
    drained = store_stand_in.next()
    assert isinstance(drained, m.EngineDrained)
    assert drained.drained is poison.drained
    assert dispatcher.actor_stopped.wait(5)


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
    assert runner.calls == len(queries)  # every job ran once: the crashed one too, only once
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
    assert runner.calls == len(queries)
    assert len(spawned) == 2
    assert dispatcher.actor_stopped.wait(5)
    assert all(worker.actor_stopped.wait(5) for worker in spawned)


def test_a_job_sent_to_a_dead_worker_waits_for_its_replacement(
    start_dispatcher, spawn_recorders, caplog
):
    spawn, spawned = spawn_recorders
    dispatcher, store = start_dispatcher(spawn, 2)
    stop_actor(spawned[0].ref)  # dead, and its death not reported yet
    with caplog.at_level(logging.WARNING):
        first = submit(dispatcher, QUERIES[0])  # accepted all the same: it is journaled
        second = submit(dispatcher, QUERIES[1])
    # The committer skipped the dead worker silently; the job waits under its name.
    assert [record.getMessage() for record in caplog.records] == []
    assert ask(store, m.ListJobs()) == ((first, JobStatus.RUNNING), (second, JobStatus.RUNNING))
    assert spawned[1].next() == m.RunJob(second, QUERIES[1])
    dispatcher.tell(m.WorkerDied(spawned[0].ref.actor_urn, None, "stopped"))
    eventually(lambda: len(spawned) == 3)
    assert spawned[2].next() == m.RunJob(first, QUERIES[0])
    third = submit(dispatcher, QUERIES[2])
    assert spawned[2].next() == m.RunJob(third, QUERIES[2])
    assert ask(store, m.ListJobs()) == tuple((i, JobStatus.RUNNING) for i in (1, 2, 3))


class GatedStore(FileStore):
    """A FileStore whose `accept` of job `hold` waits for `gate`: it holds the ResultStore there."""

    def __init__(self, directory) -> None:
        super().__init__(directory)
        self.hold: int | None = None
        self.entered = threading.Event()
        self.gate = threading.Event()

    def accept(self, query: Query) -> int:
        if self.last_id() + 1 == self.hold:
            self.entered.set()
            self.gate.wait(10)
        return super().accept(query)


def test_the_job_that_crashed_a_worker_is_not_run_again(  # noqa: PLR0917 - fixtures
    tiny_dataset, start_store, start_dispatcher, real_workers, results_dir, caplog
):
    """A job is numbered for the crashed worker after its death, before the store hears of it.

    The store is held journaling job 2 (for the one worker) while that worker crashes on job 1.
    Job 2 stays pending under the dead worker's name (the committer's tell to it is skipped) and
    the Reassign moves it. The worker failed job 1 itself before dying, so the replacement gets
    job 2 only, and job 1 is never run again (the Dispatcher used to re-run it).
    """
    journal = GatedStore(results_dir)
    store = start_store(store=journal)
    attempts = []
    others = []
    crash_gate = threading.Event()

    def runner(dataset, query):
        if query.state != BOOM:
            others.append(query)
        if query.state == BOOM:
            attempts.append(query)
            if len(attempts) == 1:  # a fault that strikes once (say, memory exhausted)
                crash_gate.wait(10)
                raise Crash("the job took the worker down")
            return compute(dataset, Query(query.kind, query.question))
        return compute(dataset, query)

    spawn, spawned = real_workers(store, runner)
    dispatcher, _ = start_dispatcher(spawn, 1, store)
    crashed = submit(dispatcher, crash_query())
    journal.hold = crashed + 1
    nxt = m.SubmitJob(QUERIES[0])
    dispatcher.tell(nxt)
    assert journal.entered.wait(5)  # the store is held inside this registration
    crash_gate.set()
    assert spawned[0].actor_stopped.wait(5)
    eventually(lambda: len(spawned) == 2)  # the Dispatcher replaced it, told the store
    with caplog.at_level(logging.DEBUG, logger="lestats.actors.committer"):
        journal.gate.set()  # job 2 is numbered for the dead worker
        assert nxt.reply.result(timeout=5) == crashed + 1
        assert watch(store, crashed + 1) == expected(tiny_dataset, QUERIES[0])
    # The dead worker was skipped silently.
    assert [r for r in caplog.records if r.name == "lestats.actors.committer"] == []
    outcome = watch(store, crashed)
    assert len(attempts) == 1, "the crashing job ran again on the replacement"
    assert others == [QUERIES[0]]  # job 2 ran once, on the replacement
    assert outcome.status is JobStatus.ERROR
    assert "took the worker down" in outcome.reason
    assert drain(dispatcher).result(timeout=5) is None


# --- recovery ------------------------------------------------------------------------------------


def register_unfinished(start_store, recorder, queries):
    """Jobs accepted by a store that then stopped with them unfinished, as by a crash."""
    gone = recorder()
    first = start_store()
    ids = [ask(first, m.RegisterJob(query, gone.ref)) for query in queries]
    first.stop()
    return ids


def test_requeue_runs_recovered_jobs(
    tiny_dataset, start_store, real_workers, start_dispatcher, recorder
):
    ids = register_unfinished(start_store, recorder, QUERIES[:5])
    store = start_store()
    recovered = ask(store, m.TakeRecovered())
    assert recovered == tuple(ids)
    spawn, _ = real_workers(store, compute)
    dispatcher, _ = start_dispatcher(spawn, 2, store)
    dispatcher.tell(m.Requeue(recovered))
    for job_id, query in zip(recovered, QUERIES[:5], strict=True):
        assert watch(store, job_id) == expected(tiny_dataset, query)
    assert submit(dispatcher, QUERIES[5]) == 6
    assert watch(store, 6) == expected(tiny_dataset, QUERIES[5])
    assert drain(dispatcher).result(timeout=5) is None


def test_requeue_goes_round_robin_through_the_store(
    start_store, start_dispatcher, spawn_recorders, recorder
):
    register_unfinished(start_store, recorder, QUERIES[:5])
    store = start_store()
    recovered = ask(store, m.TakeRecovered())
    spawn, spawned = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, 2, store)
    dispatcher.tell(m.Requeue(recovered))
    runs = [m.RunJob(job_id, query) for job_id, query in zip(recovered, QUERIES, strict=False)]
    assert spawned[0].take(3) == runs[0::2]
    assert spawned[1].take(2) == runs[1::2]
    # The round robin goes on where the requeue left it.
    assert submit(dispatcher, QUERIES[6]) == 6
    assert spawned[1].next() == m.RunJob(6, QUERIES[6])
    # The store knows who holds the requeued jobs: a death moves them.
    probe = recorder()
    store.tell(m.Reassign(spawned[0].ref.actor_urn, probe.ref))
    assert ask(store, m.CountPending()) == 6
    assert probe.take(3) == runs[0::2]  # moved jobs leave from the committer
    assert probe.flush() == []


def test_requeue_asks_the_store_to_assign_round_robin(
    start_dispatcher, spawn_recorders, store_stand_in
):
    spawn, spawned = spawn_recorders
    dispatcher, _ = start_dispatcher(spawn, 2, store_stand_in.ref)
    dispatcher.tell(m.Requeue((4, 7, 9)))
    w0, w1 = spawned[0].ref, spawned[1].ref
    assert store_stand_in.next() == m.AssignJobs(((4, w0), (7, w1), (9, w0)))
    assert submit_to_stand_in(dispatcher, store_stand_in).worker == w1
    dispatcher.tell(m.Requeue(()))
    assert store_stand_in.next() == m.AssignJobs(())
    assert all(recording.flush() == [] for recording in spawned)
