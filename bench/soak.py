"""Soak: many jobs at C=32 against one server, watching its memory, open files and pending jobs.

`python -m bench.soak` runs 100,000 jobs (`--jobs` to change) after a warm-up, samples the
server's RSS, fd count and `num_jobs` every few seconds, and prints the growth between the start
(after the warm-up) and the end, next to the goals: RSS growth <= 30 MB, no fd growth, `num_jobs`
back to 0.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import loadgen, option, parse_plan
from bench.servers import (
    CpuMeter,
    ProcSample,
    ServerProcess,
    at_rest,
    mb,
    scratch_lestats,
    settled,
    watching,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.servers import Record

GOAL_RSS_GROWTH_MB = 30.0


def sample_printer(tally: loadgen.Tally) -> Record:
    """A watch callback printing each look: seconds from now, jobs done, RSS, fds, num_jobs."""
    began = time.perf_counter()

    def record(pending: int | None, proc: ProcSample) -> None:
        print(
            f"  {time.perf_counter() - began:7.1f} s {tally.jobs:>8} jobs  RSS "
            f"{mb(proc.rss_kb):6.1f} MB  fds {proc.fds:>4}  num_jobs {pending}",
            flush=True,
        )

    return record


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """Soak the server with many jobs; watch RSS, fds and num_jobs."""

    jobs: int = option(100_000, "jobs of the soak")
    clients: int = option(32, "concurrent clients")
    mode: loadgen.Mode = option("poll", "how to wait", choices=("poll", "wait"))  # noqa: RUF009
    sample_every: float = option(10.0, "seconds")
    time_limit: float = option(1800.0, "seconds at most")
    warmup: int = option(2000, "jobs before the start sample")
    workers: int = option(2, "server --workers")


async def soak(plan: SoakPlan) -> int:
    """Run the soak and print its figures; 0 unless the server misbehaved."""
    async with scratch_lestats("soak-", workers=plan.workers) as server:
        launch = server.sample()
        workload = await loadgen.discover(server.url)
        load = functools.partial(
            loadgen.closed_loop,
            server.url,
            plan.clients,
            mode=plan.mode,
            workload=workload,
            time_limit=plan.time_limit,
        )
        print(f"warm-up: {plan.warmup} jobs at C={plan.clients}", flush=True)
        warm = await load(plan.warmup, seed=2)
        start = await settled(server)
        print(
            f"soak: {plan.jobs} jobs at C={plan.clients} ({plan.mode}), sampling every "
            f"{plan.sample_every:g} s",
            flush=True,
        )
        tally = loadgen.Tally()
        async with watching(server, plan.sample_every, sample_printer(tally), at_once=False):
            meter = CpuMeter(server.pid)
            figures = await load(
                plan.jobs, seed=3, tally=tally, name=f"soak {plan.mode} C={plan.clients}"
            )
        use = meter.read()
        pending, end = await at_rest(server)
        figures = figures.measured(use, peak_rss_kb=end.peak_kb)
    print(
        _report(plan, figures, launch=launch, start=start, end=end, pending=pending, server=server)
    )
    return loadgen.exit_status(_check(warm, figures, pending, plan.jobs) + server.stop_failures())


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
                f"{loadgen.verdict(growth <= GOAL_RSS_GROWTH_MB)}"
            ),
            (
                f"  open fds: launch {launch.fds}, start {start.fds}, end {end.fds} (no client "
                f"connected)  goal: no growth: {loadgen.verdict(end.fds <= start.fds)}"
            ),
            f"  num_jobs at the end: {pending}  goal 0: {loadgen.verdict(pending == 0)}",
            (
                f"  errors {figures.error_count}, accepted {figures.accepted}, distinct ids "
                f"{figures.distinct_ids}, {figures.jobs_per_s:.0f} jobs/s, "
                f"{figures.polls_per_job:.2f} GETs/job"
            ),
            f"  {server.stop_report()}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak."""
    return asyncio.run(soak(parse_plan(SoakPlan, argv, prog="python -m bench.soak")))


if __name__ == "__main__":
    raise SystemExit(main())
