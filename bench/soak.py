"""Soak: many jobs at C=32 against one server, watching its memory, open files and pending jobs.

`python -m bench.soak` runs 100,000 jobs (`--jobs` to change) after a warm-up, samples the
server's RSS, fd count and `num_jobs` every few seconds, and prints the growth between the start
(after the warm-up) and the end, next to the goals: RSS growth <= 30 MB, no fd growth, `num_jobs`
back to 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from bench import loadgen
from bench.servers import CpuMeter, ProcSample, ServerProcess, lestats_server, mb, scratch_dir

if TYPE_CHECKING:
    from collections.abc import Sequence

GOAL_RSS_GROWTH_MB = 30.0
SETTLE_SECONDS = 3.0
"""How long to wait for closed client connections to leave the server's fd table."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The server at one moment of the soak."""

    at: float
    jobs: int
    rss_kb: int
    fds: int
    num_jobs: int | None


async def num_jobs(session: aiohttp.ClientSession, base_url: str) -> int | None:
    """The server's `num_jobs`, or None if it did not answer properly."""
    try:
        async with session.get(f"{base_url}/api/num_jobs") as resp:
            if resp.status != 200:
                return None
            value = (await resp.json()).get("num_jobs")
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return value if isinstance(value, int) else None


async def settled(server: ServerProcess) -> ProcSample:
    """A sample once the fd count has stopped moving (closed connections take a moment)."""
    last = server.sample()
    deadline = time.perf_counter() + SETTLE_SECONDS
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
        now = server.sample()
        if now.fds == last.fds:
            return now
        last = now
    return last


async def sampler(
    server: ServerProcess, tally: loadgen.Tally, every: float, samples: list[Sample]
) -> None:
    """Append a sample every `every` seconds until cancelled."""
    began = time.perf_counter()
    async with loadgen.new_session() as session:
        while True:
            await asyncio.sleep(every)
            pending = await num_jobs(session, server.url)
            proc = server.sample()
            sample = Sample(time.perf_counter() - began, tally.jobs, proc.rss_kb, proc.fds, pending)
            samples.append(sample)
            print(
                f"  {sample.at:7.1f} s {sample.jobs:>8} jobs  RSS {mb(sample.rss_kb):6.1f} MB  "
                f"fds {sample.fds:>4}  num_jobs {sample.num_jobs}",
                flush=True,
            )


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """The command line."""

    jobs: int
    clients: int
    mode: loadgen.Mode
    every: float
    time_limit: float
    warmup: int
    workers: int


async def soak(plan: SoakPlan) -> int:
    """Run the soak and print its figures; 0 unless the server misbehaved."""
    failures: list[str] = []
    with scratch_dir("soak-") as workdir:
        async with lestats_server(workdir, workers=plan.workers) as server:
            launch = server.sample()
            async with loadgen.new_session() as session:
                workload = await loadgen.discover(session, server.url)
            print(f"warm-up: {plan.warmup} jobs at C={plan.clients}", flush=True)
            warm = await loadgen.closed_loop(
                server.url,
                plan.clients,
                plan.warmup,
                mode=plan.mode,
                workload=workload,
                time_limit=plan.time_limit,
                seed=2,
            )
            start = await settled(server)
            print(
                f"soak: {plan.jobs} jobs at C={plan.clients} ({plan.mode}), sampling every "
                f"{plan.every:g} s",
                flush=True,
            )
            tally = loadgen.Tally()
            samples: list[Sample] = []
            watch = asyncio.create_task(sampler(server, tally, plan.every, samples))
            meter = CpuMeter(server.pid)
            try:
                figures = await loadgen.closed_loop(
                    server.url,
                    plan.clients,
                    plan.jobs,
                    mode=plan.mode,
                    workload=workload,
                    time_limit=plan.time_limit,
                    seed=3,
                    tally=tally,
                    name=f"soak {plan.mode} C={plan.clients}",
                )
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
            use = meter.read()
            async with loadgen.new_session() as session:
                pending = await num_jobs(session, server.url)
            end = await settled(server)
            figures = figures.measured(
                peak_rss_kb=end.peak_kb,
                server_cpu=use.server,
                client_cpu=use.client,
                others_busy=use.others,
            )
        failures += _check(warm, figures, pending, plan.jobs)
        if server.returncode != 0:
            failures.append(server.stop_report())
        print(
            _report(
                plan, figures, launch=launch, start=start, end=end, pending=pending, server=server
            )
        )
    if failures:
        print("\nSERVER MISBEHAVIOUR:\n" + "\n".join(f"  {f}" for f in failures))
    return 1 if failures else 0


def _check(
    warm: loadgen.Figures, figures: loadgen.Figures, pending: int | None, wanted: int
) -> list[str]:
    failures = [f"{run.name}: errors {run.errors}" for run in (warm, figures) if run.error_count]
    if figures.distinct_ids != figures.accepted:
        failures.append(f"{figures.accepted} accepted but {figures.distinct_ids} distinct ids")
    if figures.jobs < wanted:
        failures.append(f"only {figures.jobs} of {wanted} jobs done within the time limit")
    if pending != 0:
        failures.append(f"num_jobs at the end: {pending}")
    return failures


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _report(
    plan: SoakPlan,
    figures: loadgen.Figures,
    *,
    launch: ProcSample,
    start: ProcSample,
    end: ProcSample,
    pending: int | None,
    server: ServerProcess,
) -> str:
    growth = mb(end.rss_kb - start.rss_kb)
    per_job = (end.rss_kb - start.rss_kb) * 1024 / figures.jobs if figures.jobs else math.nan
    return "\n".join(
        [
            "",
            (
                f"soak: {figures.jobs} jobs done of {plan.jobs}, C={plan.clients}, {plan.mode}, "
                f"server --workers {plan.workers}, {figures.elapsed:.1f} s"
            ),
            loadgen.format_table([figures]),
            "",
            (
                f"  RSS at launch {mb(launch.rss_kb):.1f} MB; after the {plan.warmup}-job warm-up "
                f"(start) {mb(start.rss_kb):.1f} MB; end {mb(end.rss_kb):.1f} MB; peak "
                f"{mb(end.peak_kb):.1f} MB"
            ),
            (
                f"  RSS growth start->end {growth:+.1f} MB ({per_job:.0f} bytes/job); since launch "
                f"{mb(end.rss_kb - launch.rss_kb):+.1f} MB  goal <= {GOAL_RSS_GROWTH_MB:.0f} MB: "
                f"{_verdict(growth <= GOAL_RSS_GROWTH_MB)}"
            ),
            (
                f"  open fds: launch {launch.fds}, start {start.fds}, end {end.fds} (no client "
                f"connected)  goal: no growth: {_verdict(end.fds <= start.fds)}"
            ),
            f"  num_jobs at the end: {pending}  goal 0: {_verdict(pending == 0)}",
            (
                f"  errors {figures.error_count}, accepted {figures.accepted}, distinct ids "
                f"{figures.distinct_ids}, {figures.jobs_per_s:.0f} jobs/s, "
                f"{figures.polls_per_job:.2f} GETs/job"
            ),
            f"  {server.stop_report()}",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> SoakPlan:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Soak the server with many jobs; watch RSS, fds and num_jobs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs of the soak")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--mode", choices=("poll", "wait"), default="poll", help="how to wait")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds at most")
    parser.add_argument("--warmup", type=int, default=2000, help="jobs before the start sample")
    parser.add_argument("--workers", type=int, default=2, help="server --workers")
    args = parser.parse_args(argv)
    return SoakPlan(
        jobs=args.jobs,
        clients=args.clients,
        mode=args.mode,
        every=args.sample_every,
        time_limit=args.time_limit,
        warmup=args.warmup,
        workers=args.workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak."""
    return asyncio.run(soak(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
