"""One node on the file store vs one node on Redis vs `--processes 2` on Redis, in one run.

C = 32 clients, each: POST a job, long-poll it (`?wait=`), next. For each setup: jobs/s, the p99
of a job's round trip, and the server's CPU per job: every server process (the parent and its
children) plus redis-server, read from /proc before and after the load. CPU per job does not
depend on how many cores there are; from it, the jobs/s expected on 8 and 16 cores.

Redis runs with AOF on and `appendfsync always` (the file store's promise: a job is on disk
before its id is answered); one more row with `everysec` (its own redis-server) shows what that
promise costs.

All the servers are up at once (an idle one costs nothing) and take turns, `--rounds` rounds,
the order reversed every other round, so a machine whose speed drifts (other work on it) weighs
on every row alike; each row sums its rounds.

`--baseline DIR` adds the Redis setup (fsync always, 1 process) of another build, for a
before/after in the same run: `git archive main | tar -x -C /tmp/base`, then
`--baseline /tmp/base` (its `run.py`, with this checkout's packages otherwise).

`--full-check` runs the issue's concurrency check at full size: two nodes on one job space,
32 clients x 2,000 jobs, each POSTed to one node and long-polled on the other; every id must be
distinct and the ids consecutive, every answer equal to the single-node answer (`compute`).

`--soak` also pushes 100,000 jobs through a RedisStore with a retention of the last 10,000 jobs
and prints `INFO memory` along the way: Redis memory stays bounded.

    python -m bench.bench_redis [--jobs 6000] [--rounds 3] [--baseline DIR]
                                [--soak | --only-soak] [--full-check] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from bench import loadgen
from bench.servers import REPO, ServerProcess, process_cpu_seconds, scratch_dir

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

CLIENTS = 32
WORKERS = 2
SOAK_JOBS = 100_000
SOAK_KEEP = 10_000
GOAL = 1.5
"""A Redis job may cost at most this many times the CPU of a file-store job."""


@dataclass(slots=True)
class Row:
    """One setup's load figures, summed over its rounds, and the CPU spent meanwhile."""

    name: str
    jobs: int = 0
    elapsed: float = 0.0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    """CPU seconds of every server process during the load."""
    redis_cpu: float = 0.0
    """CPU seconds of redis-server during the load."""

    def add(self, figures: loadgen.Figures, server_cpu: float, redis_cpu: float) -> None:
        """Count one round."""
        self.jobs += figures.jobs
        self.elapsed += figures.elapsed
        self.errors += figures.error_count
        self.latencies.extend(figures.latencies)
        self.server_cpu += server_cpu
        self.redis_cpu += redis_cpu

    @property
    def jobs_per_s(self) -> float:
        """Jobs done per second under load."""
        return self.jobs / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def p99(self) -> float:
        """The 99th percentile of a job's round trip, in seconds, over every round."""
        return loadgen.percentile(sorted(self.latencies), 0.99) if self.latencies else math.nan

    @property
    def cpu_per_job(self) -> float:
        """CPU seconds per job: every server process plus redis-server."""
        return (self.server_cpu + self.redis_cpu) / self.jobs if self.jobs else math.nan

    @property
    def redis_per_job(self) -> float:
        """redis-server's CPU seconds per job."""
        return self.redis_cpu / self.jobs if self.jobs else math.nan


@dataclass(frozen=True, slots=True)
class Setup:
    """A row to measure: its name, the server's command line, the redis-server it uses."""

    name: str
    argv: list[str]
    store: RedisServer | None


class RedisServer:
    """A redis-server on a free loopback port, AOF on, in `directory`; stopped on exit."""

    def __init__(self, directory: Path, appendfsync: str = "always") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (`make test` installs it)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 - our own argument list
            [
                binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory),
                "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
                "--logfile", str(directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.01)

    def url(self, db: int) -> str:
        """The URL of database `db` (one job space per setup)."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def cpu(self) -> float:
        """redis-server's CPU seconds so far."""
        return process_cpu_seconds(self.process.pid)

    def memory(self) -> dict[str, str]:
        """`INFO memory`: used and peak."""
        info = self.client.info("memory")
        return {key: str(info[key]) for key in ("used_memory_human", "used_memory_peak_human")}

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.client.close()
        self.process.terminate()
        self.process.wait(30)


@contextlib.contextmanager
def redis_server(directory: Path, appendfsync: str = "always") -> Iterator[RedisServer]:
    """A `RedisServer` for the block."""
    server = RedisServer(directory, appendfsync)
    try:
        yield server
    finally:
        server.stop()


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and of its children (the pre-forked processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
    total = process_cpu_seconds(pid)
    for child in children:
        with contextlib.suppress(OSError):
            total += process_cpu_seconds(int(child))
    return total


def server_argv(
    workdir: Path, name: str, extra: Sequence[str], checkout: Path = REPO
) -> list[str]:
    """`checkout`'s run.py on a free port, its results and log in `workdir`, plus `extra`."""
    return [
        sys.executable, str(checkout / "run.py"), "--port", "0", "--workers", str(WORKERS),
        "--results-dir", str(workdir / f"{name}-results"),
        "--log-file", str(workdir / f"{name}.log"), *extra,
    ]  # fmt: skip


def label(name: str) -> str:
    """A setup's name as a file name."""
    return name.replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")


async def measure_round(
    server: ServerProcess, setup: Setup, row: Row, *, jobs: int, seconds: float
) -> None:
    """Load `server` with `CLIENTS` clients for one round; add its figures to `row`."""
    redis_before = setup.store.cpu() if setup.store is not None else 0.0
    server_before = tree_cpu(server.pid)
    figures = await loadgen.closed_loop(
        server.url, CLIENTS, jobs, mode="wait", time_limit=seconds, name=setup.name
    )
    server_cpu = tree_cpu(server.pid) - server_before
    redis_cpu = setup.store.cpu() - redis_before if setup.store is not None else 0.0
    row.add(figures, server_cpu, redis_cpu)


async def measure(
    workdir: Path, setups: Sequence[Setup], *, jobs: int, seconds: float, rounds: int
) -> list[Row]:
    """Start every setup's server, warm each up, then take turns for `rounds` rounds."""
    rows = [Row(setup.name) for setup in setups]
    async with contextlib.AsyncExitStack() as stack:
        servers = []
        for setup in setups:
            server = ServerProcess(label(setup.name), setup.argv, workdir)
            servers.append(await stack.enter_async_context(server))
        for server in servers:
            await loadgen.closed_loop(server.url, CLIENTS, 300, mode="wait", time_limit=10)
        order = list(range(len(setups)))
        for round_number in range(rounds):
            for index in order if round_number % 2 == 0 else reversed(order):
                await measure_round(
                    servers[index], setups[index], rows[index],
                    jobs=max(1, jobs // rounds), seconds=seconds / rounds,
                )  # fmt: skip
    return rows


def expected_rate(row: Row, cores: int) -> float:
    """Jobs/s on `cores` cores, from CPU per job (which does not depend on the core count).

    On Redis the server scales by processes (one job space): every core but one (kept for the
    load balancer, the kernel's network work and Redis's own background jobs) runs server
    processes and redis-server; redis-server is one thread, so it alone caps the job space at
    1 / its CPU per job. The file store is one process, and its event loop holds the GIL: at
    most one core's worth, whatever the machine.
    """
    if row.redis_cpu <= 0:
        return 1 / row.cpu_per_job
    return min((cores - 1) / row.cpu_per_job, 1 / row.redis_per_job)


def print_rows(rows: list[Row], rounds: int) -> None:
    """The table, the 1.5x goal's verdict, how the expected rates were reckoned."""
    base = rows[0].cpu_per_job
    print(f"\nC = {CLIENTS}, long-poll, {WORKERS} workers per process, same run, {rounds} rounds")
    print(
        f"{'setup':34} {'jobs':>6} {'jobs/s':>8} {'p99 ms':>8} {'CPU/job µs':>11} "
        f"{'of which redis':>15} {'x file':>7} {'8 cores':>8} {'16 cores':>9} {'errors':>7}"
    )
    for row in rows:
        print(
            f"{row.name:34} {row.jobs:6d} {row.jobs_per_s:8.0f} {row.p99 * 1000:8.1f} "
            f"{row.cpu_per_job * 1e6:11.0f} {row.redis_per_job * 1e6:15.0f} "
            f"{row.cpu_per_job / base:7.2f} {expected_rate(row, 8):8.0f} "
            f"{expected_rate(row, 16):9.0f} {row.errors:7d}"
        )
    redis_row = rows[1]
    verdict = "met" if redis_row.cpu_per_job <= GOAL * base else "MISSED"
    print(
        f"goal: a Redis job <= {GOAL}x the CPU of a file-store job: "
        f"{redis_row.cpu_per_job / base:.2f}x, {verdict}"
    )
    for row in rows[4:]:
        print(
            f"{row.name}: {row.cpu_per_job * 1e6:.0f} µs per job ({row.cpu_per_job / base:.2f}x "
            f"the file store), this build {redis_row.cpu_per_job * 1e6:.0f} µs "
            f"({redis_row.cpu_per_job / row.cpu_per_job - 1:+.0%})"
        )
    print(
        "expected jobs/s: on Redis (cores - 1) / CPU per job, capped at 1 / redis-server's CPU "
        "per job (one thread); the file store is one process: 1 core / CPU per job"
    )


def soak(store_server: RedisServer, jobs: int) -> None:
    """`jobs` jobs through RedisStores (2 threads) keeping the last SOAK_KEEP; INFO memory."""
    from lestats.data.loader import load_demo_dataset  # noqa: PLC0415 - only the soak needs it
    from lestats.data.query import Query  # noqa: PLC0415
    from lestats.data.questions import BEST_IS_MIN  # noqa: PLC0415
    from lestats.data.statistics import compute  # noqa: PLC0415
    from lestats.jsonio import dumps  # noqa: PLC0415
    from lestats.stores.base import Retention  # noqa: PLC0415
    from lestats.stores.redis import RedisStore  # noqa: PLC0415

    dataset = load_demo_dataset()
    question = BEST_IS_MIN[1]
    queries = [Query("state_mean_by_category", question, state) for state in dataset.states]
    results = [dumps(compute(dataset, query)) for query in queries]
    store_server.client.config_set("appendfsync", "everysec")  # memory does not depend on it
    url = store_server.url(9)
    before = store_server.memory()["used_memory_human"]
    print(f"\nsoak: {jobs} jobs through RedisStore, retention: the last {SOAK_KEEP} jobs")
    print(f"result size {min(map(len, results))}-{max(map(len, results))} bytes")
    print(f"{'jobs':>8} {'used_memory':>12} {'peak':>10} {'seconds':>8}")
    began = time.monotonic()
    done = [0]
    lock = threading.Lock()
    marks = list(range(jobs // 10, jobs + 1, jobs // 10))

    def run(share: int, offset: int) -> None:
        store = RedisStore(url, retention=Retention(keep_last=SOAK_KEEP))
        store.open()
        try:
            for n in range(share):
                index = (offset + n) % len(queries)
                store.complete(store.accept(queries[index]), results[index])
                with lock:
                    done[0] += 1
                    if marks and done[0] >= marks[0]:
                        marks.pop(0)
                        memory = store_server.memory()
                        print(
                            f"{done[0]:8d} {memory['used_memory_human']:>12} "
                            f"{memory['used_memory_peak_human']:>10} "
                            f"{time.monotonic() - began:8.1f}",
                            flush=True,
                        )
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=(jobs // 2, i)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = redis.Redis.from_url(url)
    print(
        f"kept: {client.hlen('{lestats}:status')} statuses, {client.hlen('{lestats}:data')} "
        f"results, {client.xlen('{lestats}:jobs')} unfinished; "
        f"last id {int(client.get('{lestats}:last') or 0)}"
    )
    print(
        f"INFO memory used_memory: {before} before the soak (with the setups above: their "
        f"results, all kept), {store_server.memory()['used_memory_human']} after"
    )
    client.close()


async def full_check(workdir: Path, store: RedisServer, per_client: int) -> bool:
    """32 clients x `per_client` jobs over two nodes; whether ids and answers all held."""
    import json  # noqa: PLC0415 - only this check needs them

    import aiohttp  # noqa: PLC0415

    from lestats.data.loader import load_demo_dataset  # noqa: PLC0415
    from lestats.data.query import Query  # noqa: PLC0415
    from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN  # noqa: PLC0415
    from lestats.data.statistics import compute, default_registry  # noqa: PLC0415
    from lestats.jsonio import dumps  # noqa: PLC0415

    dataset = load_demo_dataset()
    kinds = [(row.name, row.needs_state) for row in default_registry().course_statistics()]
    questions = BEST_IS_MIN + BEST_IS_MAX
    url = store.url(4)
    mismatches = 0
    ids: list[int] = []

    def query_for(n: int) -> Query:
        kind, needs_state = kinds[n % len(kinds)]
        state = dataset.states[n % len(dataset.states)] if needs_state else None
        return Query(kind, questions[(n // len(kinds)) % len(questions)], state)

    async with (
        ServerProcess("node-a", server_argv(workdir, "node-a", ["--store", url]), workdir) as a,
        ServerProcess("node-b", server_argv(workdir, "node-b", ["--store", url]), workdir) as b,
        aiohttp.ClientSession() as session,
    ):
        urls = (a.url, b.url)

        async def client(index: int) -> None:
            nonlocal mismatches
            for n in range(per_client):
                query = query_for(index * per_client + n)
                body = {"question": query.question}
                if query.state is not None:
                    body["state"] = query.state
                poster, poller = urls[(index + n) % 2], urls[(index + n + 1) % 2]
                async with session.post(f"{poster}/api/{query.kind}", json=body) as response:
                    job_id = (await response.json())["job_id"]
                answer: dict[str, object] = {"status": "running"}
                while answer["status"] == "running":
                    async with session.get(f"{poller}/api/get_results/{job_id}?wait=10") as got:
                        answer = await got.json()
                expected = json.loads(dumps(compute(dataset, query)))
                if answer != {"status": "done", "data": expected}:
                    mismatches += 1
                ids.append(int(job_id.removeprefix("job_id_")))

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        seconds = time.perf_counter() - began
    consecutive = sorted(ids) == list(range(1, CLIENTS * per_client + 1))
    print(
        f"\nfull check: {CLIENTS} clients x {per_client} jobs over 2 nodes in {seconds:.1f} s: "
        f"{len(ids)} jobs, {len(set(ids))} distinct ids, consecutive from 1: {consecutive}, "
        f"answers unlike the single-node answer: {mismatches}"
    )
    return consecutive and mismatches == 0 and len(set(ids)) == len(ids)


async def main_async(args: argparse.Namespace) -> None:
    """Every setup against one redis-server (a database each), then the soak if asked."""
    with scratch_dir("redis-bench-") as workdir, redis_server(workdir / "redis") as store:
        print(f"redis-server {store.client.info('server')['redis_version']}, AOF on")
        if args.only_soak:
            soak(store, 2_000 if args.quick else SOAK_JOBS)
            return
        if args.full_check:
            if not await full_check(workdir, store, 20 if args.quick else 2_000):
                raise SystemExit("full check FAILED")
            return
        with contextlib.ExitStack() as stack:
            everysec = stack.enter_context(redis_server(workdir / "redis-everysec", "everysec"))
            setups = [
                Setup("file store, 1 process", server_argv(workdir, "file", []), None),
                Setup(
                    "redis (fsync always), 1 process",
                    server_argv(workdir, "always-1", ["--store", store.url(1)]),
                    store,
                ),
                Setup(
                    "redis (fsync always), 2 processes",
                    server_argv(workdir, "always-2", ["--store", store.url(2), "--processes", "2"]),
                    store,
                ),
                Setup(
                    "redis (fsync everysec), 1 process",
                    server_argv(workdir, "everysec-1", ["--store", everysec.url(1)]),
                    everysec,
                ),
            ]
            if args.baseline is not None:
                setups.append(
                    Setup(
                        "baseline: redis (always), 1 process",
                        server_argv(
                            workdir, "baseline-1", ["--store", store.url(3)], args.baseline
                        ),
                        store,
                    )
                )
            rows = await measure(
                workdir, setups, jobs=args.jobs, seconds=args.seconds, rounds=args.rounds
            )
        print_rows(rows, args.rounds)
        if args.soak:
            soak(store, 2_000 if args.quick else SOAK_JOBS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison (and the soak with `--soak`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6000, help="jobs per setup")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit per setup")
    parser.add_argument("--rounds", type=int, default=3, help="turns each setup takes")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of another build: its Redis row too"
    )
    parser.add_argument("--soak", action="store_true", help="also the 100,000-job memory soak")
    parser.add_argument("--only-soak", action="store_true", help="the soak alone")
    parser.add_argument(
        "--full-check", action="store_true", help="32 clients x 2,000 jobs over 2 nodes, alone"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.seconds, args.rounds = 500, 10.0, 1
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
