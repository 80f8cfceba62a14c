"""The ResultStore and its JournalCommitter, message by message: ids, the group commit, the
hand-out to workers once durable, persistence before `done`, supervision and recovery moves,
restarts. Workers are recording stand-ins."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout

import pykka
import pytest
from store_faults import FaultyWrite

from lestats import messages as m
from lestats.actors import result_store as result_store_module
from lestats.actors.committer import JournalCommitter
from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus
from lestats.actors.result_store import ResultStore
from lestats.data.query import Query
from lestats.errors import Overloaded, ShuttingDown, StorageError, UnknownJob
from lestats.stores.files import FileStore
from lestats.stores.result_files import ResultFiles
from lestats.testing import MUSCLE, OBESITY, ask, eventually, stop_actor

Q1 = Query("global_mean", OBESITY)
Q2 = Query("state_mean", MUSCLE, "Ohio")


class NoDescriptors:
    """Replaces `os.dup`: fails like a full descriptor table while `set` is called."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self._real = os.dup

    def __call__(self, fd: int) -> int:
        if self.on.is_set():
            raise OSError(24, "Too many open files")
        return self._real(fd)


@pytest.fixture
def no_descriptors(monkeypatch):
    spy = NoDescriptors()
    monkeypatch.setattr(os, "dup", spy)
    return spy.on


class BlockingStore(FileStore):
    """A FileStore whose next `complete` blocks the store's thread until `release` is set."""

    def __init__(self, directory, **options) -> None:
        super().__init__(directory, **options)
        self.block = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def complete(self, job_id: int, result: bytes) -> bool:
        if self.block:
            self.entered.set()
            self.release.wait(5)
        return super().complete(job_id, result)


class CommitterSyncs:
    """Replaces `os.fdatasync` in JournalCommitter threads only (the store's own commits go
    through, noted in `elsewhere` by thread name): counts the committer's calls, and can hold
    them at `gate` or make them fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.elsewhere: list[str] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.error: OSError | None = None
        self._real = os.fdatasync

    def __call__(self, fd: int) -> None:
        name = threading.current_thread().name
        if not name.startswith("JournalCommitter"):
            self.elsewhere.append(name)
            self._real(fd)
            return
        self.calls += 1
        self.entered.set()
        if not self.gate.wait(10):
            raise OSError(110, "the test never opened the gate")
        if self.error is not None:
            raise self.error
        self._real(fd)


@pytest.fixture
def syncs(monkeypatch):
    spy = CommitterSyncs()
    monkeypatch.setattr(os, "fdatasync", spy)
    yield spy
    spy.gate.set()


@pytest.fixture
def store(start_store, any_store):
    """A ResultStore on a FileStore or on a MemoryStore: the test holds for both."""
    return start_store(store=any_store())


@pytest.fixture
def file_store(start_store):
    """A ResultStore on a FileStore in `results_dir`."""
    return start_store()


@pytest.fixture
def worker(recorder):
    """The recording stand-in Worker that `register` sends jobs to unless told otherwise."""
    return recorder()


@pytest.fixture
def register(worker):
    """`register(store, query=Q1, to=worker)`: the job's id, once the store answers it."""

    def register(store, query=Q1, to=None):
        return ask(store, m.RegisterJob(query, (to or worker).ref))

    return register


def outcome(store, job_id):
    return ask(store, m.GetOutcome(job_id))


def pending(store):
    return ask(store, m.CountPending())


def listing(store):
    return ask(store, m.ListJobs())


def committers():
    return pykka.ActorRegistry.get_by_class(JournalCommitter)


# --- ids and the hand-out to workers -------------------------------------------------------------


def test_ids_start_at_one_and_rise_by_one(store, register, worker):
    assert [register(store) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert pending(store) == 5
    assert all(outcome(store, job_id) == RUNNING for job_id in range(1, 6))
    assert worker.flush() == [m.RunJob(job_id, Q1) for job_id in range(1, 6)]


def test_each_job_goes_to_the_worker_it_names(store, register, recorder):
    a, b = recorder(), recorder()
    ids = [register(store, query, to) for query, to in ((Q1, a), (Q2, b), (Q2, a), (Q1, a))]
    assert ids == [1, 2, 3, 4]
    assert a.flush() == [m.RunJob(1, Q1), m.RunJob(3, Q2), m.RunJob(4, Q1)]
    assert b.flush() == [m.RunJob(2, Q2)]


def test_the_id_is_answered_after_the_commit_and_the_store_serves_meanwhile(
    file_store, worker, syncs, results_dir
):
    store = file_store
    syncs.gate.clear()
    held = m.RegisterJob(Q2, worker.ref)
    store.tell(held)
    assert syncs.entered.wait(5)  # the committer is forcing the journal to disk...
    # ...and the job is already numbered and journaled (written to the OS), not yet answered.
    assert '"job": 1' in (results_dir / "journal.jsonl").read_text()
    assert not held.reply.done()
    # The store does not wait for the disk: it answers queries and takes more jobs.
    assert pending(store) == 1
    assert outcome(store, 1) == RUNNING
    second = m.RegisterJob(Q1, worker.ref)
    store.tell(second)
    assert listing(store) == ((1, JobStatus.RUNNING), (2, JobStatus.RUNNING))
    assert '"job": 2' in (results_dir / "journal.jsonl").read_text()
    assert not held.reply.done()
    assert not second.reply.done()
    assert worker.flush() == []  # neither job runs before it is durable
    syncs.gate.set()
    assert held.reply.result(timeout=5) == 1
    assert second.reply.result(timeout=5) == 2
    assert worker.flush() == [m.RunJob(1, Q2), m.RunJob(2, Q1)]
    assert syncs.calls == 2  # the second job came after the first batch had left: its own sync


def test_a_job_is_not_sent_to_its_worker_before_its_commit(  # noqa: PLR0917 - fixtures
    file_store, register, worker, recorder, syncs, monkeypatch
):
    store = file_store
    assert register(store) == 1  # the committer is up and syncing
    assert worker.flush() == [m.RunJob(1, Q1)]
    other = recorder()
    synced = threading.Event()
    real_sync = os.fdatasync  # the `syncs` spy: it holds the committer at its gate

    def sync_then_note(fd: int) -> None:
        real_sync(fd)
        if threading.current_thread().name.startswith("JournalCommitter"):
            synced.set()

    monkeypatch.setattr(os, "fdatasync", sync_then_note)
    syncs.entered.clear()
    syncs.gate.clear()
    jobs = [m.RegisterJob(Q2, worker.ref), m.RegisterJob(Q1, other.ref)]
    for job in jobs:
        store.tell(job)
    assert syncs.entered.wait(5)
    assert pending(store) == 3  # both registered, numbered and held
    assert worker.flush() == []
    assert other.flush() == []
    assert not any(job.reply.done() for job in jobs)
    assert not synced.is_set()
    syncs.gate.set()
    assert [job.reply.result(timeout=5) for job in jobs] == [2, 3]
    assert synced.is_set()  # answered only after the committer's sync returned
    assert worker.flush() == [m.RunJob(2, Q2)]
    assert other.flush() == [m.RunJob(3, Q1)]


@pytest.mark.parametrize(("delay", "syncs_expected"), [(60.0, 1), (0.0, 100)])
def test_a_burst_is_held_until_the_mailbox_runs_empty_or_the_delay_passes(  # noqa: PLR0917 - fixtures
    start_store, register, worker, results_dir, syncs, monkeypatch, delay, syncs_expected
):
    monkeypatch.setattr(result_store_module, "COMMIT_DELAY", delay)
    storage = BlockingStore(results_dir)
    store = start_store(store=storage, max_pending=1000)
    first = register(store)
    syncs.calls = 0
    storage.block = True
    store.tell(m.JobDone(first, b"{}"))
    assert storage.entered.wait(5)  # the store is busy: the burst queues up behind
    burst = [m.RegisterJob(Q1, worker.ref) for _ in range(100)]
    for message in burst:
        store.tell(message)
    storage.release.set()
    assert [message.reply.result(timeout=5) for message in burst] == list(range(2, 102))
    # One sync for the whole burst (group commit), or, once the oldest held reply has waited
    # COMMIT_DELAY (here at once), one sync per job.
    assert syncs.calls == syncs_expected


def test_held_replies_go_in_batches_of_commit_batch(  # noqa: PLR0917 - fixtures
    start_store, register, worker, results_dir, syncs, monkeypatch
):
    monkeypatch.setattr(result_store_module, "COMMIT_BATCH", 10)
    monkeypatch.setattr(result_store_module, "COMMIT_DELAY", 60.0)
    storage = BlockingStore(results_dir)
    store = start_store(store=storage)
    first = register(store)
    syncs.calls = 0
    storage.block = True
    store.tell(m.JobDone(first, b"{}"))
    assert storage.entered.wait(5)
    burst = [m.RegisterJob(Q2, worker.ref) for _ in range(45)]
    for message in burst:
        store.tell(message)
    storage.release.set()
    assert [message.reply.result(timeout=5) for message in burst] == list(range(2, 47))
    assert syncs.calls == 5  # four full batches of 10, then the last 5 once the mailbox is empty


def test_a_failed_commit_refuses_the_held_replies_and_the_store_goes_on(
    file_store, register, syncs
):
    store = file_store
    syncs.error = OSError(5, "Input/output error")
    with pytest.raises(StorageError) as refused:
        register(store)
    assert "not durable" in refused.value.problem
    assert "Input/output error" in refused.value.problem
    syncs.error = None
    job_id = register(store)
    assert job_id == 2  # the refused job used up id 1
    store.tell(m.JobDone(job_id, b"[]"))
    assert ask(store, m.WatchJob(job_id)) == JobOutcome(JobStatus.DONE, b"[]")


def test_a_job_refused_for_a_failed_commit_is_failed_and_never_run(
    file_store, register, worker, syncs, start_store
):
    store = file_store
    syncs.error = OSError(5, "Input/output error")
    refused = [m.RegisterJob(Q1, worker.ref), m.RegisterJob(Q2, worker.ref)]
    syncs.gate.clear()  # both are held at the committer, whose sync will fail
    for message in refused:
        store.tell(message)
    assert syncs.entered.wait(5)
    assert pending(store) == 2
    syncs.gate.set()
    for message in refused:
        with pytest.raises(StorageError, match="not durable"):
            message.reply.result(timeout=5)
    # The committer told the store: the ids are used up, and the jobs listed as errors.
    for job_id in (1, 2):
        failed = ask(store, m.WatchJob(job_id))
        assert failed.status is JobStatus.ERROR
        assert failed.reason.startswith("refused: ")
        assert "not durable" in failed.reason
    assert listing(store) == ((1, JobStatus.ERROR), (2, JobStatus.ERROR))
    assert pending(store) == 0
    assert worker.flush() == []  # never sent to the worker
    syncs.error = None
    assert register(store) == 3  # ids stay consecutive
    assert worker.flush() == [m.RunJob(3, Q1)]
    store.stop()
    restarted = start_store()  # the failures were journaled: not run again after a restart
    assert ask(restarted, m.TakeRecovered()) == (3,)
    assert outcome(restarted, 1).status is JobStatus.ERROR
    assert outcome(restarted, 2).status is JobStatus.ERROR


def test_overloaded_past_max_pending_then_recovers(start_store, register, worker):
    store = start_store(max_pending=2)
    assert register(store) == 1
    assert register(store) == 2
    with pytest.raises(Overloaded) as refused:
        register(store)
    assert "at most 2" in refused.value.reason
    assert refused.value.retry_after > 0
    with pytest.raises(Overloaded):
        register(store)
    assert pending(store) == 2
    assert worker.flush() == [m.RunJob(1, Q1), m.RunJob(2, Q1)]  # refused jobs go nowhere
    store.tell(m.JobDone(1, b"{}"))
    assert register(store) == 3  # the refusals used up no id
    with pytest.raises(Overloaded):
        register(store)
    store.tell(m.JobErrored(2, "ValueError: x"))
    store.tell(m.JobDone(3, b"{}"))
    assert register(store) == 4
    assert register(store) == 5
    assert [job_id for job_id, _ in listing(store)] == [1, 2, 3, 4, 5]


def test_a_job_for_a_dead_worker_is_accepted_and_waits_for_the_replacement(
    store, register, recorder, caplog
):
    dead, replacement = recorder(), recorder()
    stop_actor(dead.ref)
    with caplog.at_level(logging.DEBUG):
        job_id = register(store, Q2, dead)
        assert pending(store) == 1
    # The committer's tell to the dead worker was skipped silently, and the committer lives on.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert all(committer.is_alive() for committer in committers())
    assert len(committers()) == 1
    assert outcome(store, job_id) == RUNNING
    assert replacement.flush() == []
    store.tell(m.Reassign(dead.ref.actor_urn, replacement.ref))
    assert replacement.next() == m.RunJob(job_id, Q2)
    assert register(store, Q1, replacement) == job_id + 1  # the store and committer go on
    assert replacement.flush() == [m.RunJob(job_id + 1, Q1)]


# --- results -------------------------------------------------------------------------------------


def test_result_is_on_disk_before_the_job_reads_done(file_store, register, results_dir):
    store = file_store
    job_id = register(store)
    file = results_dir / f"job_id_{job_id}.json"
    seen_at_settle: list[bool] = []
    called = threading.Event()

    def on_settled(_reply) -> None:  # runs in the store's thread, as it settles the watcher
        seen_at_settle.append(file.exists())
        called.set()

    watch = m.WatchJob(job_id)
    watch.reply.add_done_callback(on_settled)
    store.tell(watch)
    assert outcome(store, job_id) == RUNNING
    assert not file.exists()
    data = b'{"global_mean": 29.5}'
    store.tell(m.JobDone(job_id, data))
    assert watch.reply.result(timeout=5) == JobOutcome(JobStatus.DONE, data)
    assert called.wait(5)
    assert seen_at_settle == [True]
    done = outcome(store, job_id)
    assert done.status is JobStatus.DONE
    assert done.result == data
    assert file.read_bytes() == data
    assert not list(results_dir.glob(".*.tmp"))


def test_every_done_job_has_its_file_when_polled(file_store, register, results_dir):
    store = file_store
    job_ids = [register(store) for _ in range(50)]
    for job_id in job_ids:
        store.tell(m.JobDone(job_id, b"[%d]" % job_id))
    for job_id in job_ids:
        while (current := outcome(store, job_id)).status is JobStatus.RUNNING:
            pass
        assert current.status is JobStatus.DONE
        assert (results_dir / f"job_id_{job_id}.json").read_bytes() == b"[%d]" % job_id


def test_job_failed_is_error_with_reason(file_store, register, results_dir):
    store = file_store
    job_id = register(store)
    store.tell(m.JobErrored(job_id, "ValueError: bad input"))
    assert outcome(store, job_id) == JobOutcome(JobStatus.ERROR, reason="ValueError: bad input")
    assert pending(store) == 0
    assert not (results_dir / f"job_id_{job_id}.json").exists()


@pytest.mark.parametrize("job_id", [0, -3, 1, 2, 10**6])
def test_unknown_job(store, job_id):
    with pytest.raises(UnknownJob):
        outcome(store, job_id)
    with pytest.raises(UnknownJob):
        ask(store, m.WatchJob(job_id))


def test_unknown_job_after_some_were_issued(store, register):
    register(store)
    assert outcome(store, 1) == RUNNING
    with pytest.raises(UnknownJob):
        outcome(store, 2)


# --- watchers ------------------------------------------------------------------------------------


def test_watch_replies_when_the_job_finishes(store, register):
    done_id, failed_id = register(store), register(store)
    watch_done, watch_failed = m.WatchJob(done_id), m.WatchJob(failed_id)
    store.tell(watch_done)
    store.tell(watch_failed)
    store.tell(m.WatchJob(done_id))  # a watcher nobody reads any more is harmless
    with pytest.raises(FutureTimeout):
        watch_done.reply.result(timeout=0.05)
    assert not watch_failed.reply.done()
    store.tell(m.JobDone(done_id, b"1"))
    assert watch_done.reply.result(timeout=5) == JobOutcome(JobStatus.DONE, b"1")
    assert not watch_failed.reply.done()
    store.tell(m.JobErrored(failed_id, "boom"))
    assert watch_failed.reply.result(timeout=5) == JobOutcome(JobStatus.ERROR, reason="boom")


def test_watch_replies_at_once_when_already_finished(store, register):
    done_id, failed_id = register(store), register(store)
    store.tell(m.JobDone(done_id, b"[]"))
    store.tell(m.JobErrored(failed_id, "boom"))
    assert ask(store, m.WatchJob(done_id)) == JobOutcome(JobStatus.DONE, b"[]")
    assert ask(store, m.WatchJob(failed_id)) == JobOutcome(JobStatus.ERROR, reason="boom")


def test_unwatch_forgets_that_watcher_only(store, register):
    job_id, other_id = register(store), register(store)
    gone, kept, other = m.WatchJob(job_id), m.WatchJob(job_id), m.WatchJob(other_id)
    for watch in (gone, kept, other):
        store.tell(watch)
    store.tell(m.Unwatch(job_id, gone.reply))
    store.tell(m.Unwatch(job_id, gone.reply))  # twice: harmless
    store.tell(m.Unwatch(job_id, Future()))  # a reply the store never saw: harmless
    store.tell(m.Unwatch(other_id, kept.reply))  # the wrong job: forgets nothing
    store.tell(m.Unwatch(99, Future()))  # an unknown job: harmless
    store.tell(m.JobDone(job_id, b"[1]"))
    store.tell(m.JobDone(other_id, b"[2]"))
    assert kept.reply.result(timeout=5) == JobOutcome(JobStatus.DONE, b"[1]")
    assert other.reply.result(timeout=5) == JobOutcome(JobStatus.DONE, b"[2]")
    assert not gone.reply.done()  # forgotten: the finished job did not settle it
    store.tell(m.Unwatch(job_id, kept.reply))  # after the job finished: harmless
    assert outcome(store, job_id) == JobOutcome(JobStatus.DONE, b"[1]")


def test_unwatched_replies_do_not_pile_up(store, register):
    job_id = register(store)
    given_up = []
    for _ in range(500):
        watch = m.WatchJob(job_id)
        store.tell(watch)
        store.tell(m.Unwatch(job_id, watch.reply))
        given_up.append(watch.reply)
    last = m.WatchJob(job_id)
    store.tell(last)
    store.tell(m.JobDone(job_id, b"{}"))
    assert last.reply.result(timeout=5).status is JobStatus.DONE
    # Had the store kept them, finishing the job would have settled them all.
    assert not any(reply.done() for reply in given_up)


def test_watchers_hear_running_when_the_store_stops(start_store, register):
    store = start_store()
    job_id = register(store)
    watch = m.WatchJob(job_id)
    store.tell(watch)
    store.stop()
    assert watch.reply.result(timeout=5) == RUNNING


# --- listings and robustness ---------------------------------------------------------------------


def test_list_jobs_and_count_pending(store, register):
    assert listing(store) == ()
    assert pending(store) == 0
    for _ in range(4):
        register(store)
    store.tell(m.JobDone(1, b"{}"))
    store.tell(m.JobErrored(3, "nope"))
    assert listing(store) == (
        (1, JobStatus.DONE),
        (2, JobStatus.RUNNING),
        (3, JobStatus.ERROR),
        (4, JobStatus.RUNNING),
    )
    assert pending(store) == 2


def test_late_or_duplicate_reports_are_ignored(store, register, caplog):
    job_id = register(store)
    store.tell(m.JobDone(job_id, b"1"))
    with caplog.at_level(logging.WARNING, logger="lestats.actors.result_store"):
        store.tell(m.JobDone(job_id, b"2"))
        store.tell(m.JobErrored(job_id, "late"))
        store.tell(m.JobDone(99, b"3"))
        assert outcome(store, job_id) == JobOutcome(JobStatus.DONE, b"1")
    assert sum("not running" in record.getMessage() for record in caplog.records) == 3
    with pytest.raises(UnknownJob):
        outcome(store, 99)


def test_unknown_message_is_logged_and_the_store_keeps_serving(store, register, caplog):
    with caplog.at_level(logging.WARNING):
        store.tell("hello?")
        assert register(store) == 1
    assert any("hello?" in record.getMessage() for record in caplog.records)


def test_deleted_result_file_is_an_error_and_the_store_keeps_serving(
    start_store, register, results_dir
):
    # No read cache, so the store has to go to the (missing) file.
    store = start_store(store=FileStore(results_dir, cache_bytes=0))
    job_id = register(store)
    store.tell(m.JobDone(job_id, b"{}"))
    assert outcome(store, job_id).status is JobStatus.DONE
    (results_dir / f"job_id_{job_id}.json").unlink()
    gone = outcome(store, job_id)
    assert gone.status is JobStatus.ERROR
    assert "job_id_1" in gone.reason
    assert ask(store, m.WatchJob(job_id)).status is JobStatus.ERROR
    next_id = register(store)
    store.tell(m.JobDone(next_id, b"[2]"))
    assert ask(store, m.WatchJob(next_id)) == JobOutcome(JobStatus.DONE, b"[2]")


def test_unreadable_result_file_is_an_error(start_store, register, results_dir):
    store = start_store(store=FileStore(results_dir, cache_bytes=0))
    job_id = register(store)
    store.tell(m.JobDone(job_id, b"{}"))
    assert outcome(store, job_id).status is JobStatus.DONE
    path = results_dir / f"job_id_{job_id}.json"
    path.unlink()
    path.mkdir()  # reading a directory fails with an OSError other than FileNotFoundError
    broken = outcome(store, job_id)
    assert broken.status is JobStatus.ERROR
    assert broken.reason
    assert register(store) == 2


# --- restarts ------------------------------------------------------------------------------------


def test_ids_continue_after_restart_and_old_results_are_served(start_store, register):
    first = start_store()
    for job_id in (register(first) for _ in range(3)):
        first.tell(m.JobDone(job_id, b"[%d]" % job_id))
    assert ask(first, m.WatchJob(3)).status is JobStatus.DONE
    first.stop()
    second = start_store()
    assert [outcome(second, job_id).result for job_id in (1, 2, 3)] == [b"[1]", b"[2]", b"[3]"]
    assert register(second) == 4
    assert listing(second)[:3] == tuple((i, JobStatus.DONE) for i in (1, 2, 3))


def test_ids_continue_after_the_highest_result_file(start_store, register, results_dir):
    results_dir.mkdir()
    (results_dir / "job_id_41.json").write_bytes(b'{"old": 1.0}')  # no journal at all
    store = start_store()
    assert register(store) == 42
    assert outcome(store, 41) == JobOutcome(JobStatus.DONE, b'{"old": 1.0}')
    # Nothing says that id 7 was ever issued (issue 11 item 14): never issued, not "gone".
    with pytest.raises(UnknownJob):
        outcome(store, 7)
    assert listing(store) == ((41, JobStatus.DONE), (42, JobStatus.RUNNING))


def test_failed_jobs_stay_failed_after_restart(start_store, register):
    first = start_store()
    job_id = register(first)
    first.tell(m.JobErrored(job_id, "ValueError: kept"))
    assert outcome(first, job_id).status is JobStatus.ERROR
    first.stop()
    second = start_store()
    assert outcome(second, job_id) == JobOutcome(JobStatus.ERROR, reason="ValueError: kept")
    assert ask(second, m.TakeRecovered()) == ()


def test_unfinished_jobs_come_back_after_restart(start_store, register, recorder):
    first = start_store()
    ids = [register(first, query) for query in (Q1, Q2, Q1)]
    first.tell(m.JobDone(ids[0], b"{}"))
    assert ask(first, m.WatchJob(ids[0])).status is JobStatus.DONE
    first.stop()  # a stop without the drain: jobs 2 and 3 never finished
    second = start_store()
    assert ask(second, m.TakeRecovered()) == (2, 3)
    assert ask(second, m.TakeRecovered()) == ()  # handed out once
    assert outcome(second, 2) == RUNNING
    assert pending(second) == 2
    assert register(second) == 4
    # The recovered jobs kept their queries: assigned to a worker, they run as first submitted.
    again = recorder()
    second.tell(m.AssignJobs(((2, again.ref), (3, again.ref))))
    assert again.take(2) == [m.RunJob(2, Q2), m.RunJob(3, Q1)]
    second.tell(m.JobDone(2, b"[2]"))
    second.tell(m.JobErrored(3, "again"))
    assert ask(second, m.WatchJob(3)).status is JobStatus.ERROR
    assert outcome(second, 2) == JobOutcome(JobStatus.DONE, b"[2]")


def test_unfinished_job_whose_result_was_saved_is_done_after_restart(
    start_store, register, results_dir
):
    first = start_store()
    job_id = register(first)
    first.stop()
    # The result reached the disk but the process died before the journal said so.
    (results_dir / f"job_id_{job_id}.json").write_bytes(b"[1]")
    second = start_store()
    assert ask(second, m.TakeRecovered()) == ()
    assert outcome(second, job_id) == JobOutcome(JobStatus.DONE, b"[1]")


@pytest.mark.parametrize("left", [b"", b'{"Ohio": 3'])
def test_an_incomplete_result_of_a_journaled_job_runs_it_again(
    start_store, register, results_dir, left
):
    first = start_store()
    job_id = register(first)
    first.stop()
    # After a power failure: the renamed result file is there, its data never reached the disk.
    (results_dir / f"job_id_{job_id}.json").write_bytes(left)
    second = start_store()
    assert ask(second, m.TakeRecovered()) == (job_id,)
    assert outcome(second, job_id) == RUNNING


def test_compaction_makes_results_durable_before_forgetting_their_jobs(
    start_store, register, monkeypatch, results_dir
):
    calls = []
    real_sync = ResultFiles.sync

    def spy(files, job_ids):
        job_ids = list(job_ids)
        path = results_dir / "journal.jsonl"
        journal = path.read_text() if path.exists() else ""
        calls.append((job_ids, all(f'"job": {i},' in journal for i in job_ids)))
        real_sync(files, job_ids)

    monkeypatch.setattr(ResultFiles, "sync", spy)
    store = start_store()
    assert calls == [([], True)]  # the start-up compaction
    job_id = register(store)
    store.tell(m.JobDone(job_id, b"{}"))
    ask(store, m.WatchJob(job_id))
    store.stop()  # compacts: job 1 leaves the journal, after its result file was synced
    assert calls == [([], True), ([job_id], True)]
    assert f'"job": {job_id},' not in (results_dir / "journal.jsonl").read_text()


def test_start_with_a_torn_journal(start_store, register, results_dir):
    first = start_store()
    register(first)
    first.stop()
    with (results_dir / "journal.jsonl").open("ab") as file:
        file.write(b'{"job": 2, "endpoint": "glo')
    second = start_store()
    assert ask(second, m.TakeRecovered()) == (1,)
    assert register(second) == 2


# --- disk faults ---------------------------------------------------------------------------------


def permissions_enforced(tmp_path) -> bool:
    """Whether a 0o500 directory refuses new files (root, with CAP_DAC_OVERRIDE, ignores it)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o500)
    try:
        (probe / "file").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o700)
    return False


def test_unwritable_results_dir_fails_the_job_and_recovers(
    file_store, register, results_dir, tmp_path
):
    store = file_store
    if not permissions_enforced(tmp_path):
        pytest.skip("root ignores directory permissions; the full-disk variant covers it")
    job_id = register(store)
    results_dir.chmod(0o500)
    try:
        store.tell(m.JobDone(job_id, b"{}"))
        failed = ask(store, m.WatchJob(job_id))
        assert failed.status is JobStatus.ERROR
        assert "could not save the result" in failed.reason
        assert pending(store) == 0
        next_id = register(store)
    finally:
        results_dir.chmod(0o700)
    store.tell(m.JobDone(next_id, b"[]"))
    assert ask(store, m.WatchJob(next_id)) == JobOutcome(JobStatus.DONE, b"[]")


@pytest.mark.parametrize(
    "error",
    [OSError(28, "No space left on device"), OSError(24, "Too many open files")],
    ids=["ENOSPC", "EMFILE"],
)
def test_a_full_disk_keeps_the_job_running_and_retries_until_it_is_saved(  # noqa: PLR0917
    start_store, register, results_dir, monkeypatch, caplog, error
):
    """Issue 11 item 4: ENOSPC or EMFILE while saving a result is not a failure of the job."""
    monkeypatch.setattr(result_store_module, "RETRY_FIRST", 0.01)
    faults = FaultyWrite()
    faults.results_error = error
    store = start_store(store=FileStore(results_dir, write=faults))
    job_id, other_id = register(store), register(store)
    faults.results_full.set()
    watch = m.WatchJob(job_id)
    store.tell(watch)
    with caplog.at_level(logging.WARNING, logger="lestats.actors.result_store"):
        store.tell(m.JobDone(job_id, b"{}"))
        store.tell(m.JobErrored(other_id, "ValueError: x"))  # queued behind, in order
        eventually(lambda: faults.refused >= 4)  # the first try, then three retries
        assert outcome(store, job_id) == RUNNING
        assert not watch.reply.done()
        assert listing(store) == ((1, JobStatus.RUNNING), (2, JobStatus.RUNNING))
        assert pending(store) == 2
        assert not (results_dir / f"job_id_{job_id}.json").exists()
        faults.results_full.clear()
        assert watch.reply.result(timeout=5) == JobOutcome(JobStatus.DONE, b"{}")
        assert ask(store, m.WatchJob(other_id)).reason == "ValueError: x"
    assert (results_dir / f"job_id_{job_id}.json").read_bytes() == b"{}"
    assert pending(store) == 0
    # Once per episode: when it starts and when it ends, however many retries were made.
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert error.strerror in messages[0]
    assert "stay running" in messages[0]
    assert "recorded again" in messages[1]
    next_id = register(store)
    store.tell(m.JobDone(next_id, b"[]"))
    assert ask(store, m.WatchJob(next_id)) == JobOutcome(JobStatus.DONE, b"[]")


def test_a_result_never_saved_before_the_stop_runs_again_at_the_next_start(
    start_store, register, results_dir
):
    faults = FaultyWrite()
    store = start_store(store=FileStore(results_dir, write=faults))
    job_id = register(store)
    faults.results_full.set()
    store.tell(m.JobDone(job_id, b"{}"))
    assert outcome(store, job_id) == RUNNING
    store.stop()
    restarted = start_store()
    assert ask(restarted, m.TakeRecovered()) == (job_id,)


def test_unwritable_journal_refuses_the_job_without_using_an_id(
    start_store, register, worker, results_dir
):
    faults = FaultyWrite()
    store = start_store(store=FileStore(results_dir, write=faults))
    assert register(store) == 1
    faults.journal_broken.set()
    with pytest.raises(StorageError) as refused:
        register(store)
    assert "journal" in refused.value.problem
    assert not refused.value.transient  # EIO
    assert pending(store) == 1
    assert worker.flush() == [m.RunJob(1, Q1)]  # the refused job went to no worker
    faults.journal_broken.clear()
    assert register(store) == 2


def test_no_descriptor_for_the_commit_commits_in_the_store_and_goes_on(  # noqa: PLR0917 - fixtures
    start_store, register, worker, syncs, caplog, no_descriptors
):
    store = start_store()
    no_descriptors.set()
    syncs.elsewhere.clear()
    with caplog.at_level(logging.ERROR, logger="lestats.stores.journal"):
        assert register(store) == 1  # accepted as usual...
    assert any("committing here" in record.getMessage() for record in caplog.records)
    # ...after a sync in the store's own thread, none in the committer's.
    assert syncs.calls == 0
    assert any(name.startswith("ResultStore") for name in syncs.elsewhere)
    assert worker.flush() == [m.RunJob(1, Q1)]
    assert outcome(store, 1) == RUNNING
    no_descriptors.clear()
    assert store.is_alive()
    assert register(store, Q2) == 2  # the committer's road again
    assert syncs.calls == 1
    assert worker.flush() == [m.RunJob(2, Q2)]
    assert listing(store) == ((1, JobStatus.RUNNING), (2, JobStatus.RUNNING))


# --- supervision, recovery, the poison -----------------------------------------------------------


def test_reassign_sends_the_dead_workers_unfinished_jobs_to_the_replacement(
    store, register, recorder
):
    a, b, c, d = recorder(), recorder(), recorder(), recorder()
    ids = [
        register(store, query, to) for query, to in ((Q1, a), (Q2, b), (Q2, a), (Q1, a), (Q1, b))
    ]
    assert ids == [1, 2, 3, 4, 5]
    store.tell(m.JobDone(1, b"{}"))
    # Worker a crashed on job 3: it failed that job itself before dying.
    store.tell(m.JobErrored(3, "the worker running it crashed: Crash: x"))
    store.tell(m.Reassign(a.ref.actor_urn, c.ref))
    assert pending(store) == 3
    assert c.next() == m.RunJob(4, Q1)  # only what a still owed: not the done, not the failed
    assert c.flush() == []
    crashed = outcome(store, 3)
    assert crashed.status is JobStatus.ERROR
    assert "crashed" in crashed.reason
    # The moved job now belongs to the replacement: its own death moves it again...
    store.tell(m.Reassign(c.ref.actor_urn, d.ref))
    assert pending(store) == 3
    assert d.next() == m.RunJob(4, Q1)
    assert d.flush() == []
    # ...while a dead worker with nothing left moves nothing, and b's jobs stay b's.
    store.tell(m.Reassign(a.ref.actor_urn, c.ref))
    assert pending(store) == 3
    assert c.flush() == []
    assert a.flush() == [m.RunJob(1, Q1), m.RunJob(3, Q2), m.RunJob(4, Q1)]
    assert b.flush() == [m.RunJob(2, Q2), m.RunJob(5, Q1)]


def test_reassign_during_a_drain_sends_the_poison_after_the_jobs(store, register, recorder):
    a, replacement = recorder(), recorder()
    ids = [register(store, query, a) for query in (Q1, Q2, Q1)]
    poison = m.Poison()
    store.tell(m.Reassign(a.ref.actor_urn, replacement.ref, poison))
    received = replacement.take(4)
    assert received[:3] == [
        m.RunJob(job_id, query) for job_id, query in zip(ids, (Q1, Q2, Q1), strict=True)
    ]
    assert isinstance(received[3], m.Poison)
    assert received[3].drained is poison.drained


@pytest.mark.parametrize("commit_fails", [False, True])
def test_a_job_moved_before_its_commit_does_not_run_before_it_is_durable(
    file_store, recorder, syncs, commit_fails
):
    store = file_store
    a, replacement = recorder(), recorder()
    syncs.gate.clear()
    if commit_fails:
        syncs.error = OSError(5, "Input/output error")
    job = m.RegisterJob(Q2, a.ref)
    store.tell(job)
    assert syncs.entered.wait(5)  # job 1 is held at the committer
    store.tell(m.Reassign(a.ref.actor_urn, replacement.ref))  # a dies meanwhile
    assert pending(store) == 1
    before_the_commit = replacement.flush()
    syncs.gate.set()
    if commit_fails:
        with pytest.raises(StorageError):
            job.reply.result(timeout=5)
        assert ask(store, m.WatchJob(1)).status is JobStatus.ERROR
        assert before_the_commit + replacement.flush() == []  # refused: it never runs
    else:
        assert before_the_commit == []  # not durable yet: it must not run
        assert job.reply.result(timeout=5) == 1
        eventually(lambda: replacement.pending() == [m.RunJob(1, Q2)])


def test_assign_jobs_sends_each_job_to_its_worker(store, register, recorder):
    a, b, c = recorder(), recorder(), recorder()
    ids = [register(store, Q2, a) for _ in range(3)]
    assert a.take(3) == [m.RunJob(job_id, Q2) for job_id in ids]
    store.tell(m.JobDone(ids[1], b"{}"))
    # Unknown (99) or finished (2) jobs are not sent anywhere.
    store.tell(m.AssignJobs(((ids[0], b.ref), (ids[1], b.ref), (ids[2], b.ref), (99, b.ref))))
    assert pending(store) == 2
    assert b.flush() == [m.RunJob(ids[0], Q2), m.RunJob(ids[2], Q2)]
    # The store now knows b holds them: b's death moves them.
    store.tell(m.Reassign(b.ref.actor_urn, c.ref))
    assert pending(store) == 2
    assert c.take(2) == [m.RunJob(ids[0], Q2), m.RunJob(ids[2], Q2)]  # from the committer
    assert c.flush() == []
    assert a.flush() == []


def test_forward_poison_reaches_each_worker_behind_its_jobs(
    file_store, register, recorder, syncs, caplog
):
    store = file_store
    a, b, dead = recorder(), recorder(), recorder()
    assert [register(store, Q2, to) for to in (a, b)] == [1, 2]  # released: already sent
    stop_actor(dead.ref)
    syncs.entered.clear()
    syncs.gate.clear()  # the next jobs are held at the committer, unsent
    late = [m.RegisterJob(Q1, to.ref) for to in (a, b, a)]
    for message in late:
        store.tell(message)
    assert syncs.entered.wait(5)
    poison = m.Poison()
    with caplog.at_level(logging.WARNING):
        store.tell(m.ForwardPoison((a.ref, dead.ref, b.ref), poison))
        assert pending(store) == 5  # the store has passed the poison on...
        assert a.flush() == [m.RunJob(1, Q2)]  # ...and it did not overtake the held jobs
        assert b.flush() == [m.RunJob(2, Q2)]
        syncs.gate.set()
        assert [message.reply.result(timeout=5) for message in late] == [3, 4, 5]
        received = {"a": a.take(3), "b": b.take(2)}
        assert a.flush() == []
        assert b.flush() == []
    assert received["a"][:2] == [m.RunJob(3, Q1), m.RunJob(5, Q1)]
    assert received["b"][:1] == [m.RunJob(4, Q1)]
    for mine in received.values():
        assert isinstance(mine[-1], m.Poison)
        assert mine[-1].drained is poison.drained
    # The dead worker was skipped silently (its replacement gets the poison with the Reassign).
    assert [r.getMessage() for r in caplog.records] == []
    assert all(committer.is_alive() for committer in committers())
    assert not poison.drained.done()  # settled by EngineDrained, not by the workers' poison


def test_forward_poison_first_releases_what_the_store_still_holds(  # noqa: PLR0917 - fixtures
    start_store, register, recorder, results_dir, syncs, monkeypatch
):
    monkeypatch.setattr(result_store_module, "COMMIT_DELAY", 60.0)
    storage = BlockingStore(results_dir)
    store = start_store(store=storage)
    a, b = recorder(), recorder()
    first = register(store, Q1, a)
    assert a.flush() == [m.RunJob(first, Q1)]
    syncs.calls = 0
    storage.block = True
    store.tell(m.JobDone(first, b"{}"))
    assert storage.entered.wait(5)  # the store is busy: the jobs and the poison queue behind
    jobs = [m.RegisterJob(Q2, to.ref) for to in (a, b, b)]
    for message in jobs:
        store.tell(message)
    poison = m.Poison()
    store.tell(m.ForwardPoison((a.ref, b.ref), poison))
    storage.release.set()
    assert [message.reply.result(timeout=5) for message in jobs] == [2, 3, 4]
    received_a, received_b = a.take(2), b.take(3)
    assert received_a[0] == m.RunJob(2, Q2)
    assert received_b[:2] == [m.RunJob(3, Q2), m.RunJob(4, Q2)]
    for received in (received_a, received_b):
        assert isinstance(received[-1], m.Poison)
        assert received[-1].drained is poison.drained
    assert syncs.calls == 1  # the three held jobs left in one batch, ahead of the poison


def test_no_descriptor_when_forwarding_the_poison_still_forwards_it(  # noqa: PLR0917 - fixtures
    start_store, register, recorder, results_dir, monkeypatch, no_descriptors
):
    monkeypatch.setattr(result_store_module, "COMMIT_DELAY", 60.0)
    storage = BlockingStore(results_dir)
    store = start_store(store=storage)
    a = recorder()
    first = register(store, Q1, a)
    assert a.flush() == [m.RunJob(first, Q1)]
    storage.block = True
    store.tell(m.JobDone(first, b"{}"))
    assert storage.entered.wait(5)  # the job and the poison queue behind: the job is held
    job = m.RegisterJob(Q2, a.ref)
    store.tell(job)
    poison = m.Poison()
    store.tell(m.ForwardPoison((a.ref,), poison))
    no_descriptors.set()
    storage.release.set()
    assert job.reply.result(timeout=5) == 2  # committed in the store's thread
    assert pending(store) == 1
    assert a.take(1) == [m.RunJob(2, Q2)]
    (after_the_job,) = a.take(1)  # waits for it: the poison leaves after the job, not with it
    assert isinstance(after_the_job, m.Poison)
    assert a.flush() == []


def test_engine_drained_keeps_what_is_left_for_the_next_start(start_store, register, results_dir):
    store = start_store()
    done_id, left_id, failed_id = register(store), register(store, Q2), register(store)
    store.tell(m.JobDone(done_id, b"{}"))
    store.tell(m.JobErrored(failed_id, "nope"))
    drained = m.EngineDrained()
    store.tell(drained)
    assert drained.drained.result(timeout=5) is None
    assert outcome(store, left_id) == RUNNING
    assert outcome(store, done_id).status is JobStatus.DONE
    store.stop()
    # The journal was compacted: the next id, the unfinished job and the failed one.
    records = [
        json.loads(line) for line in (results_dir / "journal.jsonl").read_text().splitlines()
    ]
    assert records[0] == {"next": 4}
    assert len(records) == 3
    restarted = start_store()
    assert ask(restarted, m.TakeRecovered()) == (left_id,)
    assert outcome(restarted, failed_id) == JobOutcome(JobStatus.ERROR, reason="nope")


def test_store_start_fails_on_a_results_path_that_is_a_file(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(StorageError, match=r"not a directory|File exists"):
        ResultStore.start(FileStore(not_a_dir), max_pending=1)
    assert committers() == []


# --- the JournalCommitter ------------------------------------------------------------------------


def test_the_store_runs_its_own_committer_and_stops_it(start_store):
    store = start_store()
    assert ask(store, m.CountPending()) == 0  # started: on_start has run
    assert len(committers()) == 1
    names = [thread.name for thread in threading.enumerate()]
    assert any(name.startswith("JournalCommitter-") for name in names)
    store.stop()
    assert committers() == []


def test_two_stores_have_a_committer_each(start_store, tmp_path, register):
    first = start_store()
    second = start_store(store=FileStore(tmp_path / "two"))
    assert register(first) == 1
    assert register(second) == 1
    assert len(committers()) == 2
    first.stop()
    assert len(committers()) == 1
    assert register(second) == 2


@pytest.fixture
def store_stand_in(recorder):
    """A recording stand-in for the ResultStore a JournalCommitter reports refusals to."""
    return recorder()


@pytest.fixture
def committer(store_stand_in):
    ref = JournalCommitter.start(store_stand_in.ref)
    yield ref
    stop_actor(ref)


def journal_descriptor(tmp_path) -> int:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"job": 7}\n')
    return os.open(path, os.O_WRONLY | os.O_APPEND)


def barrier_of(fd: int):
    """A commit barrier like the FileStore's: sync `fd`, then close it whatever happens."""

    def barrier() -> None:
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    return barrier


def held(job_id, worker, query=Q1, reply=None):
    return m.HeldJob(Future() if reply is None else reply, job_id, worker.ref, query)


def test_the_committer_syncs_then_answers_each_reply_with_its_id(  # noqa: PLR0917 - fixtures
    committer, store_stand_in, worker, recorder, tmp_path, syncs
):
    other = recorder()
    fd = journal_descriptor(tmp_path)
    jobs = (held(7, worker, Q1), held(8, other, Q2), held(9, worker, Q2))
    syncs.gate.clear()
    committer.tell(m.Commit(barrier_of(fd), jobs))
    assert syncs.entered.wait(5)  # syncing: nothing released yet
    assert worker.flush() == []
    assert other.flush() == []
    assert not any(job.reply.done() for job in jobs)
    syncs.gate.set()
    assert [job.reply.result(timeout=5) for job in jobs] == [7, 8, 9]
    assert syncs.calls == 1  # one sync for the whole batch
    # Each job went to its own worker, in order, before its id was answered.
    assert worker.flush() == [m.RunJob(7, Q1), m.RunJob(9, Q2)]
    assert other.flush() == [m.RunJob(8, Q2)]
    assert store_stand_in.flush() == []  # nothing to report to the store
    committer.stop()  # whatever it still had to do is done: the descriptor is closed
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)


def test_a_committer_that_cannot_sync_refuses_the_replies(
    committer, store_stand_in, worker, caplog
):
    read_end, write_end = os.pipe()  # a pipe cannot be synced: EINVAL
    os.close(write_end)
    jobs = (held(1, worker), held(2, worker, Q2))
    with caplog.at_level(logging.ERROR, logger="lestats.actors.committer"):
        committer.tell(m.Commit(barrier_of(read_end), jobs))
        for job in jobs:
            with pytest.raises(StorageError) as refused:
                job.reply.result(timeout=5)
            assert "not durable" in refused.value.problem
    assert any("2 jobs refused" in record.getMessage() for record in caplog.records)
    # The jobs never run; the store hears that each of them failed.
    assert worker.flush() == []
    reports = store_stand_in.take(2)
    assert [(report.job_id, type(report)) for report in reports] == [
        (1, m.JobErrored),
        (2, m.JobErrored),
    ]
    assert all(report.reason.startswith("refused: ") for report in reports)
    assert all("not durable" in report.reason for report in reports)
    assert committer.is_alive()
    committer.stop()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(read_end)


def test_a_cancelled_reply_does_not_trouble_the_committer(committer, worker, tmp_path):
    gave_up = Future()
    assert gave_up.cancel()
    jobs = (held(1, worker, reply=gave_up), held(2, worker, Q2))
    committer.tell(m.Commit(barrier_of(journal_descriptor(tmp_path)), jobs))
    assert jobs[1].reply.result(timeout=5) == 2
    # The job whose client gave up is accepted all the same: it runs.
    assert worker.flush() == [m.RunJob(1, Q1), m.RunJob(2, Q2)]
    assert committer.is_alive()


def test_the_committer_skips_a_dead_worker_silently(  # noqa: PLR0917 - fixtures
    committer, store_stand_in, worker, recorder, tmp_path, caplog
):
    dead = recorder()
    stop_actor(dead.ref)
    jobs = (held(1, dead), held(2, worker, Q2))
    poison = m.Poison()
    with caplog.at_level(logging.DEBUG):
        committer.tell(m.Commit(barrier_of(journal_descriptor(tmp_path)), jobs))
        committer.tell(m.ForwardPoison((dead.ref, worker.ref), poison))
        assert [job.reply.result(timeout=5) for job in jobs] == [1, 2]  # both accepted
        received = worker.take(2)
    assert received[0] == m.RunJob(2, Q2)
    assert isinstance(received[1], m.Poison)
    assert received[1].drained is poison.drained
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert store_stand_in.flush() == []  # not failed: the store moves it to the replacement
    assert committer.is_alive()


# --- stopping ------------------------------------------------------------------------------------


def test_requests_queued_behind_a_stop_are_refused_and_the_held_job_answered(
    start_store, register, worker, results_dir
):
    storage = BlockingStore(results_dir)
    store = start_store(store=storage)
    job_id = register(store)
    storage.block = True
    store.tell(m.JobDone(job_id, b"{}"))
    assert storage.entered.wait(5)  # the store is busy saving
    accepted = m.RegisterJob(Q2, worker.ref)
    store.tell(accepted)  # queued before the stop: numbered, journaled, answered
    store.stop(block=False)  # the stop is queued...
    late = [m.CountPending(), m.RegisterJob(Q1, worker.ref), m.WatchJob(job_id)]
    for message in late:
        store.tell(message)  # ...and these behind it: the store is still alive, tell succeeds
    storage.release.set()
    assert store.actor_stopped.wait(5)
    assert accepted.reply.result(timeout=5) == 2
    done, _ = wait([message.reply for message in late], timeout=5)
    assert len(done) == len(late)  # answered or refused: anything but silence
    for message in late:
        with pytest.raises(ShuttingDown):
            message.reply.result(timeout=0)
    eventually(lambda: committers() == [])  # its on_stop is over: the journal is closed
    restarted = start_store()  # the refused job used up no id; job 2 was kept
    assert ask(restarted, m.TakeRecovered()) == (2,)
    assert register(restarted) == 3


def test_a_commit_failing_while_the_store_stops_refuses_every_held_reply(
    start_store, worker, syncs
):
    store = start_store()
    syncs.error = OSError(5, "Input/output error")
    syncs.gate.clear()
    jobs = [m.RegisterJob(Q1, worker.ref), m.RegisterJob(Q2, worker.ref)]
    for message in jobs:
        store.tell(message)
    assert syncs.entered.wait(5)
    assert pending(store) == 2  # both handed to the committer, which is held at its sync
    store.stop(block=False)  # on_stop waits for the committer to finish and stop
    eventually(lambda: not store.is_alive())
    syncs.gate.set()
    assert store.actor_stopped.wait(5)
    eventually(lambda: committers() == [])
    done, _ = wait([message.reply for message in jobs], timeout=2)
    assert len(done) == len(jobs), "a client waits forever"
    for message in jobs:
        with pytest.raises(StorageError):
            message.reply.result(timeout=0)


def test_a_second_stop_queued_behind_the_first_is_answered(start_store, register, results_dir):
    storage = BlockingStore(results_dir)
    store = start_store(store=storage)
    job_id = register(store)
    storage.block = True
    store.tell(m.JobDone(job_id, b"{}"))
    assert storage.entered.wait(5)
    first, second = store.stop(block=False), store.stop(block=False)
    storage.release.set()
    assert first.get(timeout=5) is True
    assert second.get(timeout=2) is True


# --- subscribers ---------------------------------------------------------------------------------


class Subscriber:
    """Stands in for the event loop's copy: `push` keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: queue.Queue[tuple[tuple[int, JobOutcome], ...]] = queue.Queue()

    def push(self, batch: tuple[tuple[int, JobOutcome], ...]) -> None:
        assert isinstance(batch, tuple)
        self.batches.put(batch)

    def take(self, count: int, timeout: float = 5) -> list[tuple[int, JobOutcome]]:
        """The next `count` finished jobs pushed, across batches."""
        jobs: list[tuple[int, JobOutcome]] = []
        while len(jobs) < count:
            jobs.extend(self.batches.get(timeout=timeout))
        return jobs

    def pending(self) -> list[tuple[int, JobOutcome]]:
        """The finished jobs pushed and not taken yet, without waiting."""
        jobs: list[tuple[int, JobOutcome]] = []
        while not self.batches.empty():
            jobs.extend(self.batches.get_nowait())
        return jobs


class RaisingSubscriber:
    """A subscriber whose push raises `error`: RuntimeError as a closed loop's does, or a bug."""

    def __init__(self, error: Exception) -> None:
        self.calls = 0
        self._error = error

    def push(self, batch: tuple[tuple[int, JobOutcome], ...]) -> None:
        del batch
        self.calls += 1
        raise self._error


def test_a_subscriber_is_pushed_every_job_that_finishes_done_or_error(store, register):
    early = register(store)
    store.tell(m.JobDone(early, b"[0]"))  # finished before the subscription: not pushed
    assert ask(store, m.WatchJob(early)).status is JobStatus.DONE
    subscriber = Subscriber()
    store.tell(m.Subscribe(subscriber.push))
    done_id, failed_id, running_id = register(store), register(store), register(store)
    store.tell(m.JobDone(done_id, b'{"Ohio": 1.5}'))
    store.tell(m.JobErrored(failed_id, "ValueError: no"))
    assert subscriber.take(2) == [
        (done_id, JobOutcome(JobStatus.DONE, b'{"Ohio": 1.5}')),
        (failed_id, JobOutcome(JobStatus.ERROR, reason="ValueError: no")),
    ]
    assert pending(store) == 1  # handled after the pushes: nothing else was pushed
    assert subscriber.pending() == []
    store.tell(m.JobDone(running_id, b"[3]"))
    assert subscriber.take(1) == [(running_id, JobOutcome(JobStatus.DONE, b"[3]"))]


def test_a_result_that_could_not_be_saved_is_pushed_as_an_error(start_store, register, results_dir):
    faults = FaultyWrite()
    faults.results_error = OSError(5, "Input/output error")  # not transient: the job fails
    store = start_store(store=FileStore(results_dir, write=faults))
    subscriber = Subscriber()
    store.tell(m.Subscribe(subscriber.push))
    job_id = register(store)
    faults.results_full.set()
    store.tell(m.JobDone(job_id, b"[1]"))
    ((pushed_id, pushed),) = subscriber.take(1)
    assert pushed_id == job_id
    assert pushed.status is JobStatus.ERROR
    assert "could not save" in pushed.reason
    assert pushed == outcome(store, job_id)


@pytest.mark.parametrize(("commit_batch", "sizes"), [(256, [10]), (4, [4, 4, 2])])
def test_jobs_finished_in_a_burst_are_pushed_in_batches(  # noqa: PLR0917 - fixtures
    start_store, register, results_dir, monkeypatch, commit_batch, sizes
):
    monkeypatch.setattr(result_store_module, "COMMIT_BATCH", commit_batch)
    storage = BlockingStore(results_dir)
    store = start_store(store=storage)
    subscriber = Subscriber()
    store.tell(m.Subscribe(subscriber.push))
    ids = [register(store) for _ in range(10)]
    storage.block = True
    store.tell(m.JobDone(ids[0], b"[0]"))
    assert storage.entered.wait(5)  # the store is busy: the other results queue up behind
    storage.block = False
    for job_id in ids[1:]:
        store.tell(m.JobDone(job_id, b"[%d]" % job_id))
    storage.release.set()
    batches = [subscriber.batches.get(timeout=5) for _ in sizes]
    assert [len(batch) for batch in batches] == sizes
    assert [job_id for batch in batches for job_id, _ in batch] == ids
    assert pending(store) == 0
    assert subscriber.pending() == []


def test_unsubscribe_stops_the_pushes_to_that_subscriber_only(store, register):
    gone, kept = Subscriber(), Subscriber()
    store.tell(m.Subscribe(gone.push))
    store.tell(m.Subscribe(kept.push))
    first, second = register(store), register(store)
    store.tell(m.JobDone(first, b"[1]"))
    assert gone.take(1) == kept.take(1) == [(first, JobOutcome(JobStatus.DONE, b"[1]"))]
    # `gone.push` is a new bound method each time: an equal one unsubscribes.
    store.tell(m.Unsubscribe(gone.push))
    store.tell(m.Unsubscribe(gone.push))  # twice: harmless
    store.tell(m.Unsubscribe(Subscriber().push))  # never subscribed: harmless
    store.tell(m.JobDone(second, b"[2]"))
    assert kept.take(1) == [(second, JobOutcome(JobStatus.DONE, b"[2]"))]
    assert pending(store) == 0
    assert gone.pending() == []


def test_a_subscriber_whose_push_raises_runtime_error_is_dropped(store, register):
    closed, kept = RaisingSubscriber(RuntimeError("Event loop is closed")), Subscriber()
    store.tell(m.Subscribe(closed.push))  # first: its failure must not stop the others' pushes
    store.tell(m.Subscribe(kept.push))
    first, second = register(store), register(store)
    store.tell(m.JobDone(first, b"[1]"))
    assert kept.take(1) == [(first, JobOutcome(JobStatus.DONE, b"[1]"))]
    assert closed.calls == 1
    store.tell(m.JobErrored(second, "boom"))
    assert kept.take(1) == [(second, JobOutcome(JobStatus.ERROR, reason="boom"))]
    assert closed.calls == 1  # dropped after its first failure
    assert store.is_alive()
    assert register(store) == 3


def test_a_subscriber_whose_push_fails_otherwise_is_dropped_and_the_store_lives_on(store, register):
    broken, kept = RaisingSubscriber(ValueError("a bug in the subscriber")), Subscriber()
    store.tell(m.Subscribe(broken.push))
    store.tell(m.Subscribe(kept.push))
    first, second = register(store), register(store)
    store.tell(m.JobDone(first, b"[1]"))
    assert kept.take(1) == [(first, JobOutcome(JobStatus.DONE, b"[1]"))]
    store.tell(m.JobDone(second, b"[2]"))
    assert kept.take(1) == [(second, JobOutcome(JobStatus.DONE, b"[2]"))]
    assert broken.calls == 1
    assert ask(store, m.GetOutcome(first)) == JobOutcome(JobStatus.DONE, b"[1]")
