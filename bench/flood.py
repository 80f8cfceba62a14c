"""Flood: many POSTs as fast as possible against a server with a low `--max-pending`.

`python -m bench.flood` sends 50,000 POSTs (`--posts` to change) from 256 connections to a server
started with `--max-pending 200`. Expected: some 503s, each with `Retry-After`; memory bounded;
`num_jobs` never above the limit; every accepted job ends `done`; accepted ids consecutive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import loadgen
from bench.servers import ServerProcess, lestats_server, mb, reset_peak, scratch_dir
from bench.soak import num_jobs, settled

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True, slots=True)
class FloodPlan:
    """The command line."""

    posts: int
    concurrency: int
    max_pending: int
    time_limit: float
    workers: int


@dataclass(slots=True)
class Watch:
    """The largest `num_jobs` and RSS seen while flooding."""

    max_num_jobs: int = 0
    max_rss_kb: int = 0
    samples: int = 0


async def watcher(server: ServerProcess, watch: Watch, every: float = 0.25) -> None:
    """Sample `num_jobs` and RSS every `every` seconds until cancelled."""
    async with loadgen.new_session() as session:
        while True:
            pending = await num_jobs(session, server.url)
            watch.max_num_jobs = max(watch.max_num_jobs, pending or 0)
            watch.max_rss_kb = max(watch.max_rss_kb, server.sample().rss_kb)
            watch.samples += 1
            await asyncio.sleep(every)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def run_flood(plan: FloodPlan) -> int:
    """Flood, collect, print; 0 unless the server misbehaved."""
    failures: list[str] = []
    with scratch_dir("flood-") as workdir:
        server = lestats_server(workdir, workers=plan.workers, max_pending=plan.max_pending)
        async with server:
            async with loadgen.new_session() as session:
                workload = await loadgen.discover(session, server.url)
            start = await settled(server)
            reset_peak(server.pid)
            print(
                f"flood: {plan.posts} POSTs from {plan.concurrency} connections, server "
                f"--max-pending {plan.max_pending} --workers {plan.workers}",
                flush=True,
            )
            watch = Watch()
            task = asyncio.create_task(watcher(server, watch))
            began = time.perf_counter()
            try:
                figures = await loadgen.flood(
                    server.url,
                    plan.posts,
                    plan.concurrency,
                    time_limit=plan.time_limit,
                    workload=workload,
                )
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            total = time.perf_counter() - began
            async with loadgen.new_session() as session:
                pending = await num_jobs(session, server.url)
            end = await settled(server)
        lines, failures = _report(plan, figures, watch, pending, total)
        lines += [
            (
                f"  server RSS: start {mb(start.rss_kb):.1f} MB, peak {mb(end.peak_kb):.1f} MB "
                f"(+{mb(end.peak_kb - start.rss_kb):.1f}), end {mb(end.rss_kb):.1f} MB; fds start "
                f"{start.fds}, end {end.fds}"
            ),
            f"  {server.stop_report()}",
        ]
        if server.returncode != 0:
            failures.append(server.stop_report())
    print("\n".join(lines))
    if failures:
        print("\nSERVER MISBEHAVIOUR:\n" + "\n".join(f"  {f}" for f in failures))
    return 1 if failures else 0


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
        f"  some 503, every one with Retry-After: {_verdict(some_503)}",
        (
            f"  accepted jobs by final status: {figures.finals}; every accepted job done: "
            f"{_verdict(figures.all_done)}"
        ),
        (
            f"  accepted ids: {figures.distinct_ids} distinct, range {figures.id_range}, "
            f"consecutive: {_verdict(figures.ids_contiguous)}"
        ),
        (
            f"  num_jobs: max seen {watch.max_num_jobs} ({watch.samples} samples; limit "
            f"{plan.max_pending}), at the end {pending}: "
            f"{_verdict(pending == 0 and watch.max_num_jobs <= plan.max_pending)}"
        ),
    ]
    if not figures.rejected:
        lines.append(
            f"  no 503 at all: the server never held {plan.max_pending} unfinished jobs (max "
            f"seen {watch.max_num_jobs}), i.e. it finished jobs as fast as it accepted them"
        )
    return lines, failures


def parse_args(argv: Sequence[str] | None = None) -> FloodPlan:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.flood",
        description="Flood the server with POSTs against a low --max-pending.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--posts", type=int, default=50_000, help="POSTs to send")
    parser.add_argument("--concurrency", type=int, default=256, help="connections")
    parser.add_argument("--max-pending", type=int, default=200, help="server --max-pending")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds at most")
    parser.add_argument("--workers", type=int, default=2, help="server --workers")
    args = parser.parse_args(argv)
    return FloodPlan(
        posts=args.posts,
        concurrency=args.concurrency,
        max_pending=args.max_pending,
        time_limit=args.time_limit,
        workers=args.workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the flood."""
    return asyncio.run(run_flood(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
