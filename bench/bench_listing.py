"""Listing a million jobs: other requests keep answering fast and memory comes back (issue 11.7).

`python -m bench.bench_listing` prepares a results directory whose journal says that ids
1..1,000,000 were issued, with a result file for one id in `--sample-every` (the others read as
done jobs whose file is gone: `error`), starts the real server (run.py) on it, then:

1. baseline: `--clients` clients send health checks, POSTs and result polls for
   `--probe-seconds`; their p99 is the baseline;
2. the same probe again while `--listings` full `GET /api/jobs` (each walking all 1 M ids, sent
   by `curl` so that this process's event loop only runs the probe) run one after the other;
   the probe's p99 then, the listings' time and size, and the server's RSS before, at its peak
   and once the listings are over.

The goal: p99 during the listing <= 50 ms, RSS back within 50 MB of where it was.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import loadgen, option, parse_plan
from bench.servers import lestats_server, mb, scratch_dir

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import aiohttp

    from bench.servers import ServerProcess

P99_GOAL_MS = 50.0
RSS_GOAL_MB = 50.0
QUESTION = "Percent of adults aged 18 years and older who have obesity"


@dataclass(frozen=True, slots=True)
class ListingPlan:
    """While GET /api/jobs lists a million jobs, other requests keep answering; memory returns."""

    jobs: int = option(1_000_000, "ids issued before the server starts")
    sample_every: int = option(1000, "a result file for one id in this many")
    listings: int = option(3, "full listings, one after another")
    clients: int = option(4, "probe clients")
    probe_seconds: float = option(10.0, "seconds of the baseline probe")


def prepare(results: Path, jobs: int, sample_every: int) -> int:
    """A results directory in which ids 1..`jobs` were issued; how many result files it has."""
    results.mkdir(parents=True)
    (results / "journal.jsonl").write_text(json.dumps({"next": jobs + 1}) + "\n")
    files = 0
    for job_id in range(1, jobs + 1, sample_every):
        (results / f"job_id_{job_id}.json").write_bytes(b'{"global_mean": 29.5}')
        files += 1
    return files


@dataclass(slots=True)
class Probe:
    """Latencies (seconds) of the probe's requests, and how many failed."""

    latencies: list[float]
    errors: int = 0

    def p99_ms(self) -> float:
        """The 99th percentile, in milliseconds."""
        return loadgen.percentile(sorted(self.latencies), 0.99) * 1000


async def probe(
    session: aiohttp.ClientSession, url: str, stop: asyncio.Event, clients: int
) -> Probe:
    """Health checks, POSTs and polls from `clients` clients until `stop` is set."""
    found = Probe([])

    async def timed(method: str, path: str, body: object = None) -> object:
        began = time.perf_counter()
        async with session.request(method, url + path, json=body) as response:
            answer = await response.json()
            if response.status != 200:
                found.errors += 1
        found.latencies.append(time.perf_counter() - began)
        return answer

    async def client() -> None:
        while not stop.is_set():
            await timed("GET", "/api/health")
            posted = await timed("POST", "/api/global_mean", {"question": QUESTION})
            job_id = posted.get("job_id") if isinstance(posted, dict) else None
            if job_id is not None:
                await timed("GET", f"/api/get_results/{job_id}")

    await asyncio.gather(*(client() for _ in range(clients)))
    return found


async def list_all(url: str, out: Path) -> tuple[float, int, int]:
    """One full `GET /api/jobs` by curl (another process: this one's loop stays the probe's).

    Its seconds, bytes and entries.
    """
    began = time.perf_counter()
    curl = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--fail", "--noproxy", "*", "--output", str(out), url + "/api/jobs"
    )
    if await curl.wait() != 0:
        raise RuntimeError(f"curl failed with exit status {curl.returncode}")
    seconds = time.perf_counter() - began
    body = await asyncio.to_thread(out.read_bytes)
    await asyncio.to_thread(out.unlink)
    return seconds, len(body), body.count(b'{"job_id_')


async def watch_rss(server: ServerProcess, stop: asyncio.Event, peak: list[int]) -> None:
    """Keep the largest RSS seen in `peak[0]` until `stop` is set."""
    while not stop.is_set():
        peak[0] = max(peak[0], server.sample().rss_kb)
        await asyncio.sleep(0.05)


async def measure(plan: ListingPlan, workdir: Path) -> int:
    """Run both phases against one server; print the figures; 0 if the goals were met."""
    results = workdir / "results"
    began = time.perf_counter()
    files = prepare(results, plan.jobs, plan.sample_every)
    print(
        f"prepared {plan.jobs:,} issued ids, {files:,} result files"
        f" ({time.perf_counter() - began:.1f} s)"
    )
    server = lestats_server(workdir, results_dir=results)
    async with server, loadgen.new_session() as session:
        url = server.url
        print(
            f"server up in {server.startup_seconds:.1f} s, RSS {mb(server.sample().rss_kb):.0f} MB"
        )
        stop = asyncio.Event()
        baseline_task = asyncio.ensure_future(probe(session, url, stop, plan.clients))
        await asyncio.sleep(plan.probe_seconds)
        stop.set()
        baseline = await baseline_task
        rss_before = server.sample().rss_kb

        stop = asyncio.Event()
        peak = [rss_before]
        during_task = asyncio.ensure_future(probe(session, url, stop, plan.clients))
        watcher = asyncio.ensure_future(watch_rss(server, stop, peak))
        listed = [await list_all(url, workdir / "listing.json") for _ in range(plan.listings)]
        stop.set()
        during = await during_task
        await watcher
        await asyncio.sleep(1.0)  # let the last responses' buffers go
        rss_after = server.sample().rss_kb

    print(
        f"baseline: {len(baseline.latencies):,} requests, p99 {baseline.p99_ms():.1f} ms,"
        f" {baseline.errors} errors"
    )
    for seconds, size, entries in listed:
        print(f"listing:  {entries:,} jobs, {size / 1e6:.1f} MB in {seconds:.2f} s")
    print(
        f"during:   {len(during.latencies):,} requests, p99 {during.p99_ms():.1f} ms"
        f" (goal <= {P99_GOAL_MS:.0f} ms), {during.errors} errors"
    )
    grown = mb(rss_after - rss_before)
    print(
        f"RSS:      {mb(rss_before):.0f} MB before, {mb(peak[0]):.0f} MB peak,"
        f" {mb(rss_after):.0f} MB after: {grown:+.1f} MB (goal within {RSS_GOAL_MB:.0f} MB)"
    )
    complete = all(entries >= plan.jobs for _, _, entries in listed)  # POSTs add some
    if not complete:
        print("FAILED: a listing did not hold every issued id")
    met = complete and during.p99_ms() <= P99_GOAL_MS and grown <= RSS_GOAL_MB
    return 0 if met else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the plan and run it in a scratch directory."""
    plan = parse_plan(ListingPlan, argv, prog="python -m bench.bench_listing")
    with scratch_dir("listing-") as workdir:
        return asyncio.run(measure(plan, workdir))


if __name__ == "__main__":
    sys.exit(main())
