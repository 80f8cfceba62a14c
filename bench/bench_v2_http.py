"""Benchmark: a `GET /api/v2/<kind>` answered from the cache path against a bare aiohttp GET.

Usage: python -m bench.bench_v2_http [--rounds 7] [--seconds 1.5] [--clients 8] [--quick]

Both servers run as subprocesses on 127.0.0.1 in the same run: the real server (`run.py --data
<the CDC export>`, 2 workers) and `bench.bare_server` (aiohttp with a canned answer, no engine,
no logging, no middleware). The v2 URL is asked once first, so every measured GET is answered
from the loop-side cache (validation, canonical query, ETag, cache lookup, the log lines). Then
`--rounds` rounds: in each, `--clients` clients GET in a closed loop for `--seconds` from each
of: the bare server, the bare server answering the v2 answer's bytes, the cached v2 GET, the
same GET with `If-None-Match` (a 304), and the real server's course `GET /api/get_results` of
a finished job (its own stack's floor: logging, guards and middleware included); the order
turns round every round (ABBA). The figures are requests per second, the median and 99th
percentile latency, and the server's CPU time per request (`/proc/<pid>/stat`: the fairest
figure on a shared machine).

This machine's speed drifts by tens of percent within a minute, so each round's ratios are taken
against that round's own bare measurement, and the verdict is on the medians of those ratios.

Goal: the cached GET costs <= 1.5 x the bare GET (server CPU per request, and latency). The
bare GET answers the course's small canned result; the v2 answer is about 16 times its size, so
the bare server also answers the v2 answer's own bytes (`bench.bare_server --answer`), shown
for reference: that is aiohttp's floor for this very answer.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass

import aiohttp

from bench.bare_server import CANNED_RESULT
from bench.servers import (
    ServerProcess,
    bare_server,
    cdc_file,
    lestats_server,
    process_cpu_seconds,
    scratch_dir,
)

GOAL_RATIO = 1.5
V2_PATH = "/api/v2/trend?question=Q036&location=OH,US"
BARE_PATH = "/api/get_results/job_id_1"


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


@dataclass(frozen=True, slots=True)
class Target:
    """One thing measured each round: a URL of one server, the headers and status it expects."""

    label: str
    pid: int
    url: str
    headers: dict[str, str]
    status: int


async def measure(target: Target, args: argparse.Namespace) -> dict[str, float]:
    """Run the closed loop against one target: req/s, median and p99 latency, CPU per request."""
    cpu = process_cpu_seconds(target.pid)
    started = time.perf_counter()
    latencies = await closed_loop(
        target.url, args.clients, args.seconds, target.headers, target.status
    )
    elapsed = time.perf_counter() - started
    cpu_us = (process_cpu_seconds(target.pid) - cpu) / len(latencies) * 1e6
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "median_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        "cpu_us": cpu_us,
    }


async def run(args: argparse.Namespace) -> int:
    """Start both servers, measure in alternating rounds, print the medians and the verdict."""
    data = cdc_file()
    if data is None:
        print("skipped: the CDC export is not in ../shared/data")
        return 0
    with scratch_dir("lestats-v2-bench-") as workdir:
        async with lestats_server(workdir, data=data) as real:
            async with aiohttp.ClientSession() as session, session.get(real.url + V2_PATH) as first:
                tag = first.headers["ETag"]
                answer = await first.read()
            (workdir / "answer.json").write_bytes(answer)
            async with bare_server(workdir, workdir / "answer.json") as bare:
                rounds = await measure_rounds(args, real, bare, tag)
    print(f"(the v2 answer is {len(answer):,} bytes, the canned get_results {len(CANNED_RESULT)})")
    return report(rounds)


async def measure_rounds(
    args: argparse.Namespace, real: ServerProcess, bare: ServerProcess, tag: str
) -> list[dict[str, dict[str, float]]]:
    """Warm every target up, then measure them all, `args.rounds` times, in alternating order."""
    real_url, bare_url = real.url, bare.url
    # job_id_1 of the real server is the job that computed the v2 answer's first GET.
    targets = [
        Target(BARE, bare.pid, bare_url + BARE_PATH, {}, 200),
        Target(BARE_SAME, bare.pid, bare_url + "/api/answer", {}, 200),
        Target(CACHED, real.pid, real_url + V2_PATH, {}, 200),
        Target(REVALIDATED, real.pid, real_url + V2_PATH, {"If-None-Match": tag}, 304),
        Target(COURSE, real.pid, real_url + BARE_PATH, {}, 200),
    ]
    for target in targets:  # warm-up
        await closed_loop(
            target.url, args.clients, min(1.0, args.seconds), target.headers, target.status
        )
    print(
        f"GET from the cache path vs a bare aiohttp GET, {args.clients} clients, "
        f"{args.rounds} rounds of {args.seconds:g} s each"
    )
    rounds: list[dict[str, dict[str, float]]] = []
    for number in range(args.rounds):
        order = targets if number % 2 == 0 else targets[::-1]
        figures = {target.label: await measure(target, args) for target in order}
        rounds.append(figures)
        print(
            f"  round {number + 1}, server CPU per request: "
            + "  ".join(f"{SHORT[k]} {figures[k]['cpu_us']:5.1f} us" for k in LABELS),
            flush=True,
        )
    return rounds


BARE = "bare aiohttp GET"
BARE_SAME = "bare aiohttp GET, same bytes"
CACHED = "lestats GET /api/v2/trend"
REVALIDATED = "lestats same, If-None-Match"
COURSE = "lestats GET /api/get_results"
LABELS = (BARE, BARE_SAME, CACHED, REVALIDATED, COURSE)
SHORT = {
    BARE: "bare",
    BARE_SAME: "bare same bytes",
    CACHED: "v2 cached",
    REVALIDATED: "v2 304",
    COURSE: "get_results",
}


def report(rounds: list[dict[str, dict[str, float]]]) -> int:
    """The medians of each target's figures, and of its ratios to the same round's bare GET."""
    print("medians over the rounds:")
    for label in LABELS:
        median = {key: statistics.median(r[label][key] for r in rounds) for key in rounds[0][label]}
        print(
            f"  {label:<28} {median['rps']:8.0f} req/s  median {median['median_ms']:6.2f} ms  "
            f"p99 {median['p99_ms']:6.2f} ms  server CPU {median['cpu_us']:6.1f} us/req"
        )
    for label, name in (
        (CACHED, "cached 200"),
        (REVALIDATED, "304"),
        (COURSE, "course get_results (reference)"),
    ):
        cpu_ratio = statistics.median(r[label]["cpu_us"] / r[BARE]["cpu_us"] for r in rounds)
        latency_ratio = statistics.median(
            r[label]["median_ms"] / r[BARE]["median_ms"] for r in rounds
        )
        ok = cpu_ratio <= GOAL_RATIO and latency_ratio <= GOAL_RATIO
        print(
            f"  {name}: x{cpu_ratio:.2f} server CPU, x{latency_ratio:.2f} median latency "
            f"of the bare GET (medians of per-round ratios; goal <= {GOAL_RATIO}): "
            f"{'ok' if ok else 'OVER'}"
        )
    same_cpu = statistics.median(r[CACHED]["cpu_us"] / r[BARE_SAME]["cpu_us"] for r in rounds)
    same_latency = statistics.median(
        r[CACHED]["median_ms"] / r[BARE_SAME]["median_ms"] for r in rounds
    )
    print(
        f"  (for reference: the cached 200 is x{same_cpu:.2f} server CPU, x{same_latency:.2f} "
        "median latency of a bare aiohttp GET answering the same bytes)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (each measures all five)")
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 2, 0.5
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
