"""Idle flood: 1,100 idle sockets against a server limited to 1,024 open files, then real clients.

`python -m bench.idle_flood` starts run.py twice, each time with `RLIMIT_NOFILE` 1,024 (soft and
hard) on the server process only:

- guarded: run.py's defaults (connection cap = the limit less 256, idle timeout 15 s, header
  timeout 10 s);
- baseline: the guard turned off as far as options go (cap 100,000, idle and header timeouts of
  3,630 s, aiohttp's own keep-alive default), which is how the server ran before the guard;
- with `--before DIR`, also DIR/run.py as it is (an older checkout, e.g. `git archive <commit>`).

Each run opens `--idle` sockets that never send a byte, then for `--seconds` runs `--clients`
client loops (POST a job, long-poll it with `?wait=5`, GET /api/health; each request with a 5 s
timeout; connected before the flood, as a running server's clients are), then closes the flood
and lists every job. Printed per run: requests answered and failed, latency
p50/p99/max, jobs accepted / done / error, flood sockets the server closed, and the log's lines:
all, WARNING, Traceback, "cannot accept". Expected for the guarded run: no failed request, no
job in error, no traceback, at most one "cannot accept" line per episode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
SERVER_FD_LIMIT = 1024
BANNER = re.compile(r"serving on (http://127\.0\.0\.1:(\d+))")
REQUEST_TIMEOUT = 5.0
QUESTION = "Percent of adults aged 18 years and older who have obesity"
RUNS = {
    "guarded": (),
    "baseline": (
        "--max-connections",
        "100000",
        "--idle-timeout",
        "3630",
        "--header-timeout",
        "3630",
    ),
}


@dataclass(slots=True)
class Tally:
    """What the client loops saw."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    seconds: float = 10.0

    def failed(self, what: str) -> None:
        """Count one failure of kind `what`."""
        self.failures[what] = self.failures.get(what, 0) + 1


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FD_LIMIT, SERVER_FD_LIMIT))


def _raise_own_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed <= hard or (soft < needed and hard == resource.RLIM_INFINITY):
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _open_idle(port: int, count: int) -> tuple[list[asyncio.StreamWriter], int]:
    """`count` connections that never send anything; also how many could not be opened."""
    opened: list[asyncio.StreamWriter] = []
    refused = 0

    async def one() -> None:
        nonlocal refused
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), REQUEST_TIMEOUT
            )
        except (OSError, TimeoutError):
            refused += 1
        else:
            opened.append(writer)

    for start in range(0, count, 100):
        await asyncio.gather(*(one() for _ in range(start, min(count, start + 100))))
    return opened, refused


async def _client(url: str, warm: asyncio.Barrier, go: asyncio.Event, tally: Tally) -> None:
    """Connect (before the flood), then loop over POST, long-poll and health until `go` ends."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(f"{url}/api/health") as response:
            await response.read()
        await warm.wait()
        await go.wait()
        until = time.monotonic() + tally.seconds
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                async with session.post(
                    f"{url}/api/global_mean", json={"question": QUESTION}
                ) as response:
                    body = await response.json()
                if response.status != 200:
                    tally.failed(f"POST {response.status}")
                    continue
                job_id = body["job_id"]
                tally.job_ids.append(job_id)
                async with session.get(f"{url}/api/get_results/{job_id}?wait=5") as response:
                    body = await response.json()
                if response.status != 200 or body["status"] != "done":
                    tally.failed(f"poll {response.status} {body.get('status')}")
                async with session.get(f"{url}/api/health") as response:
                    await response.read()
                if response.status != 200:
                    tally.failed(f"health {response.status}")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                tally.failed(type(exc).__name__)
                await asyncio.sleep(0.05)
                continue
            tally.latencies.append(time.monotonic() - started)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _jobs(url: str) -> dict[str, int]:
    """How many jobs the server lists in each status (after the flood has left)."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{url}/api/jobs") as response,
    ):
        listed = (await response.json())["data"]
    counts: dict[str, int] = {}
    for entry in listed:
        (status,) = entry.values()
        counts[status] = counts.get(status, 0) + 1
    return counts


async def _closed_by_server(writers: list[asyncio.StreamWriter]) -> int:
    """How many of the flood's sockets the server has closed (their read side is at EOF)."""
    await asyncio.sleep(0)
    closed = 0
    for writer in writers:
        transport = writer.transport
        if transport.is_closing():
            closed += 1
            continue
        protocol = transport.get_protocol()
        reader = getattr(protocol, "_stream_reader", None)
        if reader is not None and reader.at_eof():
            closed += 1
    return closed


async def run_one(
    name: str, extra: tuple[str, ...], args: argparse.Namespace, checkout: Path = REPO
) -> dict[str, object]:
    """One server, one flood, one measurement; the figures."""
    with tempfile.TemporaryDirectory(
        prefix=f"idle-flood-{name.split(maxsplit=1)[0]}-", dir=REPO / ".bench-tmp"
    ) as tmp:
        log = Path(tmp) / "server.log"
        paths = ("--results-dir", str(Path(tmp) / "results"), "--log-file", str(log))
        process = subprocess.Popen(  # noqa: S603, ASYNC220 - our run.py, started once
            [
                sys.executable,
                str(checkout / "run.py"),
                "--port",
                "0",
                "--workers",
                "2",
                *paths,
                *extra,
            ],
            cwd=tmp,
            env={**os.environ, "PYTHONPATH": str(checkout)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_limit_fds,  # noqa: PLW1509 - only setrlimit, before exec
        )
        try:
            banner = process.stdout.readline().decode() if process.stdout else ""
            match = BANNER.search(banner)
            if not match:
                raise RuntimeError(f"run.py did not start: {banner!r}")
            url, port = match.group(1), int(match.group(2))
            # The clients connect first (keep-alive), as clients of a running server would.
            tally = Tally(seconds=args.seconds)
            warm, go = asyncio.Barrier(args.clients + 1), asyncio.Event()
            clients = [
                asyncio.ensure_future(_client(url, warm, go, tally)) for _ in range(args.clients)
            ]
            await warm.wait()
            flood, not_opened = await _open_idle(port, args.idle)
            go.set()
            await asyncio.gather(*clients)
            closed = await _closed_by_server(flood)
            for writer in flood:  # then the jobs are listed, whether the server recovered or not
                writer.close()
            jobs = await _jobs(url)
            process.send_signal(signal.SIGTERM)
            status = process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        text = log.read_text(errors="replace")
        lines = text.splitlines()
        return {
            "run": name,
            "server options": " ".join(extra) or "(defaults)",
            "flood sockets opened": len(flood),
            "flood sockets not opened": not_opened,
            "flood sockets closed by the server": closed,
            "client rounds answered": len(tally.latencies),
            "client failures": dict(sorted(tally.failures.items())),
            "round p50 ms": round(_percentile(tally.latencies, 0.50) * 1000, 1),
            "round p99 ms": round(_percentile(tally.latencies, 0.99) * 1000, 1),
            "round max ms": round(max(tally.latencies, default=float("nan")) * 1000, 1),
            "jobs accepted": len(tally.job_ids),
            "jobs by status": jobs,
            "exit status": status,
            "log lines": len(lines),
            "log WARNING lines": sum(" WARNING " in line for line in lines),
            "log Traceback lines": text.count("Traceback"),
            "log 'cannot accept' lines": text.count("cannot accept connections"),
            "log 'accepting again' lines": [
                line.split(": ", 1)[1] for line in lines if "accepting connections again" in line
            ],
            "log 'Too many open files' lines": text.count("Too many open files"),
            "log tracebacks by exception (top 3)": _tracebacks(lines),
        }


def _tracebacks(lines: list[str]) -> dict[str, int]:
    """Each traceback as its log message and exception, counted (the three most frequent)."""
    counts: dict[str, int] = {}
    message = ""
    inside = False
    for previous, line in zip(["", *lines], lines, strict=False):
        if line.startswith("Traceback"):
            inside, message = True, message or previous.split(": ", 1)[-1][:100]
        elif inside and line and not line[0].isspace() and not line.startswith("During"):
            if line.startswith(("The above", "Traceback")):
                continue
            key = f"{message} / {line[:100]}"
            counts[key] = counts.get(key, 0) + 1
            inside, message = False, ""
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:3])


def main(argv: list[str] | None = None) -> int:
    """Both runs (or `--only` one), each printed as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.idle_flood", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--idle", type=int, default=1100, help="idle sockets to open")
    parser.add_argument("--clients", type=int, default=4, help="client loops")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--only", choices=sorted(RUNS), help="one of the two runs")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="also run DIR/run.py with its own defaults (an older checkout, e.g. from "
        "`git archive`), with the same flood",
    )
    args = parser.parse_args(argv)
    _raise_own_fd_limit(args.idle + 512)
    (REPO / ".bench-tmp").mkdir(exist_ok=True)
    for name, extra in RUNS.items():
        if args.only and name != args.only:
            continue
        figures = asyncio.run(run_one(name, extra, args))
        print(json.dumps(figures, indent=2))
        sys.stdout.flush()
    if args.before is not None:
        figures = asyncio.run(run_one(f"before ({args.before})", (), args, args.before.resolve()))
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
