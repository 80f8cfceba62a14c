"""HTTP benchmarks: our server next to a bare aiohttp server, measured side by side in one run.

The machine is noisy, so every figure of ours comes with the bare server's figure taken just
before it at the same concurrency: a job's cost in bare POST+GET pairs is the number to watch.

Scenarios (`--scenario`, repeatable; default all):

- `closed`: for each C (default 1, 8, 32, 128): bare pairs, then our jobs with 1 ms polling,
  then with `?wait=` long-polls (demo data).
- `best5`: C=32 with `best5` jobs only, the bare server's exact job.
- `burst`: POST N jobs as fast as possible, then collect them.
- `longpoll`: how late a long-poll answers after the job finishes, at C=1 and C=32 (against
  the finish time the server stamps, `bench.stamped_server`).
- `bigdata`: a 1,000,000-row generated dataset: load time, RSS, C=32 with polling.
- `tmpfs`: C=32 polling with the results directory on tmpfs (`/dev/shm`), next to bare pairs:
  the same code without the disk, whose cost per new file swings widely on this machine.

`python -m bench.bench_http --quick` is a smoke run of small counts.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench import loadgen
from bench.loadgen import ms, verdict
from bench.servers import (
    BENCH_TMP,
    CpuMeter,
    ServerProcess,
    bare_server,
    cpu_count,
    lestats_server,
    mb,
    reset_peak,
    scratch_dir,
)
from bench.stamped_server import read_stamps

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

SCENARIOS = ("closed", "best5", "burst", "longpoll", "tmpfs", "bigdata")
TMPFS = Path("/dev/shm")  # noqa: S108 - a RAM file system, for the `tmpfs` scenario (if any)
FLASK_JOBS_PER_S = (78.0, 117.0)
"""The public Flask/thread-pool implementations of this API at 32 clients, this machine class."""
GOAL_CLIENTS = 32
GOAL_COST = 2.0
GOAL_P99 = 0.025
GOAL_LONGPOLL = 0.005
GOAL_FLASK_FACTOR = 20.0
LEGACY_BIG_DATA = Path("/tmp/demo1m.csv")  # noqa: S108 - a file an earlier run may have left
GENERATE_TIMEOUT = 1800.0


@dataclass(slots=True)
class Results:
    """Everything measured in one run, in the order it was measured."""

    rows: list[loadgen.Figures] = field(default_factory=list)
    ceilings: dict[int, float] = field(default_factory=dict)
    """Bare pairs/s by C (the last measured for each C)."""
    bare_cpu_per_pair: dict[int, float] = field(default_factory=dict)
    longpolls: list[loadgen.LongPollFigures] = field(default_factory=list)
    answer_delays: dict[int, AnswerDelays] = field(default_factory=dict)
    """Clients -> how late the long-poll answers came after their jobs finished."""
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, row: loadgen.Figures) -> loadgen.Figures:
        """Record a row (and the ceiling, for a bare row); print a progress line."""
        self.rows.append(row)
        if row.name.startswith("bare"):
            self.ceilings[row.clients] = row.jobs_per_s
            self.bare_cpu_per_pair[row.clients] = row.server_cpu_per_job
        if row.error_count or row.distinct_ids != row.accepted:
            self.failures.append(
                f"{row.name}: {row.error_count} errors, {row.accepted} accepted, "
                f"{row.distinct_ids} distinct ids"
            )
        print(
            f"  {row.name:<22} {row.jobs:>6} jobs in {row.elapsed:5.1f} s: "
            f"{row.jobs_per_s:7.0f} jobs/s, p99 {ms(row.latency(0.99))} ms, "
            f"{row.error_count} errors",
            flush=True,
        )
        return row

    def find(self, name: str) -> loadgen.Figures | None:
        """The last row called `name`."""
        return next((r for r in reversed(self.rows) if r.name == name), None)

    def stopped(self, server: ServerProcess) -> None:
        """Note how a stopped server ended; an unclean end is a failure too."""
        self.notes.append(server.stop_report())
        self.failures += server.stop_failures()


async def measure(server: ServerProcess, run: Awaitable[loadgen.Figures]) -> loadgen.Figures:
    """Run a load against `server`, with its peak RSS and the CPU spent by everyone meanwhile."""
    reset_peak(server.pid)
    meter = CpuMeter(server.pid)
    figures = await run
    return figures.measured(meter.read(), peak_rss_kb=server.sample().peak_kb)


@dataclass(frozen=True, slots=True)
class Plan:
    """The counts and bounds of a run, from the command line."""

    scenarios: tuple[str, ...]
    clients: tuple[int, ...]
    jobs: int
    time_limit: float
    burst: int
    burst_concurrency: int
    longpoll_samples: int
    warmup: int
    workers: int
    big_rows: int
    seed: int


async def run_demo(plan: Plan, workdir: Path, results: Results) -> None:
    """Every scenario on the demo data, next to the bare server."""
    async with bare_server(workdir) as bare, lestats_server(workdir, workers=plan.workers) as ours:
        results.notes.append(
            f"demo-data server ready {ours.startup_seconds:.2f} s after launch "
            f"(bare: {bare.startup_seconds:.2f} s); RSS {mb(ours.sample().rss_kb):.0f} MB"
        )
        workload = await loadgen.discover(ours.url)
        await warm_up(plan, bare, ours, workload)
        if "closed" in plan.scenarios:
            for clients in plan.clients:
                await closed_round(plan, bare, ours, workload, results=results, clients=clients)
        if "best5" in plan.scenarios:
            best5 = loadgen.Workload(("best5",), workload.questions, workload.states)
            await closed_round(
                plan,
                bare,
                ours,
                best5,
                results=results,
                clients=GOAL_CLIENTS,
                modes=("poll",),
                label="best5",
            )
        if "burst" in plan.scenarios:
            await burst_scenario(plan, ours, workload, results)
        if "longpoll" in plan.scenarios:
            await longpoll_scenario(plan, workdir, results)
        if "tmpfs" in plan.scenarios:
            await run_on_tmpfs(plan, workdir, bare, results)
        if "bigdata" in plan.scenarios and plan.big_rows > 0:
            await run_big_data(plan, workdir, bare, results)
    for server in (bare, ours):
        results.stopped(server)


async def burst_scenario(
    plan: Plan, ours: ServerProcess, workload: loadgen.Workload, results: Results
) -> None:
    """POST N jobs as fast as possible, then collect them."""
    print(f"burst: {plan.burst} POSTs from {plan.burst_concurrency} connections", flush=True)
    results.add(
        await measure(
            ours,
            loadgen.burst(
                ours.url,
                plan.burst,
                plan.burst_concurrency,
                time_limit=max(60.0, plan.time_limit * 4),
                workload=workload,
                seed=plan.seed,
            ),
        )
    )


async def longpoll_scenario(plan: Plan, workdir: Path, results: Results) -> None:
    """How late a long-poll answers after its job is done, alone and among 32 clients.

    On a server of its own that stamps when each job finished (`bench.stamped_server`).
    """
    stamps = workdir / "finished.stamps"
    stamped = lestats_server(workdir, workers=plan.workers, name="lestats-stamped", stamps=stamps)
    async with stamped:
        workload = await loadgen.discover(stamped.url)
        await loadgen.closed_loop(
            stamped.url, 8, plan.warmup, mode="wait", workload=workload, time_limit=plan.time_limit
        )
        for clients in sorted({1, GOAL_CLIENTS}):
            print(f"long-poll latency: C={clients}, {plan.longpoll_samples} samples", flush=True)
            figures = await loadgen.longpoll_latency(
                stamped.url,
                clients,
                plan.longpoll_samples,
                time_limit=plan.time_limit,
                workload=workload,
                seed=plan.seed,
            )
            results.longpolls.append(figures)
            results.answer_delays[clients] = answer_delays(figures, read_stamps(stamps))
            if figures.errors:
                results.failures.append(f"long-poll C={clients}: {figures.errors}")
    results.stopped(stamped)


@dataclass(frozen=True, slots=True)
class AnswerDelays:
    """How late long-poll answers arrived after their job finished (seconds, sorted).

    A job that finished before its long-poll was even sent counts from the sending: a server
    cannot answer a request before it has it.
    """

    all: tuple[float, ...]
    waited: tuple[float, ...]
    """Only the jobs that finished while their long-poll waited: the mechanism itself."""


def answer_delays(figures: loadgen.LongPollFigures, finished: dict[int, int]) -> AnswerDelays:
    """Each answer's arrival minus max(its job's finish stamp, the sending of its long-poll)."""
    every: list[float] = []
    waited: list[float] = []
    for number, arrived in figures.answered.items():
        if number not in finished:
            continue
        asked, done = figures.asked[number], finished[number]
        delay = (arrived - max(asked, done)) / 1e9
        every.append(delay)
        if done > asked:
            waited.append(delay)
    return AnswerDelays(tuple(sorted(every)), tuple(sorted(waited)))


async def warm_up(
    plan: Plan, bare: ServerProcess, ours: ServerProcess, workload: loadgen.Workload
) -> None:
    """A few hundred jobs on each server first, so no scenario pays for first-time costs."""
    if plan.warmup <= 0:
        return
    print(f"warm-up: {plan.warmup} jobs on each server", flush=True)
    await loadgen.closed_loop(
        bare.url, 8, plan.warmup, workload=loadgen.BARE_WORKLOAD, time_limit=plan.time_limit
    )
    for mode in ("poll", "wait"):
        await loadgen.closed_loop(
            ours.url, 8, plan.warmup, mode=mode, workload=workload, time_limit=plan.time_limit
        )


async def closed_round(
    plan: Plan,
    bare: ServerProcess,
    ours: ServerProcess,
    workload: loadgen.Workload,
    *,
    results: Results,
    clients: int,
    modes: Sequence[loadgen.Mode] = ("poll", "wait"),
    label: str = "",
) -> None:
    """Bare pairs at C, then our jobs at C in each mode, one right after the other."""
    print(f"closed loop C={clients}{' ' + label if label else ''}:", flush=True)
    suffix = f" {label}" if label else ""
    results.add(
        await measure(
            bare,
            loadgen.closed_loop(
                bare.url,
                clients,
                plan.jobs,
                workload=loadgen.BARE_WORKLOAD,
                time_limit=plan.time_limit,
                seed=plan.seed,
                name=f"bare C={clients}{suffix}",
            ),
        )
    )
    for mode in modes:
        results.add(
            await measure(
                ours,
                loadgen.closed_loop(
                    ours.url,
                    clients,
                    plan.jobs,
                    mode=mode,
                    workload=workload,
                    time_limit=plan.time_limit,
                    seed=plan.seed,
                    name=f"{mode} C={clients}{suffix}",
                ),
            )
        )


def big_dataset(rows: int) -> Path:
    """A cached generated dataset of `rows` rows in `.bench-tmp/`, made once."""
    BENCH_TMP.mkdir(exist_ok=True)
    path = BENCH_TMP / f"demo-{rows}.csv"
    if path.exists():
        return path
    partial = BENCH_TMP / f"demo-{rows}.partial.csv"
    partial.unlink(missing_ok=True)
    if rows == 1_000_000 and LEGACY_BIG_DATA.exists() and _lines(LEGACY_BIG_DATA) == rows + 1:
        print(f"reusing {LEGACY_BIG_DATA} ({rows} rows)", flush=True)
        try:
            partial.hardlink_to(LEGACY_BIG_DATA)
        except OSError:
            shutil.copyfile(LEGACY_BIG_DATA, partial)
    else:
        print(f"generating {rows} rows into {path} (once; cached)", flush=True)
        subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "lestats.data.demo", "--rows", str(rows), "--out", partial],
            check=True,
            timeout=GENERATE_TIMEOUT,
        )
    partial.replace(path)
    return path


def _lines(path: Path) -> int:
    count = 0
    with path.open("rb") as data:
        for _ in range(1 << 20):  # bounded: 1 MiB chunks, far more than any dataset here
            chunk = data.read(1 << 20)
            if not chunk:
                break
            count += chunk.count(b"\n")
    return count


async def run_big_data(plan: Plan, workdir: Path, bare: ServerProcess, results: Results) -> None:
    """Load the big dataset (timed), then bare pairs and our polling jobs at C=32."""
    data = await asyncio.to_thread(big_dataset, plan.big_rows)
    label = f"{plan.big_rows // 1000}k" if plan.big_rows < 1_000_000 else "1M"
    print(f"big data: {plan.big_rows} rows from {data}", flush=True)
    server = lestats_server(workdir, workers=plan.workers, data=data, name=f"lestats-{label}")
    async with server:
        loaded = server.sample()
        results.notes.append(
            f"{label}-row server ready {server.startup_seconds:.2f} s after launch "
            f"(load time, interpreter start included); RSS after load "
            f"{mb(loaded.rss_kb):.0f} MB, peak during load {mb(loaded.peak_kb):.0f} MB"
        )
        await polling_round(plan, bare, server, results, label)
    results.stopped(server)


async def run_on_tmpfs(plan: Plan, workdir: Path, bare: ServerProcess, results: Results) -> None:
    """Bare pairs and our polling jobs at C=32, our results directory on tmpfs."""
    print("results on tmpfs:", flush=True)
    with tempfile.TemporaryDirectory(prefix="lestats-bench-", dir=TMPFS) as results_dir:
        server = lestats_server(
            workdir, workers=plan.workers, name="lestats-tmpfs", results_dir=Path(results_dir)
        )
        async with server:
            await polling_round(plan, bare, server, results, "tmpfs")
        results.stopped(server)


async def polling_round(
    plan: Plan, bare: ServerProcess, server: ServerProcess, results: Results, label: str
) -> None:
    """On a second server of ours: a warm-up, then bare pairs and our polling jobs at C=32."""
    workload = await loadgen.discover(server.url)
    await loadgen.closed_loop(
        server.url, 8, plan.warmup, workload=workload, time_limit=plan.time_limit
    )
    await closed_round(
        plan,
        bare,
        server,
        workload,
        results=results,
        clients=GOAL_CLIENTS,
        modes=("poll",),
        label=label,
    )


def goals(results: Results) -> list[str]:
    """The issue's goals, each next to the figure it judges (C=32, demo data)."""
    lines: list[str] = []
    c = GOAL_CLIENTS
    bare = results.find(f"bare C={c}")
    poll = results.find(f"poll C={c}")
    wait = results.find(f"wait C={c}")
    if bare and poll and poll.jobs_per_s > 0:
        cost = bare.jobs_per_s / poll.jobs_per_s
        lines.append(
            f"job cost, C={c}, 1 ms polling: {cost:.2f} bare POST+GET pairs "
            f"(bare {bare.jobs_per_s:.0f} pairs/s, ours {poll.jobs_per_s:.0f} jobs/s, "
            f"{poll.polls_per_job:.2f} GETs/job)  goal <= {GOAL_COST:.1f}: "
            f"{verdict(cost <= GOAL_COST)}"
        )
        if wait and wait.jobs_per_s > 0:
            lines.append(
                f"job cost, C={c}, long-poll:    {bare.jobs_per_s / wait.jobs_per_s:.2f} "
                f"bare pairs (ours {wait.jobs_per_s:.0f} jobs/s)"
            )
        srv, base = poll.server_cpu_per_job, bare.server_cpu_per_job
        if not (math.isnan(srv) or math.isnan(base)) and base > 0:
            lines.append(
                f"server CPU per job, C={c}: {srv * 1e6:.0f} us vs {base * 1e6:.0f} us per "
                f"bare pair = {srv / base:.2f}x (CPU time: less sensitive to noise than rates)"
            )
    tmpfs, tmpfs_bare = results.find(f"poll C={c} tmpfs"), results.find(f"bare C={c} tmpfs")
    if tmpfs and tmpfs_bare and tmpfs.jobs_per_s > 0:
        lines.append(
            f"job cost, C={c}, 1 ms polling, results on tmpfs: "
            f"{tmpfs_bare.jobs_per_s / tmpfs.jobs_per_s:.2f} bare pairs "
            f"(ours {tmpfs.jobs_per_s:.0f} jobs/s, p99 {ms(tmpfs.latency(0.99))} ms, "
            f"server CPU {tmpfs.server_cpu_per_job * 1e6:.0f} us/job): the disk set aside"
        )
    if poll:
        p99 = poll.latency(0.99)
        lines.append(
            f"p99 end-to-end, C={c}, 1 ms polling: {p99 * 1000:.2f} ms "
            f"(bare pair p99 {bare.latency(0.99) * 1000 if bare else math.nan:.2f} ms)  "
            f"goal <= {GOAL_P99 * 1000:.0f} ms: {verdict(p99 <= GOAL_P99)}"
        )
    if wait:
        lines.append(
            f"end-to-end with long-poll, C={c}: p50 {ms(wait.latency(0.5))} ms, "
            f"p99 {ms(wait.latency(0.99))} ms "
            f"(bare pair: p50 {ms(bare.latency(0.5)) if bare else '-'} ms, "
            f"p99 {ms(bare.latency(0.99)) if bare else '-'} ms)"
        )
    for lp in results.longpolls:
        delays = results.answer_delays.get(lp.clients, AnswerDelays((), ()))
        p99 = loadgen.percentile(delays.all, 0.99)
        lines.append(
            f"long-poll answer after job end, C={lp.clients}: p50 "
            f"{ms(loadgen.percentile(delays.all, 0.5))} ms, p99 {ms(p99)} ms over "
            f"{len(delays.all)} jobs; the {len(delays.waited)} that finished while their "
            f"long-poll waited: p50 {ms(loadgen.percentile(delays.waited, 0.5))} ms, p99 "
            f"{ms(loadgen.percentile(delays.waited, 0.99))} ms  goal <= "
            f"{GOAL_LONGPOLL * 1000:.0f} ms: {verdict(p99 <= GOAL_LONGPOLL)}"
        )
        lines.append(
            f"  same jobs, job time included: GET ?wait round trip minus plain GET p50 "
            f"{ms(lp.excess(0.5))} ms, p99 {ms(lp.excess(0.99))} ms (GET ?wait p50 "
            f"{ms(loadgen.percentile(lp.waits, 0.5))} / p99 "
            f"{ms(loadgen.percentile(lp.waits, 0.99))} ms; plain GET p50 "
            f"{ms(loadgen.percentile(lp.plains, 0.5))} ms)"
        )
    if poll:
        low, high = (poll.jobs_per_s / f for f in FLASK_JOBS_PER_S)
        target = GOAL_FLASK_FACTOR * FLASK_JOBS_PER_S[1]
        lines.append(
            f"vs Flask/thread-pool (78-117 jobs/s, p50 266-411 ms), C={c}: "
            f"{high:.1f}x-{low:.1f}x, p50 {ms(poll.latency(0.5))} ms  goal >= "
            f"{GOAL_FLASK_FACTOR:.0f}x ({target:.0f} jobs/s): "
            f"{verdict(poll.jobs_per_s >= target)}"
        )
    return lines


def report(results: Results, plan: Plan, wall: float) -> str:
    """The whole printout: table, failures, goals, notes."""
    parts = [
        "",
        (
            f"HTTP benchmark: {cpu_count()} CPUs, server --workers {plan.workers}, "
            f"<= {plan.jobs} jobs or {plan.time_limit:g} s per row, seed {plan.seed}, "
            f"{wall:.0f} s in all"
        ),
        "",
        loadgen.format_table(results.rows, results.ceilings),
        (
            "  latencies: POST start to done seen; * = burst row: POST round trip, jobs/s "
            "until the last result; cost = bare pairs/s at the same C / our jobs/s"
        ),
    ]
    errors = loadgen.format_errors(results.rows)
    if errors:
        parts += ["", "errors:", errors]
    parts += ["", "goals (C=32, demo data):", *(f"  {g}" for g in goals(results))]
    parts += ["", "notes:", *(f"  {n}" for n in results.notes)]
    if results.failures:
        parts.append(loadgen.format_failures(results.failures))
    return "\n".join(parts)


async def run(plan: Plan) -> int:
    """Run the plan; 0 unless the server misbehaved (errors, lost jobs, unclean exit)."""
    results = Results()
    began = time.perf_counter()
    with scratch_dir("http-") as workdir:
        await run_demo(plan, workdir, results)
    print(report(results, plan, time.perf_counter() - began), flush=True)
    return 1 if results.failures else 0


def _clients(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse_args(argv: Sequence[str] | None = None) -> Plan:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_http",
        description="HTTP benchmarks of our server next to a bare aiohttp server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--clients", type=_clients, default=(1, 8, 32, 128), help="C values")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per row at most")
    parser.add_argument("--time-limit", type=float, default=15.0, help="seconds per row at most")
    parser.add_argument("--burst", type=int, default=5000, help="POSTs of the burst")
    parser.add_argument("--burst-concurrency", type=int, default=64, help="burst connections")
    parser.add_argument("--longpoll-samples", type=int, default=2000, help="per C")
    parser.add_argument("--warmup", type=int, default=300, help="jobs per server first")
    parser.add_argument(
        "--workers", type=int, default=2, help="server --workers (default 2, as on this box)"
    )
    parser.add_argument(
        "--big-rows", type=int, default=1_000_000, help="rows of the big dataset (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the random jobs")
    args = parser.parse_args(argv)
    scenarios = tuple(args.scenario or SCENARIOS)
    if not TMPFS.is_dir():
        scenarios = tuple(s for s in scenarios if s != "tmpfs")
    if args.quick:
        return Plan(
            scenarios=tuple(s for s in scenarios if s != "bigdata" or args.scenario),
            clients=(1, 32),
            jobs=300,
            time_limit=5.0,
            burst=500,
            burst_concurrency=32,
            longpoll_samples=200,
            warmup=50,
            workers=args.workers,
            big_rows=min(args.big_rows, 100_000),
            seed=args.seed,
        )
    return Plan(
        scenarios=scenarios,
        clients=args.clients,
        jobs=args.jobs,
        time_limit=args.time_limit,
        burst=args.burst,
        burst_concurrency=args.burst_concurrency,
        longpoll_samples=args.longpoll_samples,
        warmup=args.warmup,
        workers=args.workers,
        big_rows=args.big_rows,
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the HTTP benchmarks and print the figures."""
    plan = parse_args(argv)
    return asyncio.run(run(plan))


if __name__ == "__main__":
    raise SystemExit(main())
