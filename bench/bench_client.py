"""Which HTTP library the synchronous client (`lestats.client`) is built on: measured, not guessed.

Usage: python -m bench.bench_client [--pairs 3000] [--threads 4] [--quick]

Each candidate sends `--pairs` POST + GET pairs (a job's two requests, as the client sends them)
to `bench.bare_server`, an aiohttp server with canned answers, so that the server costs little
and the same for everyone. One thread first (requests per second, and this process's CPU time
per request: what a caller pays), then `--threads` threads sharing one client object (what a
thread-safe pool must do). The candidates:

- `http.client`: the standard library's connection, kept alive, one per thread (the floor);
- `urllib.request`: the standard library's opener, a new connection per request (no keep-alive);
- `urllib3`: a `PoolManager`, thread-safe, kept alive;
- `requests`: a `Session` (urllib3 underneath);
- `httpx`: a `Client` (its own h11 stack);
- `aiohttp thread`: an `aiohttp.ClientSession` on a private event loop in a thread, each call
  handed over with `run_coroutine_threadsafe` (aiohttp is already a dependency);
- `lestats.client`: the client built on the choice (`submit` then `result`), to see what its
  pool, long-poll and answer mapping add to the bare library.

A library that is not installed is reported as such (`pip install urllib3 requests httpx`).
Every response is read and its JSON decoded, as the client does.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from bench.servers import bare_server, scratch_dir
from lestats.client import Client

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    Pair = Callable[[], None]
    """One job's two requests (POST, then GET of its result), decoded."""

QUICK_PAIRS = 300
QUESTION = "Percent of adults aged 18 years and older who have obesity"
BODY = json.dumps({"question": QUESTION})
HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Row:
    """One candidate's figures."""

    name: str
    requests_per_s: float
    cpu_us_per_request: float
    threaded_requests_per_s: float


class Candidate:
    """A library set up against one server; `pair` is called from any number of threads."""

    name = ""
    module = ""

    def __init__(self, base: str) -> None:
        self.base = base

    def pair(self) -> None:
        """POST a job, GET its result, decode both."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class StdlibConnection(Candidate):
    """`http.client.HTTPConnection`, kept alive, one per thread."""

    name = "http.client"

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
            self._local.conn = conn
            self._all.append(conn)
        return conn

    def _call(self, method: str, path: str, body: str | None) -> Any:  # noqa: ANN401
        conn = self._conn()
        conn.request(method, path, body=body, headers=HEADERS if body else {})
        return json.loads(conn.getresponse().read())

    def pair(self) -> None:
        """POST then GET over this thread's connection."""
        job = self._call("POST", "/api/best5", BODY)["job_id"]
        self._call("GET", f"/api/get_results/{job}?wait=5", None)

    def close(self) -> None:
        """Close every thread's connection."""
        for conn in self._all:
            conn.close()


class StdlibOpener(Candidate):
    """`urllib.request`: a new connection for every request."""

    name = "urllib.request"

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, path: str, body: str | None) -> Any:  # noqa: ANN401
        data = body.encode() if body else None
        request = urllib.request.Request(self.base + path, data=data, headers=HEADERS)  # noqa: S310
        with self._opener.open(request, timeout=30) as response:
            return json.loads(response.read())

    def pair(self) -> None:
        """POST then GET, each on a fresh connection."""
        job = self._call("/api/best5", BODY)["job_id"]
        self._call(f"/api/get_results/{job}?wait=5", None)


class Urllib3Pool(Candidate):
    """`urllib3.PoolManager`."""

    name = "urllib3"
    module = "urllib3"

    def __init__(self, base: str) -> None:
        super().__init__(base)
        import urllib3  # noqa: PLC0415 - optional

        self._pool = urllib3.PoolManager(maxsize=16, retries=False)

    def pair(self) -> None:
        """POST then GET through the pool."""
        posted = self._pool.request("POST", self.base + "/api/best5", body=BODY, headers=HEADERS)
        job = json.loads(posted.data)["job_id"]
        got = self._pool.request("GET", f"{self.base}/api/get_results/{job}?wait=5")
        json.loads(got.data)

    def close(self) -> None:
        """Close the pool."""
        self._pool.clear()


class RequestsSession(Candidate):
    """`requests.Session`."""

    name = "requests"
    module = "requests"

    def __init__(self, base: str) -> None:
        super().__init__(base)
        import requests  # noqa: PLC0415 - optional
        import requests.adapters  # noqa: PLC0415

        self._session = requests.Session()
        self._session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
        self._session.mount("http://", adapter)

    def pair(self) -> None:
        """POST then GET through the session."""
        posted = self._session.post(self.base + "/api/best5", data=BODY, headers=HEADERS)
        job = posted.json()["job_id"]
        self._session.get(f"{self.base}/api/get_results/{job}?wait=5").json()

    def close(self) -> None:
        """Close the session."""
        self._session.close()


class HttpxClient(Candidate):
    """`httpx.Client`."""

    name = "httpx"
    module = "httpx"

    def __init__(self, base: str) -> None:
        super().__init__(base)
        import httpx  # noqa: PLC0415 - optional

        self._client = httpx.Client(trust_env=False, limits=httpx.Limits(max_connections=16))

    def pair(self) -> None:
        """POST then GET through the client."""
        posted = self._client.post(self.base + "/api/best5", content=BODY, headers=HEADERS)
        job = posted.json()["job_id"]
        self._client.get(f"{self.base}/api/get_results/{job}?wait=5").json()

    def close(self) -> None:
        """Close the client."""
        self._client.close()


class AiohttpThread(Candidate):
    """An aiohttp session on a private event loop in a thread; calls cross with a future."""

    name = "aiohttp thread"

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._session = self._run(self._open())

    async def _open(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16))

    def _run(self, coro: Any) -> Any:  # noqa: ANN401
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _pair(self) -> None:
        async with self._session.post(self.base + "/api/best5", data=BODY, headers=HEADERS) as r:
            job = (await r.json())["job_id"]
        async with self._session.get(f"{self.base}/api/get_results/{job}?wait=5") as r:
            await r.json()

    def pair(self) -> None:
        """Hand the pair to the loop thread and wait."""
        self._run(self._pair())

    def close(self) -> None:
        """Close the session and stop the loop."""
        self._run(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class LestatsClient(Candidate):
    """`lestats.client.Client` itself (its pool over `http.client`), as a program calls it."""

    name = "lestats.client"

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self._client = Client(base, retries=0)

    def pair(self) -> None:
        """submit, then result (one long-poll, answered at once by the bare server)."""
        self._client.result(self._client.submit("best5", QUESTION))

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


CANDIDATES: tuple[type[Candidate], ...] = (
    StdlibConnection,
    StdlibOpener,
    Urllib3Pool,
    RequestsSession,
    HttpxClient,
    AiohttpThread,
    LestatsClient,
)


def one_thread(pair: Pair, pairs: int) -> tuple[float, float]:
    """Requests per second and CPU microseconds per request, one thread."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(pairs):
        pair()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return 2 * pairs / wall, cpu / (2 * pairs) * 1e6


def threaded(pair: Pair, pairs: int, threads: int) -> float:
    """Requests per second with `threads` threads sharing the candidate."""
    share = pairs // threads

    def run() -> None:
        for _ in range(share):
            pair()

    wall = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(run) for _ in range(threads)]:
            future.result()
    return 2 * share * threads / (time.perf_counter() - wall)


def measure(kind: type[Candidate], base: str, pairs: int, threads: int, rounds: int) -> Row:
    """The medians of `rounds` runs of one candidate (after a warm-up)."""
    candidate = kind(base)
    try:
        for _ in range(min(pairs, 50)):
            candidate.pair()
        singles = [one_thread(candidate.pair, pairs) for _ in range(rounds)]
        multi = [threaded(candidate.pair, pairs, threads) for _ in range(rounds)]
    finally:
        candidate.close()
    return Row(
        kind.name,
        statistics.median(rate for rate, _ in singles),
        statistics.median(cpu for _, cpu in singles),
        statistics.median(multi),
    )


def table(rows: Sequence[Row], threads: int) -> str:
    """The figures, each beside its ratio to http.client's."""
    floor = rows[0]
    lines = [
        (
            f"{'library':<16}{'req/s':>9}{'vs floor':>10}{'client CPU us/req':>19}"
            f"{'vs floor':>10}{f'req/s {threads} threads':>20}"
        ),
    ]
    lines.extend(
        f"{row.name:<16}{row.requests_per_s:>9.0f}"
        f"{row.requests_per_s / floor.requests_per_s:>10.2f}"
        f"{row.cpu_us_per_request:>19.0f}"
        f"{row.cpu_us_per_request / floor.cpu_us_per_request:>10.2f}"
        f"{row.threaded_requests_per_s:>20.0f}"
        for row in rows
    )
    return "\n".join(lines)


async def serve_and_measure(pairs: int, threads: int, rounds: int) -> tuple[list[Row], list[str]]:
    """Start the bare server, measure every installed candidate against it."""
    rows: list[Row] = []
    missing: list[str] = []
    with scratch_dir("client-") as workdir:
        async with bare_server(workdir) as server:
            for kind in CANDIDATES:
                if kind.module and importlib.util.find_spec(kind.module) is None:
                    missing.append(kind.name)
                    continue
                rows.append(
                    await asyncio.to_thread(measure, kind, server.url, pairs, threads, rounds)
                )
                print(f"  measured {kind.name}", flush=True)
    return rows, missing


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_client", description=__doc__)
    parser.add_argument("--pairs", type=int, default=3000, help="POST+GET pairs per measurement")
    parser.add_argument("--threads", type=int, default=4, help="threads sharing one client")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per candidate")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run ({QUICK_PAIRS} pairs)")
    args = parser.parse_args(argv)
    pairs = QUICK_PAIRS if args.quick else args.pairs
    rounds = 1 if args.quick else args.rounds
    rows, missing = asyncio.run(serve_and_measure(pairs, args.threads, rounds))
    print(f"\n{pairs} POST+GET pairs against bench.bare_server, medians of {rounds} runs:")
    print(table(rows, args.threads))
    if missing:
        print(f"not installed, not measured: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
