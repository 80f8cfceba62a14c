"""Several run.py processes on one Redis job space: the promises of issue 13, with real processes.

Every test starts a real redis-server (AOF, fsync always) and real `run.py` nodes on it. The
test also subscribes to the channel on which a node announces each job it finishes: every id
must be announced exactly once, whoever ran it and however often it ran.
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import redis
from http_support import RUN_PY, Server
from redis_support import free_port

from lestats import jsonio
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import compute, default_registry
from lestats.stores.redis import DEFAULT_NAMESPACE, finished_channel
from lestats.testing import eventually

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis_support import RedisServer

    from lestats.data.dataset import Dataset

pytest_plugins = ["http_support", "redis_support"]

QUESTIONS = BEST_IS_MIN + BEST_IS_MAX
NEEDS_STATE = {row.name: row.needs_state for row in default_registry().course_statistics()}
ENDPOINTS = tuple(NEEDS_STATE)
CLAIM_IDLE = 1.0
TAKE_OVER_SLACK = 1.0 + 3.0
"""The engine's look every second, plus room for a busy two-core machine."""
FINISHED_CHANNEL = finished_channel(DEFAULT_NAMESPACE, 0)


def query_for(n: int, states: tuple[str, ...]) -> Query:
    """The n-th job of a varied mix: every endpoint, question and state in turn."""
    endpoint = ENDPOINTS[n % len(ENDPOINTS)]
    question = QUESTIONS[(n // len(ENDPOINTS)) % len(QUESTIONS)]
    state = states[n % len(states)] if NEEDS_STATE[endpoint] else None
    return Query(endpoint, question, state)


def body_of(query: Query) -> dict[str, str]:
    body = {"question": query.question or ""}
    if query.state is not None:
        body["state"] = query.state
    return body


def expected(dataset: Dataset, query: Query) -> Any:
    """The single-node answer, as the wire carries it."""
    return json.loads(jsonio.dumps(compute(dataset, query)))


class Announcements:
    """Every id announced finished on the job space's channel, counted per id."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(FINISHED_CHANNEL)
        self.counts: collections.Counter[int] = collections.Counter()

    def collect(self, ids: set[int], timeout: float = 10.0) -> collections.Counter[int]:
        """Read until every id in `ids` was heard (or `timeout`), then whatever else is queued."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:
            message = self._pubsub.get_message(timeout=0.1)
            if message is not None:
                _node, *finished = message["data"].split()  # `NODE ID ID...`, one per batch
                self.counts.update(int(job_id) for job_id in finished)
                quiet = 0
            elif ids <= set(self.counts) or time.monotonic() > deadline:
                quiet += 1
        return self.counts

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()


@pytest.fixture
def nodes() -> Iterator[list[Server]]:
    """The run.py nodes a test starts (append them); killed at teardown if still running."""
    started: list[Server] = []
    yield started
    for node in started:
        node.kill()


def start_node(tmp_path: Path, url: str, name: str, *extra: str) -> Server:
    return Server(
        "--store", url,
        "--claim-idle", str(CLAIM_IDLE),
        "--results-dir", str(tmp_path / f"results-{name}"),
        "--log-file", str(tmp_path / f"{name}.log"),
        "--workers", "2",
        *extra,
        cwd=tmp_path,
    )  # fmt: skip


class Client:
    """One keep-alive HTTP connection per node; JSON in and out."""

    def __init__(self, servers: list[Server]) -> None:
        self._connections = [
            http.client.HTTPConnection("127.0.0.1", server.port, timeout=30) for server in servers
        ]

    def request(self, node: int, method: str, path: str, body: object = None) -> tuple[int, Any]:
        connection = self._connections[node]
        data = None if body is None else json.dumps(body)
        try:
            connection.request(
                method, path, body=data, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        except (OSError, http.client.HTTPException):
            connection.close()
            raise

    def close(self) -> None:
        for connection in self._connections:
            connection.close()


def wait_all_done(server: Server, ids: set[int], timeout: float) -> float:
    """Poll `server` until every id in `ids` reads done; the seconds it took."""
    started = time.monotonic()
    client = Client([server])
    try:
        left = set(ids)
        while left:
            assert time.monotonic() - started < timeout, (
                f"{len(left)} jobs not done: {sorted(left)[:10]}"
            )
            for job_id in sorted(left)[:200]:
                status, answer = client.request(0, "GET", f"/api/get_results/job_id_{job_id}")
                assert status == 200, (job_id, status, answer)
                assert answer["status"] != "error", (job_id, answer)
                if answer["status"] == "done":
                    left.discard(job_id)
    finally:
        client.close()
    return time.monotonic() - started


def post_to_a_live_node(client: Client, node: int, query: Query, a_dead: threading.Event) -> int:
    """POST to `node` until accepted; once node 0 is dead (or its connection broke), to node 1."""
    while True:
        if a_dead.is_set():
            node = 1
        try:
            status, answer = client.request(node, "POST", f"/api/{query.kind}", body_of(query))
        except (OSError, http.client.HTTPException):
            node = 1  # the killed node: its connection is gone; the job goes to the other
            continue
        if status != 503:
            assert status == 200, (status, answer)
            return id_of(answer)


def id_of(answer: dict[str, str]) -> int:
    return int(answer["job_id"].removeprefix("job_id_"))


def test_a_killed_node_loses_nothing_its_jobs_end_done_once_on_the_other(
    tmp_path, redis_url, nodes, demo_dataset
):
    heard = Announcements(redis_url)
    nodes.append(start_node(tmp_path, redis_url, "a"))
    nodes.append(start_node(tmp_path, redis_url, "b"))
    states = demo_dataset.states
    clients, per_client, kill_after = 4, 1000, 1200
    accepted: dict[int, Query] = {}
    lock = threading.Lock()
    enough = threading.Event()
    a_dead = threading.Event()

    def post_jobs(index: int) -> None:
        client = Client(nodes)
        try:
            for n in range(per_client):
                query = query_for(index * per_client + n, states)
                job_id = post_to_a_live_node(client, n % 2, query, a_dead)
                with lock:
                    assert job_id not in accepted, f"id {job_id} issued twice"
                    accepted[job_id] = query
                    if len(accepted) >= kill_after:
                        enough.set()
        finally:
            client.close()

    threads = [threading.Thread(target=post_jobs, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    assert enough.wait(120), "the burst did not reach the kill point"
    nodes[0].process.send_signal(signal.SIGKILL)
    nodes[0].process.wait(10)
    a_dead.set()
    for thread in threads:
        thread.join(300)
    assert len(accepted) == clients * per_client
    survivor = Client([nodes[1]])
    status, answer = survivor.request(0, "GET", "/api/jobs")
    assert status == 200
    issued = [int(next(iter(job)).removeprefix("job_id_")) for job in answer["data"]]
    assert issued == list(range(1, len(issued) + 1))  # consecutive, each once
    assert set(accepted) <= set(issued)
    wait_all_done(nodes[1], set(issued), timeout=120)
    status, answer = survivor.request(0, "GET", "/api/num_jobs")
    assert answer["num_jobs"] == 0
    for job_id in list(accepted)[:: max(1, len(accepted) // 400)]:
        status, answer = survivor.request(0, "GET", f"/api/get_results/job_id_{job_id}")
        assert answer == {"status": "done", "data": expected(demo_dataset, accepted[job_id])}
    survivor.close()
    counts = heard.collect(set(issued))
    heard.close()
    assert set(counts) == set(issued)
    assert max(counts.values()) == 1  # completed exactly once, whoever ran it
    assert nodes[1].stop() == 0


DEAD_NODE = """
import sys
from lestats.data.query import Query
from lestats.stores.redis import RedisStore
store = RedisStore(sys.argv[1], claim_idle=float(sys.argv[2]))
store.open()
for line in sys.stdin:
    kind, question, state = line.rstrip("\\n").split("|")
    print(store.accept(Query(kind, question, state or None)), flush=True)
"""


def test_taken_over_within_the_configured_time(tmp_path, redis_url, nodes, demo_dataset):
    """Jobs a node accepted and never ran end done on a live node within claim_idle + a tick."""
    nodes.append(start_node(tmp_path, redis_url, "b"))
    queries = [query_for(n, demo_dataset.states) for n in range(300)]
    dying = subprocess.Popen(  # a node's store, that accepts and then dies without running
        [sys.executable, "-c", DEAD_NODE, redis_url, str(CLAIM_IDLE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ids = {}
        for query in queries:
            dying.stdin.write(f"{query.kind}|{query.question}|{query.state or ''}\n")
            dying.stdin.flush()
            ids[int(dying.stdout.readline())] = query
        _, answer = nodes[0].request("GET", "/api/num_jobs")
        assert answer["num_jobs"] == len(queries)  # unfinished, cluster-wide; the owner lives
    finally:
        dying.kill()
        dying.wait()
        killed = time.monotonic()
        dying.stdin.close()
        dying.stdout.close()
    wait_all_done(nodes[0], set(ids), timeout=60)
    took = time.monotonic() - killed
    assert took <= CLAIM_IDLE + TAKE_OVER_SLACK, f"taken over and done after {took:.1f} s"
    for job_id, query in list(ids.items())[::37]:
        _, answer = nodes[0].request("GET", f"/api/get_results/job_id_{job_id}")
        assert answer == {"status": "done", "data": expected(demo_dataset, query)}


def assert_refused_while_away(client: Client, node: int, query: Query, unknown_here: int) -> None:
    """POSTs get 503 + Retry-After; reads that need Redis get 503 naming it."""
    deadline = time.monotonic() + 10
    while True:  # a node learns that Redis is gone at its next command
        status, answer = client.request(node, "POST", f"/api/{query.kind}", body_of(query))
        if status == 503 or time.monotonic() > deadline:
            break
    assert status == 503, answer
    assert "unreachable" in answer["reason"]
    connection = client._connections[node]
    connection.request("POST", f"/api/{query.kind}", body=json.dumps(body_of(query)))
    response = connection.getresponse()
    response.read()
    assert response.status == 503
    assert int(response.getheader("Retry-After")) >= 1
    status, answer = client.request(node, "GET", "/api/num_jobs")
    assert status == 503
    assert "Redis" in answer["reason"]
    assert "cannot read" in answer["reason"]
    status, answer = client.request(node, "GET", f"/api/get_results/job_id_{unknown_here}")
    assert status == 503
    assert "unreachable" in answer["reason"]


def post_until_accepted(client: Client, node: int, query: Query, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        status, answer = client.request(node, "POST", f"/api/{query.kind}", body_of(query))
        if status == 200:
            return id_of(answer)
        assert time.monotonic() < deadline, answer


def test_redis_away_503_with_retry_after_nodes_stay_up_and_nothing_accepted_is_lost(
    tmp_path, redis_server: RedisServer, nodes, demo_dataset
):
    nodes.append(start_node(tmp_path, redis_server.url, "a"))
    nodes.append(start_node(tmp_path, redis_server.url, "b"))
    states = demo_dataset.states
    accepted: set[int] = set()
    accepted_by: tuple[set[int], set[int]] = (set(), set())
    lock = threading.Lock()
    stop = threading.Event()
    some = threading.Event()

    def post_jobs(index: int) -> None:
        client = Client(nodes)
        n = 0
        try:
            while not stop.is_set():
                query = query_for(index * 100_000 + n, states)
                status, answer = client.request(n % 2, "POST", f"/api/{query.kind}", body_of(query))
                n += 1
                if status == 200:
                    with lock:
                        accepted.add(id_of(answer))
                        accepted_by[(n - 1) % 2].add(id_of(answer))
                        if len(accepted) >= 200:
                            some.set()
                else:
                    assert status == 503, answer
        finally:
            client.close()

    threads = [threading.Thread(target=post_jobs, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert some.wait(60)
        redis_server.kill()  # mid-burst; the AOF (fsync always) keeps every job accepted
        client = Client(nodes)
        for node in (0, 1):
            # a job of the other node: only Redis knows about it
            assert_refused_while_away(
                client, node, query_for(node, states), max(accepted_by[1 - node])
            )
        assert all(node.process.poll() is None for node in nodes)
        redis_server.start()
        for node in (0, 1):  # each node reconnects by itself
            accepted.add(post_until_accepted(client, node, query_for(node, states), timeout=20))
        client.close()
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    wait_all_done(nodes[1], accepted, timeout=60)
    assert all(node.stop() == 0 for node in nodes)


def test_32_clients_over_two_nodes_consecutive_ids_and_single_node_answers(
    tmp_path, redis_url, nodes, demo_dataset
):
    nodes.append(start_node(tmp_path, redis_url, "a"))
    nodes.append(start_node(tmp_path, redis_url, "b"))
    heard = Announcements(redis_url)
    clients, per_client = 32, 40
    states = demo_dataset.states
    urls = [node.url for node in nodes]

    async def client(index: int, session: aiohttp.ClientSession) -> list[int]:
        ids = []
        for n in range(per_client):
            query = query_for(index * per_client + n, states)
            poster, poller = urls[(index + n) % 2], urls[(index + n + 1) % 2]
            async with session.post(f"{poster}/api/{query.kind}", json=body_of(query)) as response:
                assert response.status == 200, await response.text()
                job_id = (await response.json())["job_id"]
            # long-poll on the other node: answered when the first one finishes the job
            async with session.get(f"{poller}/api/get_results/{job_id}?wait=10") as response:
                answer = await response.json()
            assert answer == {"status": "done", "data": expected(demo_dataset, query)}, job_id
            ids.append(int(job_id.removeprefix("job_id_")))
        return ids

    async def run() -> list[int]:
        async with aiohttp.ClientSession() as session:
            parts = await asyncio.gather(*(client(i, session) for i in range(clients)))
        return [job_id for part in parts for job_id in part]

    ids = asyncio.run(run())
    assert sorted(ids) == list(range(1, clients * per_client + 1))
    for node in nodes:
        _, answer = node.request("GET", "/api/jobs")
        assert len(answer["data"]) == clients * per_client
    counts = heard.collect(set(ids))
    heard.close()
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    assert all(node.stop() == 0 for node in nodes)


def test_accepted_jobs_survive_redis_and_the_node_killed_together(
    tmp_path, redis_server: RedisServer, nodes, demo_dataset
):
    nodes.append(start_node(tmp_path, redis_server.url, "a", "--workers", "1"))
    client = Client(nodes)
    ids = []
    for n in range(500):
        query = query_for(n, demo_dataset.states)
        status, answer = client.request(0, "POST", f"/api/{query.kind}", body_of(query))
        assert status == 200
        ids.append(int(answer["job_id"].removeprefix("job_id_")))
    client.close()
    nodes[0].process.send_signal(signal.SIGKILL)  # the node and Redis die at once
    redis_server.kill()
    nodes[0].process.wait(10)
    redis_server.start()
    nodes.append(start_node(tmp_path, redis_server.url, "b"))
    wait_all_done(nodes[1], set(ids), timeout=CLAIM_IDLE + TAKE_OVER_SLACK + 30)


def test_processes_share_one_port_and_sigterm_to_the_parent_drains_all(
    tmp_path, redis_url, nodes, demo_dataset
):
    nodes.append(start_node(tmp_path, redis_url, "pre", "--processes", "2"))
    assert "with 2 processes" in nodes[0].banner
    client = Client(nodes)
    ids = []
    for n in range(200):
        query = query_for(n, demo_dataset.states)
        client.close()  # a new connection per job: the kernel spreads them over the processes
        status, answer = client.request(0, "POST", f"/api/{query.kind}", body_of(query))
        assert status == 200
        ids.append(int(answer["job_id"].removeprefix("job_id_")))
    client.close()
    assert nodes[0].stop(signal.SIGTERM) == 0
    logs = [tmp_path / "pre-1.log", tmp_path / "pre-2.log"]
    assert all("POST /api/" in log.read_text() for log in logs), "a process served nothing"
    checker = start_node(tmp_path, redis_url, "check")
    nodes.append(checker)
    status, answer = checker.request("GET", "/api/num_jobs")
    assert answer["num_jobs"] == 0  # drained: every job of both processes finished
    assert sorted(ids) == list(range(1, 201))


def test_children_drain_and_exit_when_their_parent_is_killed(tmp_path, redis_url, nodes):
    nodes.append(start_node(tmp_path, redis_url, "orphans", "--processes", "2"))
    parent = nodes[0].process.pid
    listed = Path(f"/proc/{parent}/task/{parent}/children").read_text()
    children = [int(pid) for pid in listed.split()]
    assert len(children) == 2
    nodes[0].process.send_signal(signal.SIGKILL)
    nodes[0].process.wait(10)
    try:
        eventually(lambda: all(map(_gone, children)), timeout=30)  # a killed parent's children
    finally:
        for child in children:
            if not _gone(child):
                os.kill(child, signal.SIGKILL)
    logs = [tmp_path / "orphans-1.log", tmp_path / "orphans-2.log"]
    assert all("SIGTERM received: draining" in log.read_text() for log in logs)


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waits only to be reaped by init, its parent gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def test_processes_without_a_shared_store_are_refused_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(RUN_PY), "--processes", "2", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--store" in lines[0]
    assert "--processes" in lines[0]


def test_a_node_with_other_data_is_refused_naming_both_fingerprints(
    tmp_path, redis_url, nodes, demo_dataset
):
    nodes.append(start_node(tmp_path, redis_url, "a"))
    other = tmp_path / "other.csv"
    subprocess.run(
        [sys.executable, "-m", "lestats.data.demo", "--rows", "500", "--out", str(other)],
        check=True,
        timeout=120,
    )
    result = subprocess.run(
        [sys.executable, str(RUN_PY), "--port", "0", "--data", str(other), "--store", redis_url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert demo_dataset.fingerprint in lines[0]
    assert "refusing to join" in lines[0]
    assert nodes[0].request("GET", "/api/num_jobs")[0] == 200  # the first node serves on


def test_a_node_whose_redis_is_away_at_start_says_so_in_one_line_and_exits_2(tmp_path):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    result = subprocess.run(
        [sys.executable, str(RUN_PY), "--port", "0", "--store", nowhere],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "unreachable" in lines[0]
    assert nowhere.removeprefix("redis://") in lines[0]
