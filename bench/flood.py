"""Flood: many POSTs as fast as possible against a server with a low `--max-pending`.

`python -m bench.flood` sends 50,000 POSTs (`--posts` to change) from 256 connections to a server
started with `--max-pending 4` (at 200 this server keeps up and refuses nothing). Expected: some
503s, each with `Retry-After`; memory bounded;
`num_jobs` never above the limit; every accepted job ends `done`; accepted ids consecutive.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import loadgen, option, parse_plan
from bench.servers import at_rest, mb, reset_peak, scratch_lestats, settled, watching

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.servers import ProcSample

WATCH_EVERY = 0.25
"""Seconds between two looks at the server's `num_jobs` and RSS while flooding."""


@dataclass(frozen=True, slots=True)
class FloodPlan:
    """Flood the server with POSTs against a low --max-pending."""

    posts: int = option(50_000, "POSTs to send")
    concurrency: int = option(256, "connections")
    max_pending: int = option(4, "server --max-pending")
    time_limit: float = option(600.0, "seconds at most")
    workers: int = option(2, "server --workers")


@dataclass(slots=True)
class Watch:
    """The largest `num_jobs` and RSS seen while flooding."""

    max_num_jobs: int = 0
    max_rss_kb: int = 0
    samples: int = 0

    def record(self, pending: int | None, proc: ProcSample) -> None:
        """Take one look at the server into account."""
        self.max_num_jobs = max(self.max_num_jobs, pending or 0)
        self.max_rss_kb = max(self.max_rss_kb, proc.rss_kb)
        self.samples += 1


async def run_flood(plan: FloodPlan) -> int:
    """Flood, collect, print; 0 unless the server misbehaved."""
    async with scratch_lestats(
        "flood-", workers=plan.workers, max_pending=plan.max_pending
    ) as server:
        workload = await loadgen.discover(server.url)
        start = await settled(server)
        reset_peak(server.pid)
        print(
            f"flood: {plan.posts} POSTs from {plan.concurrency} connections, server "
            f"--max-pending {plan.max_pending} --workers {plan.workers}",
            flush=True,
        )
        watch = Watch()
        async with watching(server, WATCH_EVERY, watch.record, at_once=True):
            began = time.perf_counter()
            figures = await loadgen.flood(
                server.url,
                plan.posts,
                plan.concurrency,
                time_limit=plan.time_limit,
                workload=workload,
            )
        total = time.perf_counter() - began
        pending, end = await at_rest(server)
    lines, failures = _report(plan, figures, watch, pending, total)
    lines += [
        (
            f"  server RSS: start {mb(start.rss_kb):.1f} MB, peak {mb(end.peak_kb):.1f} MB "
            f"(+{mb(end.peak_kb - start.rss_kb):.1f}), end {mb(end.rss_kb):.1f} MB; fds start "
            f"{start.fds}, end {end.fds}"
        ),
        f"  {server.stop_report()}",
    ]
    print("\n".join(lines))
    return loadgen.exit_status(failures + server.stop_failures())


def _report(
    plan: FloodPlan,
    figures: loadgen.FloodFigures,
    watch: Watch,
    pending: int | None,
    total: float,
) -> tuple[list[str], list[str]]:
    failures: list[str] = []
    answered = figures.accepted + figures.rejected + sum(figures.other_statuses.values())
    some_503 = figures.rejected > 0 and figures.retry_after_missing == 0
    if figures.retry_after_missing:
        failures.append(f"{figures.retry_after_missing} 503 answers without Retry-After")
    if figures.other_statuses or figures.errors:
        failures.append(f"statuses {figures.other_statuses}, exceptions {figures.errors}")
    if not figures.all_done:
        failures.append(f"accepted {figures.accepted}, final states {figures.finals}")
    if not figures.ids_contiguous:
        failures.append(f"accepted ids not consecutive: range {figures.id_range}")
    if pending != 0:
        failures.append(f"num_jobs at the end: {pending}")
    if watch.max_num_jobs > plan.max_pending:
        failures.append(f"num_jobs reached {watch.max_num_jobs} > {plan.max_pending}")
    lat = figures.post_latencies
    lines = [
        "",
        (
            f"flood: {figures.sent} POSTs sent, {answered} answered in "
            f"{figures.post_elapsed:.1f} s "
            f"({figures.sent / figures.post_elapsed:.0f} POST/s); collected in "
            f"{figures.collect_elapsed:.1f} s; {total:.1f} s in all"
        ),
        (
            f"  200 accepted {figures.accepted}, 503 rejected {figures.rejected} "
            f"({figures.retry_after_missing} without Retry-After), other statuses "
            f"{figures.other_statuses or 'none'}, exceptions {figures.errors or 'none'}"
        ),
        (
            f"  POST round trip: p50 {loadgen.percentile(lat, 0.5) * 1000:.2f} ms, p99 "
            f"{loadgen.percentile(lat, 0.99) * 1000:.2f} ms, max "
            f"{loadgen.percentile(lat, 1.0) * 1000:.2f} ms"
        ),
        f"  some 503, every one with Retry-After: {loadgen.verdict(some_503)}",
        (
            f"  accepted jobs by final status: {figures.finals}; every accepted job done: "
            f"{loadgen.verdict(figures.all_done)}"
        ),
        (
            f"  accepted ids: {figures.distinct_ids} distinct, range {figures.id_range}, "
            f"consecutive: {loadgen.verdict(figures.ids_contiguous)}"
        ),
        (
            f"  num_jobs: max seen {watch.max_num_jobs} ({watch.samples} samples; limit "
            f"{plan.max_pending}), at the end {pending}: "
            f"{loadgen.verdict(pending == 0 and watch.max_num_jobs <= plan.max_pending)}"
        ),
    ]
    if not figures.rejected:
        lines.append(
            f"  no 503 at all: the server never held {plan.max_pending} unfinished jobs (max "
            f"seen {watch.max_num_jobs}), i.e. it finished jobs as fast as it accepted them"
        )
    return lines, failures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the flood."""
    return asyncio.run(run_flood(parse_plan(FloodPlan, argv, prog="python -m bench.flood")))


if __name__ == "__main__":
    raise SystemExit(main())
