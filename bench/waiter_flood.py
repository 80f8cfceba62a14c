"""Waiter flood: 4,096 long-polls held open while other clients use the server, then SIGTERM.

`python -m bench.waiter_flood` starts run.py through `tests/gated_run.py` (run.py whose jobs wait
for a gate file), so that job 1 stays running. It measures rounds of (GET /api/health, POST a job,
plain GET /api/get_results/job_id_1) from `--clients` loops twice in the same run: first with no
long-poll (the baseline), then with `--waiters` `?wait=30` long-polls on job 1 held open. Then it
checks that one more long-poll is refused with 503 naming the waiter bound, sends SIGTERM, opens
the gate, and counts the waiters' answers (expected: every one 200 `done`) and the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
GATED_RUN_PY = REPO / "tests" / "gated_run.py"
QUESTION = "Percent of adults aged 18 years and older who have obesity"
REQUEST_TIMEOUT = 10.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _rounds(url: str, clients: int, rounds: int) -> dict[str, object]:
    """`clients` loops of `rounds` (health, POST, plain poll); statuses and latencies (ms)."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def loop(session: aiohttp.ClientSession) -> None:
        for _ in range(rounds):
            for method, path, body in (
                ("GET", "/api/health", None),
                ("POST", "/api/best5", {"question": QUESTION}),
                ("GET", "/api/get_results/job_id_1", None),
            ):
                started = time.monotonic()
                async with session.request(method, url + path, json=body) as response:
                    await response.read()
                latencies.append((time.monotonic() - started) * 1000)
                key = f"{method} {path.split('/')[2]} {response.status}"
                statuses[key] = statuses.get(key, 0) + 1

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(loop(session) for _ in range(clients)))
    return {
        "requests": len(latencies),
        "statuses": dict(sorted(statuses.items())),
        "p50 ms": round(_percentile(latencies, 0.5), 2),
        "p99 ms": round(_percentile(latencies, 0.99), 2),
        "max ms": round(max(latencies, default=float("nan")), 2),
    }


async def _hold(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/get_results/job_id_1?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return reader, writer


async def _answer(reader: asyncio.StreamReader) -> str:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = json.loads(await reader.readexactly(length))
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return type(exc).__name__
    return f"{head.split()[1].decode()} {body.get('status')}"


async def _all_waiting(log: Path, count: int) -> None:
    """Wait until the server has logged the entry of `count` long-polls (the log lags 50 ms)."""
    entry = "-> GET /api/get_results/job_id_1?wait=30 "
    deadline = time.monotonic() + 60
    while (await asyncio.to_thread(log.read_text, errors="replace")).count(entry) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not take {count} long-polls within 60 s")
        await asyncio.sleep(0.1)


async def _one_more(url: str) -> str:
    """The answer to one more long-poll, with the bound full."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{url}/api/get_results/job_id_1?wait=1") as response,
    ):
        body = await response.json()
    return f"{response.status} {body} (Retry-After {response.headers.get('Retry-After')})"


async def run(args: argparse.Namespace) -> dict[str, object]:
    """The whole scenario; the figures."""
    with tempfile.TemporaryDirectory(prefix="waiter-flood-") as tmp:
        gate = Path(tmp) / "gate"
        options = ("--port", "0", "--workers", "1", "--results-dir", str(Path(tmp) / "r"))
        process = subprocess.Popen(  # noqa: S603, ASYNC220 - our run.py, started once
            [sys.executable, str(GATED_RUN_PY), *options, "--log-file", str(Path(tmp) / "log")],
            cwd=tmp,
            env={**os.environ, "LESTATS_TEST_GATE": str(gate)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        try:
            banner = process.stdout.readline().decode() if process.stdout else ""
            url = banner.split("serving on ")[1].split()[0]
            port = int(url.rsplit(":", 1)[1])
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(f"{url}/api/best5", json={"question": QUESTION}) as response,
            ):
                assert (await response.json())["job_id"] == "job_id_1"  # noqa: S101
            baseline = await _rounds(url, args.clients, args.rounds)
            held = await asyncio.gather(*(_hold(port) for _ in range(args.waiters)))
            await _all_waiting(Path(tmp) / "log", args.waiters)
            refusal = await _one_more(url)
            loaded = await _rounds(url, args.clients, args.rounds)
            process.send_signal(signal.SIGTERM)
            during_drain = await _rounds(url, 1, 3)
            gate.touch()
            answers: dict[str, int] = {}
            for answer in await asyncio.gather(*(_answer(reader) for reader, _ in held)):
                answers[answer] = answers.get(answer, 0) + 1
            for _, writer in held:
                writer.close()
            status = process.wait(120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return {
        "waiters held": args.waiters,
        f"{args.clients} clients, no waiter (baseline)": baseline,
        f"{args.clients} clients, {args.waiters} waiters held": loaded,
        "one more waiter": refusal,
        "after SIGTERM (draining)": during_drain,
        "waiters' answers after the gate opened": answers,
        "exit status": status,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and print its figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.waiter_flood", description=__doc__)
    parser.add_argument("--waiters", type=int, default=4096, help="long-polls to hold")
    parser.add_argument("--clients", type=int, default=8, help="client loops")
    parser.add_argument("--rounds", type=int, default=50, help="rounds per client loop")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.waiters + 512
    if soft < needed and (hard == resource.RLIM_INFINITY or needed <= hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
