"""Batches on Redis: what arrives together goes to Redis in one round trip, all or nothing.

The ResultStore records the registrations (and the completions) queued behind the message it is
handling with one script call each way. These tests hold the store's thread in a read, queue a
burst behind it, and count with Redis's own `INFO commandstats` what reached the real
redis-server: one script call, one fsync'd write, one announcement for the whole burst.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import redis

from lestats import jsonio
from lestats import messages as m
from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus
from lestats.data.query import Query
from lestats.errors import Overloaded, StorageError
from lestats.stores.memory import MemoryStore
from lestats.stores.redis import LAST_JOB_ID, RedisStore, finished_channel
from lestats.testing import MUSCLE, OBESITY, ask, eventually

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import pykka
    from redis_support import RedisServer

pytest_plugins = ["redis_support"]

BEST5 = Query("best5", OBESITY)
STATE = Query("state_mean", MUSCLE, "Ohio")
BURST = 50
DEADLINE = 10.0


class Gated:
    """Mixed into a store: its next `outcome` waits at a gate while `hold` is set. The
    ResultStore's thread is busy meanwhile, so the messages told to it queue up."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.hold = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def outcome(self, job_id: int) -> JobOutcome:
        if self.hold:
            self.hold = False
            self.entered.set()
            if not self.release.wait(DEADLINE):
                raise AssertionError("the test never opened the gate")
        return super().outcome(job_id)  # type: ignore[misc,no-any-return]


class GatedRedisStore(Gated, RedisStore):
    """The real RedisStore, with the gate."""


@contextlib.contextmanager
def busy(store: pykka.ActorRef[Any], gated: Gated, running: int) -> Iterator[None]:
    """Hold the store's thread in a read of the unfinished job `running` for the block."""
    gated.entered.clear()
    gated.release.clear()
    gated.hold = True
    read = m.GetOutcome(running)
    store.tell(read)
    assert gated.entered.wait(DEADLINE)
    try:
        yield
    finally:
        gated.release.set()
    assert read.reply.result(timeout=DEADLINE) == RUNNING


def calls(server: RedisServer) -> dict[str, int]:
    """How many times redis-server ran each command so far (those run by scripts included)."""
    counts = {}
    for key, value in server.info("commandstats").items():
        fields = dict(part.split("=", 1) for part in value.split(","))
        counts[key.removeprefix("cmdstat_")] = int(fields["calls"])
    return counts


def ran(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The commands run between two `calls`, with how often (but INFO, which `calls` runs)."""
    return {
        name: count - before.get(name, 0)
        for name, count in after.items()
        if count != before.get(name, 0) and name != "info"
    }


def result_of(job_id: int) -> bytes:
    return jsonio.dumps({"job": job_id, "answer": [job_id * 1.5, "x" * (job_id % 7)]})


@pytest.fixture
def worker(recorder: Callable[[], Any]) -> Any:
    """The recording stand-in Worker the jobs go to."""
    return recorder()


@pytest.fixture
def gated(redis_server: RedisServer) -> Iterator[GatedRedisStore]:
    """A GatedRedisStore on this test's redis-server (the ResultStore opens and closes it)."""
    store = GatedRedisStore(redis_server.url, claim_idle=30.0)
    yield store
    store.release.set()


@pytest.fixture
def announcements(redis_server: RedisServer) -> Iterator[Callable[[int], list[list[int]]]]:
    """`heard(count)`: the next `count` announcements of finished jobs, as lists of ids."""
    client = redis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub()
    pubsub.subscribe(finished_channel("lestats", 0))
    confirmed = pubsub.get_message(timeout=DEADLINE)  # subscribed before the test begins
    assert confirmed is not None
    assert confirmed["type"] == "subscribe"

    def heard(count: int) -> list[list[int]]:
        messages: list[list[int]] = []
        deadline = time.monotonic() + DEADLINE
        while len(messages) < count and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "message":
                _node, *ids = message["data"].split()
                messages.append([int(job_id) for job_id in ids])
        return messages

    yield heard
    pubsub.close()
    client.close()


def test_registrations_queued_together_are_accepted_in_one_round_trip(
    redis_server, start_store, gated, worker
):
    store = start_store(store=gated, max_pending=1000)
    assert ask(store, m.RegisterJob(BEST5, worker.ref)) == 1
    before = calls(redis_server)
    burst = [m.RegisterJob((BEST5, STATE)[n % 2], worker.ref) for n in range(BURST)]
    with busy(store, gated, 1):
        for message in burst:
            store.tell(message)
    assert [message.reply.result(timeout=DEADLINE) for message in burst] == list(
        range(2, BURST + 2)
    )
    during = ran(before, calls(redis_server))
    # One script call for the fifty jobs: one write to the AOF, one fsync, one reply.
    assert during["evalsha"] == 1
    assert during["xreadgroup"] == 1
    assert during["xadd"] == BURST
    assert worker.take(BURST + 1) == [m.RunJob(1, BEST5)] + [
        m.RunJob(n + 2, message.query) for n, message in enumerate(burst)
    ]
    raw = redis.Redis.from_url(redis_server.url)
    assert raw.xlen("{lestats}:jobs") == BURST + 1
    assert {raw.hget("{lestats}:status", n) for n in range(1, BURST + 2)} == {b"r"}
    raw.close()


def test_completions_queued_together_are_recorded_in_one_round_trip_and_one_announcement(
    redis_server, start_store, gated, worker, announcements
):
    store = start_store(store=gated, max_pending=1000)
    ids = [ask(store, m.RegisterJob(STATE, worker.ref)) for _ in range(BURST + 2)]
    assert ids == list(range(1, BURST + 3))
    still_running, first, finishing = ids[0], ids[1], ids[2:]
    store.tell(m.JobDone(first, result_of(first)))  # Redis has the script from now on
    assert ask(store, m.WatchJob(first)) == JobOutcome(JobStatus.DONE, result_of(first))
    assert announcements(1) == [[first]]
    before = calls(redis_server)
    with busy(store, gated, still_running):
        for job_id in finishing:
            if job_id % 5:
                store.tell(m.JobDone(job_id, result_of(job_id)))
            else:
                store.tell(m.JobErrored(job_id, f"no answer for {job_id}"))
    outcomes = [ask(store, m.WatchJob(job_id)) for job_id in finishing]
    assert outcomes == [
        JobOutcome(JobStatus.DONE, result_of(job_id))
        if job_id % 5
        else JobOutcome(JobStatus.ERROR, reason=f"no answer for {job_id}")
        for job_id in finishing
    ]
    during = ran(before, calls(redis_server))
    assert during["evalsha"] == 1  # the watches were answered without Redis too
    assert during["xack"] == BURST
    assert during["publish"] == 1
    assert announcements(1) == [finishing]
    # Every view agrees: a read through Redis itself (another node) says the same.
    other = RedisStore(redis_server.url)
    try:
        assert [other.outcome(job_id) for job_id in finishing] == outcomes
        assert other.outcome(still_running) == RUNNING
        assert other.unfinished_count() == 1
        assert other.outcome(first) == JobOutcome(JobStatus.DONE, result_of(first))
    finally:
        other.close()


def test_a_batch_refused_in_an_outage_accepts_none_and_ids_stay_consecutive(
    redis_server, start_store, gated, worker
):
    store = start_store(store=gated, max_pending=1000)
    assert ask(store, m.RegisterJob(BEST5, worker.ref)) == 1
    burst = [m.RegisterJob(STATE, worker.ref) for _ in range(BURST)]
    with busy(store, gated, 1):
        for message in burst:
            store.tell(message)
        redis_server.kill()
    refusals = [message.reply.exception(timeout=DEADLINE) for message in burst]
    # Each one transient, which the HTTP layer answers with 503 and Retry-After.
    assert all(isinstance(error, StorageError) and error.transient for error in refusals)
    redis_server.start()
    job_id = register_once_redis_is_back(store, worker)
    assert job_id == 2  # no id was used up by the refused batch
    raw = redis.Redis.from_url(redis_server.url)
    assert raw.xlen("{lestats}:jobs") == 2
    assert raw.hlen("{lestats}:status") == 2
    raw.close()


def register_once_redis_is_back(store: pykka.ActorRef[Any], worker: Any) -> int:
    """Register a job, again while the store still finds Redis away (it reconnects by itself)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            return ask(store, m.RegisterJob(BEST5, worker.ref))
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_batch_of_completions_refused_in_an_outage_is_recorded_once_redis_is_back(
    redis_server, start_store, gated, worker
):
    store = start_store(store=gated, max_pending=1000)
    ids = [ask(store, m.RegisterJob(STATE, worker.ref)) for _ in range(21)]
    still_running, finishing = ids[0], ids[1:]
    with busy(store, gated, still_running):
        for job_id in finishing:
            store.tell(m.JobDone(job_id, result_of(job_id)))
        redis_server.kill()
    # Not recorded: still running (answered without Redis: this node runs them).
    assert [ask(store, m.GetOutcome(job_id)) for job_id in finishing] == [RUNNING] * 20
    redis_server.start()
    outcomes = [ask(store, m.WatchJob(job_id), timeout=DEADLINE) for job_id in finishing]
    assert outcomes == [JobOutcome(JobStatus.DONE, result_of(job_id)) for job_id in finishing]
    raw = redis.Redis.from_url(redis_server.url)
    assert [raw.hget("{lestats}:status", job_id) for job_id in finishing] == [b"d"] * 20
    assert raw.xlen("{lestats}:jobs") == 1  # only the job still running
    raw.close()


def test_the_pending_limit_counts_the_jobs_queued_for_a_batch(start_store, gated, worker):
    store = start_store(store=gated, max_pending=10)
    assert ask(store, m.RegisterJob(BEST5, worker.ref)) == 1
    burst = [m.RegisterJob(BEST5, worker.ref) for _ in range(15)]
    with busy(store, gated, 1):
        for message in burst:
            store.tell(message)
    assert [message.reply.result(timeout=DEADLINE) for message in burst[:9]] == list(range(2, 11))
    assert all(
        isinstance(message.reply.exception(timeout=DEADLINE), Overloaded) for message in burst[9:]
    )
    assert ask(store, m.CountPending()) == 10


def test_the_poison_reaches_the_worker_behind_the_jobs_of_a_queued_batch(
    start_store, gated, worker
):
    store = start_store(store=gated)
    assert ask(store, m.RegisterJob(BEST5, worker.ref)) == 1
    burst = [m.RegisterJob(STATE, worker.ref) for _ in range(5)]
    poison = m.Poison()
    with busy(store, gated, 1):
        for message in burst:
            store.tell(message)
        store.tell(m.ForwardPoison((worker.ref,), poison))
    received = worker.take(7)
    assert received[:6] == [m.RunJob(n, BEST5 if n == 1 else STATE) for n in range(1, 7)]
    assert isinstance(received[6], m.Poison)
    assert received[6].drained is poison.drained


def test_a_batch_accepted_is_in_the_aof_before_its_ids_are_answered(
    redis_server, start_store, gated, worker
):
    store = start_store(store=gated)
    assert ask(store, m.RegisterJob(BEST5, worker.ref)) == 1
    burst = [m.RegisterJob(STATE, worker.ref) for _ in range(BURST)]
    with busy(store, gated, 1):
        for message in burst:
            store.tell(message)
    assert [message.reply.result(timeout=DEADLINE) for message in burst][-1] == BURST + 1
    redis_server.kill()  # SIGKILL right after the answers: the AOF (fsync always) is all
    redis_server.start()
    raw = redis.Redis.from_url(redis_server.url)
    assert int(raw.get("{lestats}:last")) == BURST + 1
    assert [raw.hget("{lestats}:status", n) for n in range(1, BURST + 2)] == [b"r"] * (BURST + 1)
    assert raw.xlen("{lestats}:jobs") == BURST + 1
    raw.close()


# --- the store's batch methods --------------------------------------------------------------------


@pytest.fixture
def node(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore(redis_url)
    store.open()
    yield store
    store.close()


def test_accept_many_gives_consecutive_ids_and_each_batch_is_contiguous_across_nodes(redis_url):
    nodes = [RedisStore(redis_url) for _ in range(4)]
    for store in nodes:
        store.open()
    batches: list[list[int]] = []
    lock = threading.Lock()

    def accept(store: RedisStore) -> None:
        for size in (1, 7, 3, 16, 5) * 6:
            ids = store.accept_many([BEST5] * size)
            with lock:
                batches.append(ids)

    threads = [threading.Thread(target=accept, args=(store,)) for store in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE * 3)
    try:
        every = sorted(job_id for batch in batches for job_id in batch)
        assert every == list(range(1, len(every) + 1))
        assert len(every) == 4 * 6 * (1 + 7 + 3 + 16 + 5)
        assert all(batch == list(range(batch[0], batch[0] + len(batch))) for batch in batches)
    finally:
        for store in nodes:
            store.close()


def test_complete_many_records_each_job_once_and_says_which(node, redis_server):
    a, b, c = node.accept_many([BEST5, STATE, BEST5])
    assert node.complete_many([(b, JobOutcome(JobStatus.DONE, b"[2]"))]) == [True]
    flags = node.complete_many(
        [
            (a, JobOutcome(JobStatus.DONE, b"[1]")),
            (b, JobOutcome(JobStatus.DONE, b"[20]")),  # finished already: its result stays
            (c, JobOutcome(JobStatus.ERROR, reason="no data")),
            (a, JobOutcome(JobStatus.DONE, b"[10]")),  # twice in one batch: the first wins
        ]
    )
    assert flags == [True, False, True, False]
    assert node.outcome(a) == JobOutcome(JobStatus.DONE, b"[1]")
    assert node.outcome(b) == JobOutcome(JobStatus.DONE, b"[2]")
    assert node.outcome(c) == JobOutcome(JobStatus.ERROR, reason="no data")
    before = calls(redis_server)
    assert node.accept_many([]) == []
    assert node.complete_many([]) == []
    assert "evalsha" not in ran(before, calls(redis_server))  # an empty batch: no round trip


def test_a_batch_past_the_last_id_is_refused_whole(node, redis_url):
    raw = redis.Redis.from_url(redis_url)
    raw.set("{lestats}:last", LAST_JOB_ID - 3)
    with pytest.raises(StorageError, match="job ids exhausted") as refused:
        node.accept_many([BEST5] * 3)
    assert not refused.value.transient
    assert int(raw.get("{lestats}:last")) == LAST_JOB_ID - 3
    assert raw.xlen("{lestats}:jobs") == 0
    assert raw.hlen("{lestats}:status") == 0
    assert node.accept_many([BEST5] * 2) == [LAST_JOB_ID - 2, LAST_JOB_ID - 1]
    assert raw.xrange("{lestats}:jobs")[-1][0] == f"{LAST_JOB_ID - 1}-0".encode()
    assert node.outcome(LAST_JOB_ID - 1) == RUNNING
    raw.close()


def test_a_garbled_announcement_is_skipped_and_the_listener_goes_on(redis_url):
    heard: list[list[int]] = []
    listening = RedisStore(redis_url)
    listening.open(lambda ids: heard.append(list(ids)))
    other = RedisStore(redis_url)
    other.open()
    try:
        raw = redis.Redis.from_url(redis_url)
        raw.publish(finished_channel("lestats", 0), b"some-node not-an-id")
        raw.close()
        ids = other.accept_many([BEST5, STATE])
        other.complete_many([(job_id, JobOutcome(JobStatus.DONE, b"1")) for job_id in ids])
        eventually(lambda: ids in heard, DEADLINE)
    finally:
        other.close()
        listening.close()


# --- the ResultStore's fallback when a batch is refused for good ----------------------------------


class RefusesBatchesStore(Gated, MemoryStore):
    """A batching store whose batches of finished jobs are refused for good, as a server does
    when one result is more than it takes: each job alone is recorded, except the bad one."""

    BAD = b"too big"
    refused = 0

    def accept_many(self, queries: Sequence[Query]) -> list[int]:
        return [self.accept(query) for query in queries]

    def complete_many(self, finished: Sequence[tuple[int, JobOutcome]]) -> list[bool]:
        if any(outcome.result == self.BAD for _, outcome in finished):
            self.refused += 1
            raise StorageError("a result is larger than the store takes")
        return [self._one(job_id, outcome) for job_id, outcome in finished]

    def complete(self, job_id: int, result: bytes) -> bool:
        if result == self.BAD:
            raise StorageError("a result is larger than the store takes")
        return super().complete(job_id, result)

    def _one(self, job_id: int, outcome: JobOutcome) -> bool:
        if outcome.status is JobStatus.DONE:
            return self.complete(job_id, outcome.result or b"")
        return self.fail(job_id, outcome.reason or "")


def test_a_batch_refused_for_good_is_recorded_job_by_job_and_only_the_bad_one_fails(
    start_store, worker
):
    refusing = RefusesBatchesStore()
    store = start_store(store=refusing)
    ids = [ask(store, m.RegisterJob(BEST5, worker.ref)) for _ in range(6)]
    still_running, finishing = ids[0], ids[1:]
    with busy(store, refusing, still_running):
        for job_id in finishing:
            store.tell(m.JobDone(job_id, RefusesBatchesStore.BAD if job_id == 4 else b"[1]"))
    outcomes = [ask(store, m.WatchJob(job_id)) for job_id in finishing]
    assert refusing.refused == 1  # the batch of five, once
    assert [outcome.status for outcome in outcomes] == [
        JobStatus.ERROR if job_id == 4 else JobStatus.DONE for job_id in finishing
    ]
    assert "larger than the store takes" in (outcomes[2].reason or "")
    assert ask(store, m.CountPending()) == 1
