"""Benchmark: a `GET /api/v2/<kind>` answered from the cache path against a bare aiohttp GET.

Usage: python -m bench.bench_v2_http [--seconds 5] [--clients 8] [--quick]

Both servers run as subprocesses on 127.0.0.1 in the same run: the real server (`run.py --data
<the CDC export>`, 2 workers) and `bench.bare_server` (aiohttp with a canned answer, no engine,
no logging, no middleware). The v2 URL is asked once first, so every measured GET is answered
from the loop-side cache (validation, canonical query, ETag, cache lookup, the log lines). Then,
for each server in turn, `--clients` clients GET in a closed loop for `--seconds`: the figures
are requests per second, the median and 99th percentile latency, and the server's CPU time per
request (`/proc/<pid>/stat`: the fairest figure on a shared machine). Also shown: the same GET
with `If-None-Match` (a 304), and the real server's course `GET /api/get_results` of a finished
job (its own stack's floor: logging, guards and middleware included).

Goal: the cached GET costs <= 1.5 x the bare GET (server CPU per request, and latency).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp

from bench.servers import bare_server, lestats_server, process_cpu_seconds, scratch_dir

GOAL_RATIO = 1.5
V2_PATH = "/api/v2/trend?question=Q036&location=OH,US"
BARE_PATH = "/api/get_results/job_id_1"


def _cdc() -> Path | None:
    here = Path(__file__).resolve()
    for folder in here.parents:
        candidate = folder / "shared" / "data" / "brfss-cdc-2011-2021.csv.gz"
        if candidate.exists():
            return candidate
    return None


async def closed_loop(
    url: str, clients: int, seconds: float, headers: dict[str, str], status: int
) -> list[float]:
    """Latencies of GETs by `clients` clients in a closed loop for `seconds`."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != status:
                        raise RuntimeError(f"{url}: {response.status}, not {status}")
                latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def measure(
    name: str,
    pid: int,
    url: str,
    args: argparse.Namespace,
    *,
    headers: dict[str, str],
    status: int,
) -> dict[str, float]:
    """Run the closed loop against one server and print its figures."""
    await closed_loop(url, args.clients, min(1.0, args.seconds), headers, status)  # warm-up
    cpu = process_cpu_seconds(pid)
    started = time.perf_counter()
    latencies = await closed_loop(url, args.clients, args.seconds, headers, status)
    elapsed = time.perf_counter() - started
    cpu_us = (process_cpu_seconds(pid) - cpu) / len(latencies) * 1e6
    latencies.sort()
    figures = {
        "rps": len(latencies) / elapsed,
        "median_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        "cpu_us": cpu_us,
    }
    print(
        f"  {name:<28} {figures['rps']:8.0f} req/s  median {figures['median_ms']:6.2f} ms  "
        f"p99 {figures['p99_ms']:6.2f} ms  server CPU {figures['cpu_us']:6.1f} us/req"
    )
    return figures


async def run(args: argparse.Namespace) -> int:
    """Start both servers, measure, print the ratios."""
    data = _cdc()
    if data is None:
        print("skipped: the CDC export is not in ../shared/data")
        return 0
    with scratch_dir("lestats-v2-bench-") as workdir:
        async with lestats_server(workdir, data=data) as real, bare_server(workdir) as bare:
            real_url, bare_url = real.url, bare.url
            async with aiohttp.ClientSession() as session:
                async with session.get(real_url + V2_PATH) as first:
                    tag = first.headers["ETag"]
                    await first.read()
                async with session.post(bare_url + "/api/best5", json={"question": "q"}) as post:
                    await post.read()
            print(
                f"GET from the cache path vs a bare aiohttp GET, {args.clients} clients, "
                f"{args.seconds:g} s each"
            )
            bare_before = await measure(
                "bare aiohttp GET", bare.pid, bare_url + BARE_PATH, args, headers={}, status=200
            )
            cached = await measure(
                "lestats GET /api/v2/trend",
                real.pid,
                real_url + V2_PATH,
                args,
                headers={},
                status=200,
            )
            course = await measure(
                "lestats GET /api/get_results",
                real.pid,
                real_url + BARE_PATH,
                args,
                headers={},
                status=200,
            )
            revalidated = await measure(
                "lestats same, If-None-Match",
                real.pid,
                real_url + V2_PATH,
                args,
                headers={"If-None-Match": tag},
                status=304,
            )
            bare_after = await measure(
                "bare aiohttp GET, again",
                bare.pid,
                bare_url + BARE_PATH,
                args,
                headers={},
                status=200,
            )
    # The bare server measured before and after: a drift of the machine shows, and is averaged.
    ceiling = {key: (bare_before[key] + bare_after[key]) / 2 for key in bare_before}
    for label, figures in (
        ("cached 200", cached),
        ("304", revalidated),
        ("course get_results (reference)", course),
    ):
        cpu_ratio = figures["cpu_us"] / ceiling["cpu_us"]
        latency_ratio = figures["median_ms"] / ceiling["median_ms"]
        ok = cpu_ratio <= GOAL_RATIO and latency_ratio <= GOAL_RATIO
        print(
            f"  {label}: x{cpu_ratio:.2f} server CPU, x{latency_ratio:.2f} median latency "
            f"of the bare GET (goal <= {GOAL_RATIO}): {'ok' if ok else 'OVER'}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 1.0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
