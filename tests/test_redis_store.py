"""RedisStore against a real redis-server: each guarantee of `lestats.stores.base`, two nodes."""

from __future__ import annotations

import queue
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import pytest
import redis

from lestats.actors.jobs import RUNNING, JobOutcome, JobStatus
from lestats.data.query import Query
from lestats.errors import StorageError, UnknownJob
from lestats.stores.base import Retention
from lestats.stores.redis import RedisStore
from lestats.testing import MUSCLE, OBESITY

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from redis_support import RedisServer

pytest_plugins = ["redis_support"]

BEST5 = Query("best5", OBESITY)
WORST5 = Query("worst5", MUSCLE)


@pytest.fixture
def make_store(redis_url: str) -> Iterator[Callable[..., RedisStore]]:
    """Open RedisStores (nodes) on this test's server; close every one at teardown."""
    stores: list[RedisStore] = []

    def make(notify=None, **options) -> RedisStore:
        store = RedisStore(redis_url, **options)
        stores.append(store)
        store.open(notify)
        return store

    yield make
    for store in stores:
        store.close()


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def test_two_nodes_accepting_from_threads_get_distinct_consecutive_ids(make_store):
    nodes = [make_store() for _ in range(4)]
    ids: list[list[int]] = [[] for _ in nodes]

    def accept(index: int) -> None:
        ids[index].extend(nodes[index].accept(BEST5) for _ in range(300))

    threads = [threading.Thread(target=accept, args=(i,)) for i in range(len(nodes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    issued = sorted(i for part in ids for i in part)
    assert issued == list(range(1, 1201))
    assert all(part == sorted(part) for part in ids)
    assert nodes[0].last_id() == 1200
    assert nodes[1].unfinished_count() == 1200


def test_a_job_completes_once_and_every_node_sees_the_same_outcome(make_store):
    a, b = make_store(), make_store()
    first, second = a.accept(BEST5), b.accept(WORST5)
    assert (first, second) == (1, 2)
    assert a.outcome(first) == RUNNING
    assert b.outcome(first) == RUNNING
    assert a.complete(first, b'{"Ohio": 30.5}')
    assert not a.complete(first, b'{"Ohio": 99}')
    assert not b.complete(first, b'{"Ohio": 99}')
    assert not b.fail(first, "too late")
    assert b.outcome(first) == JobOutcome(JobStatus.DONE, b'{"Ohio": 30.5}')
    assert b.fail(second, "it broke")
    assert not a.complete(second, b"1")
    assert a.outcome(second) == JobOutcome(JobStatus.ERROR, reason="it broke")
    assert a.statuses() == [(1, JobStatus.DONE), (2, JobStatus.ERROR)]
    assert a.unfinished_count() == b.unfinished_count() == 0
    with pytest.raises(UnknownJob):
        a.outcome(3)


def test_statuses_page_across_the_whole_job_space(make_store):
    a, b = make_store(), make_store()
    for _ in range(10):
        a.accept(BEST5)
        b.accept(BEST5)
    for job_id in range(1, 21, 3):
        b.complete(job_id, b"[]")
    listed = a.statuses()
    assert [job_id for job_id, _ in listed] == list(range(1, 21))
    assert {job_id for job_id, s in listed if s is JobStatus.DONE} == set(range(1, 21, 3))
    assert a.statuses(after=5, limit=4) == listed[5:9]
    assert a.statuses(after=20) == []
    assert a.unfinished_count() == b.unfinished_count() == 20 - len(range(1, 21, 3))


def test_statuses_page_past_one_script_call(make_store, monkeypatch):
    monkeypatch.setattr("lestats.stores.redis.PAGE", 7)
    a = make_store()
    for _ in range(30):
        a.accept(BEST5)
    for job_id in range(1, 31):
        if job_id % 3:
            a.complete(job_id, b"[]")
            a.forget(job_id)  # holes in the listing, across several script calls
    kept = list(range(3, 31, 3))
    assert [job_id for job_id, _ in a.statuses()] == kept
    assert [job_id for job_id, _ in a.statuses(after=3, limit=4)] == kept[1:5]


def test_a_waiter_on_one_node_hears_when_another_node_finishes(make_store):
    heard: queue.Queue[list[int]] = queue.Queue()
    a = make_store()
    b = make_store(notify=lambda ids: heard.put(list(ids)))
    job_id = a.accept(BEST5)
    a.complete(job_id, b"[]")
    assert heard.get(timeout=5) == [job_id]
    own = b.accept(BEST5)
    b.complete(own, b"[]")  # a node is not told about its own jobs
    other = a.accept(BEST5)
    a.fail(other, "no")
    assert heard.get(timeout=5) == [other]


def test_a_dead_nodes_jobs_are_taken_over_after_its_idle_time(redis_url, make_store):
    script = textwrap.dedent(
        f"""
        import sys
        from lestats.data.query import Query
        from lestats.stores.redis import RedisStore
        store = RedisStore({redis_url!r}, claim_idle=1.0)
        store.open()
        ids = [store.accept(Query("best5", {OBESITY!r})) for _ in range(5)]
        print(*ids, flush=True)
        sys.stdin.read()
        """
    )
    node = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ids = [int(word) for word in node.stdout.readline().split()]
        survivor = make_store(claim_idle=1.0)
        assert survivor.take_over() == ()  # alive: its jobs are its own
        node.kill()
        node.wait()
        killed = time.monotonic()
    finally:
        node.kill()
        node.wait()
        node.stdin.close()
        node.stdout.close()
    taken: tuple[tuple[int, Query], ...] = ()
    while not taken and time.monotonic() < killed + 5:
        taken = survivor.take_over()
    took = time.monotonic() - killed
    assert [job_id for job_id, _ in taken] == ids == [1, 2, 3, 4, 5]
    assert all(query == BEST5 for _, query in taken)
    assert took <= 1.0 + 0.5  # the heartbeat's life plus a margin for this shared machine
    assert survivor.take_over() == ()
    assert all(survivor.outcome(job_id) == RUNNING for job_id in ids)
    assert all(survivor.complete(job_id, b"[]") for job_id in ids)
    assert survivor.unfinished_count() == 0


def test_a_closed_nodes_unfinished_jobs_are_taken_over_at_once(redis_url, make_store):
    leaving = make_store(claim_idle=60)
    ids = [leaving.accept(BEST5) for _ in range(3)]
    leaving.close()
    staying = RedisStore(redis_url, claim_idle=60)
    try:
        assert [job_id for job_id, _ in staying.open().unfinished] == ids
    finally:
        staying.close()


def test_a_live_nodes_heartbeat_keeps_its_jobs(make_store):
    owner = make_store(claim_idle=0.3)
    job_id = owner.accept(BEST5)
    other = make_store(claim_idle=0.3)
    deadline = time.monotonic() + 1.5  # five idle times: the heartbeat must have kept it
    while time.monotonic() < deadline:
        assert other.take_over() == ()
        time.sleep(0.05)
    assert owner.complete(job_id, b"[]")


def test_a_restarted_node_runs_the_jobs_of_its_former_self(redis_url):
    before = RedisStore(redis_url, claim_idle=60)
    before.open()
    job_id = before.accept(BEST5)
    before.close()
    after = RedisStore(redis_url)
    try:
        assert after.open().unfinished == ((job_id, BEST5),)
    finally:
        after.close()


def test_redis_away_is_transient_and_nothing_accepted_is_lost(
    redis_server: RedisServer, make_store
):
    a = make_store()
    kept = [a.accept(BEST5) for _ in range(3)]
    a.complete(kept[0], b"[1]")
    redis_server.kill()  # no shutdown: only what the AOF (fsync always) holds survives
    for call in (lambda: a.accept(BEST5), lambda: a.outcome(kept[0]), a.statuses, a.last_id):
        with pytest.raises(StorageError) as caught:
            call()
        assert caught.value.transient
        assert "unreachable" in caught.value.problem
    redis_server.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            next_id = a.accept(WORST5)
            break
        except StorageError:
            if time.monotonic() > deadline:
                raise
    assert next_id == 4
    assert a.outcome(kept[0]) == JobOutcome(JobStatus.DONE, b"[1]")
    assert a.complete(kept[1], b"[2]")
    assert a.unfinished_count() == 2
    assert a.statuses() == [
        (1, JobStatus.DONE),
        (2, JobStatus.DONE),
        (3, JobStatus.RUNNING),
        (4, JobStatus.RUNNING),
    ]


def test_a_node_hears_finished_jobs_again_after_redis_comes_back(redis_server, make_store):
    heard: queue.Queue[list[int]] = queue.Queue()
    a = make_store()
    make_store(notify=lambda ids: heard.put(list(ids)), claim_idle=0.6)
    redis_server.stop()
    redis_server.start()
    job_id = None
    deadline = time.monotonic() + 10
    while True:  # publish until the listener, reconnected, hears one
        try:
            job_id = a.accept(BEST5)
            a.complete(job_id, b"[]")
            got = heard.get(timeout=0.2)
            break
        except (StorageError, queue.Empty):
            if time.monotonic() > deadline:
                raise
    assert got == [job_id]


def test_retention_bounds_what_redis_keeps(redis_url, make_store):
    a = make_store(retention=Retention(keep_last=50))
    for _ in range(1000):
        a.complete(a.accept(BEST5), b'{"result": [1, 2, 3]}')
    client = raw(redis_url)
    assert client.hlen("{lestats}:status") <= 50
    assert client.hlen("{lestats}:data") <= 50
    assert client.zcard("{lestats}:by_id") <= 50
    assert client.zcard("{lestats}:by_time") <= 50
    assert client.xlen("{lestats}:jobs") == 0
    assert a.outcome(1) == JobOutcome(JobStatus.ERROR, reason="expired")
    assert a.outcome(1000).status is JobStatus.DONE
    listed = a.statuses()
    assert [job_id for job_id, _ in listed] == list(range(951, 1001))
    assert a.statuses(after=10, limit=3) == [
        (951, JobStatus.DONE),
        (952, JobStatus.DONE),
        (953, JobStatus.DONE),
    ]
    client.close()


def test_expire_reports_what_completions_forgot_without_a_round_trip(make_store, redis_server):
    a = make_store(retention=Retention(keep_last=3))
    for _ in range(5):
        a.complete(a.accept(BEST5), b"[]")
    redis_server.stop()  # no round trip: the ids were collected as the jobs finished
    assert a.expire(Retention(keep_last=3)) == [1, 2]
    assert a.expire(Retention(keep_last=3)) == []


def test_a_stricter_retention_at_open_forgets_what_a_looser_one_kept(make_store):
    loose = make_store(retention=Retention(keep_last=100))
    for _ in range(10):
        loose.complete(loose.accept(BEST5), b"[]")
    strict = make_store(retention=Retention(keep_last=4))
    assert strict.expire(Retention(keep_last=4)) == [1, 2, 3, 4, 5, 6]
    assert [job_id for job_id, _ in strict.statuses()] == [7, 8, 9, 10]


def test_unfinished_jobs_are_never_forgotten(make_store):
    a = make_store(retention=Retention(keep_last=1))
    old = a.accept(BEST5)
    for _ in range(20):
        a.complete(a.accept(BEST5), b"[]")
    assert not a.forget(old)
    assert a.outcome(old) == RUNNING
    assert a.outcome(2) == JobOutcome(JobStatus.ERROR, reason="expired")
    assert a.complete(old, b"[9]")
    assert not a.complete(old, b"[9]")
    # finished, it is no longer among the last one id: forgotten by the same step
    assert a.outcome(old) == JobOutcome(JobStatus.ERROR, reason="expired")


def test_forget_and_expire(make_store):
    a = make_store()
    ids = [a.accept(BEST5) for _ in range(10)]
    for job_id in ids[:8]:
        a.complete(job_id, b"[]")
    assert a.forget(1)
    assert not a.forget(1)
    assert not a.forget(9)  # unfinished
    assert not a.forget(99)  # never issued
    assert a.outcome(1) == JobOutcome(JobStatus.ERROR, reason="expired")
    assert sorted(a.expire(Retention(keep_last=5))) == [2, 3, 4, 5]  # 6-8 kept, 9-10 unfinished
    assert sorted(a.expire(Retention(max_age=0))) == [6, 7, 8]
    assert a.expire(Retention()) == []
    assert a.statuses() == [(9, JobStatus.RUNNING), (10, JobStatus.RUNNING)]


def test_a_node_with_other_data_is_refused(make_store):
    make_store(fingerprint="aaaa1111")
    make_store(fingerprint="aaaa1111")
    with pytest.raises(StorageError) as caught:
        make_store(fingerprint="bbbb2222")
    assert not caught.value.transient
    assert "bbbb2222" in str(caught.value)
    assert "aaaa1111" in str(caught.value)


def test_a_stored_result_that_is_not_json_is_not_served_as_json(redis_url, make_store):
    a = make_store()
    job_id = a.accept(BEST5)
    a.complete(job_id, b"[]")
    client = raw(redis_url)
    client.hset("{lestats}:data", job_id, b"{not json")
    b = make_store()
    outcome = b.outcome(job_id)
    assert outcome.status is JobStatus.ERROR
    assert "not JSON" in (outcome.reason or "")
    client.close()


def test_a_counter_that_is_not_an_id_is_refused_at_open(redis_url, make_store):
    client = raw(redis_url)
    client.set("{lestats}:last", b"-3")
    with pytest.raises(StorageError, match="job id counter"):
        make_store()
    client.close()


def test_namespaces_are_separate_job_spaces(make_store):
    a = make_store(namespace="one")
    b = make_store(namespace="two")
    assert a.accept(BEST5) == b.accept(BEST5) == 1


def test_close_is_idempotent_and_stops_the_listener(redis_url):
    store = RedisStore(redis_url)
    store.open()
    names = {thread.name for thread in threading.enumerate()}
    assert f"RedisStore-{store.node}" in names
    store.close()
    store.close()
    assert f"RedisStore-{store.node}" not in {thread.name for thread in threading.enumerate()}
