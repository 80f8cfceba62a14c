"""An asyncio load generator for the job API of spec §4, over loopback only.

Three shapes of load, each bounded in count and in time:

- `closed_loop`: C clients, each POSTs a random (seeded) job and waits for its result, either by
  polling `GET /api/get_results/<id>` (first poll at once, then every `poll_interval`) or by
  `?wait=` long-polls; then the next job. The figures are the service's throughput and its
  end-to-end latency (POST start to `done` seen).
- `burst`: POST N jobs as fast as `concurrency` connections allow, then collect every result.
- `flood`: like `burst`, but 503 answers are expected and counted (each must carry
  `Retry-After`), and every accepted job must end `done`.

`longpoll_latency` times `GET ?wait=` right after the POST against a plain `GET` of the same job
once done, and notes when each long-poll answer arrived (`time.monotonic_ns`): against the
moment the server finished the job (`bench.stamped_server`), that is how late the answer came.

All clients share one `aiohttp.ClientSession` whose connector has no connection limit. Answers
are checked for their `status` only: a result's data is not decoded (that is the tests' job, and
decoding the large `mean_by_category` results would make the client, not the server, the cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import aiohttp

from lestats.data.statistics import COURSE_STATISTICS as ENDPOINTS
from lestats.data.statistics import default_registry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence

    from bench.servers import CpuUse

    Step = Callable[[str, bytes, float], Awaitable[None]]
    """What a client does with one job: `step(endpoint, body, began)`, `began` its start time."""
    Poster = Callable[[aiohttp.ClientSession, str, str, bytes, float], Awaitable[str | None]]
    """POST one job, counted: `post(session, base, endpoint, body, began)`; its id if accepted."""

STATE_ENDPOINTS = frozenset(s.name for s in default_registry().course_statistics() if s.needs_state)
"""The endpoints whose body carries a `state`."""

WAIT_SECONDS = 5
"""The `?wait=` of a long-poll."""

JOB_TIMEOUT = 30.0
"""A job not done this long after its POST counts as an error (`job timeout`)."""

REQUEST_TIMEOUT = WAIT_SECONDS + 15.0
"""Upper bound on any one HTTP request, long-polls included."""

ERROR_PAUSE = 0.01
"""Pause of a client after a failed request, so a dead server cannot make a client spin."""

_GRACE = 10.0
_JSON_HEADERS = {"Content-Type": "application/json"}
_STATUS = re.compile(rb'\s*\{\s*"status"\s*:\s*"([a-z]+)"')
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_FAILURES = (aiohttp.ClientError, TimeoutError, ValueError)

Mode = Literal["poll", "wait"]


def require_loopback(base_url: str) -> str:
    """`base_url` without a trailing slash; ValueError unless it points at this machine."""
    host = urlsplit(base_url).hostname
    if host not in _LOOPBACK:
        raise ValueError(f"the load generator only talks to loopback, not {host!r}")
    return base_url.rstrip("/")


def new_session() -> aiohttp.ClientSession:
    """A client session for any number of concurrent clients (one connection each)."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


@contextlib.asynccontextmanager
async def session_scope(
    session: aiohttp.ClientSession | None,
) -> AsyncIterator[aiohttp.ClientSession]:
    """`session` itself, or else a fresh one from `new_session` for the block."""
    if session is not None:
        yield session
        return
    async with new_session() as fresh:
        yield fresh


@contextlib.asynccontextmanager
async def _client_scope(
    base_url: str, session: aiohttp.ClientSession | None, workload: Workload | None
) -> AsyncIterator[tuple[str, aiohttp.ClientSession, Workload]]:
    """The checked base URL, a session (`session` or a fresh one) and what to ask.

    What to ask is `workload`, or else everything the server lists (see `discover`).
    """
    base = require_loopback(base_url)
    async with session_scope(session) as s:
        yield base, s, workload if workload is not None else await discover(base, s)


@dataclass(frozen=True, slots=True)
class Workload:
    """What the clients ask: endpoints, questions and states to draw jobs from."""

    endpoints: tuple[str, ...]
    questions: tuple[str, ...]
    states: tuple[str, ...]

    def pick(self, rng: random.Random) -> tuple[str, bytes]:
        """A random endpoint and its JSON body."""
        endpoint = rng.choice(self.endpoints)
        body = {"question": rng.choice(self.questions)}
        if endpoint in STATE_ENDPOINTS:
            body["state"] = rng.choice(self.states)
        return endpoint, json.dumps(body).encode()


BARE_WORKLOAD = Workload(
    endpoints=("best5",),
    questions=("Percent of adults aged 18 years and older who have obesity",),
    states=(),
)
"""The bare server's only job: `best5` with a real question in the body."""


async def discover(base_url: str, session: aiohttp.ClientSession | None = None) -> Workload:
    """All nine endpoints with the questions and states the server itself lists."""
    base = require_loopback(base_url)
    async with session_scope(session) as s:
        async with s.get(f"{base}/api/questions") as resp:
            resp.raise_for_status()
            questions = (await resp.json())["data"]
        async with s.get(f"{base}/api/states") as resp:
            resp.raise_for_status()
            states = (await resp.json())["data"]
    return Workload(
        endpoints=ENDPOINTS,
        questions=tuple(questions["best_is_min"]) + tuple(questions["best_is_max"]),
        states=tuple(states),
    )


def result_status(raw: bytes) -> str:
    """The `status` of a get_results answer, read from its first bytes when it leads."""
    found = _STATUS.match(raw)
    if found:
        return found.group(1).decode()
    doc = json.loads(raw)
    if isinstance(doc, dict) and isinstance(doc.get("status"), str):
        return doc["status"]
    raise ValueError("answer without a status")


@dataclass(slots=True)
class Tally:
    """Live counts of a run; a caller may pass one in to watch progress."""

    posts: int = 0
    accepted: int = 0
    polls: int = 0
    jobs: int = 0
    ids: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    post_latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def failed(self, exc: BaseException) -> None:
        """Count an exception by its type."""
        self.errors[type(exc).__name__] += 1


@dataclass(frozen=True, slots=True)
class Figures:
    """What one run measured. Latencies are in seconds, sorted."""

    name: str
    clients: int
    jobs: int
    """Jobs seen `done`."""
    posts: int
    """POSTs sent."""
    accepted: int
    """POSTs answered with a job id."""
    polls: int
    """`get_results` requests sent."""
    errors: dict[str, int]
    """Failures by kind: `POST 503`, `GET 404`, `job error`, `job timeout`, exception names."""
    distinct_ids: int
    elapsed: float
    post_elapsed: float
    latencies: tuple[float, ...] = field(repr=False)
    latency_kind: Literal["job", "post"] = "job"
    """`job`: POST start to `done` seen; `post`: the POST round trip alone (burst)."""
    peak_rss_kb: int | None = None
    """The server's peak RSS during the run, when the caller measured it."""
    server_cpu: float | None = None
    """CPU seconds the server spent during the run, when the caller measured it."""
    client_cpu: float | None = None
    """CPU seconds the load generator spent during the run."""
    others_busy: float | None = None
    """Fraction of all CPUs that other processes kept busy during the run (noise)."""
    machine_cpu: float | None = None
    """CPU seconds the whole machine spent during the run, but the load generator's."""

    @property
    def error_count(self) -> int:
        """All failures."""
        return sum(self.errors.values())

    @property
    def jobs_per_s(self) -> float:
        """Jobs done per second of the run."""
        return self.jobs / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def posts_per_s(self) -> float:
        """POSTs per second of the posting phase (the whole run for a closed loop)."""
        return self.posts / self.post_elapsed if self.post_elapsed > 0 else 0.0

    @property
    def polls_per_job(self) -> float:
        """`get_results` requests per job done."""
        return self.polls / self.jobs if self.jobs else math.nan

    def latency(self, q: float) -> float:
        """The q-quantile of the latencies in seconds (nearest rank); NaN when none."""
        return percentile(self.latencies, q)

    @property
    def server_cpu_per_job(self) -> float:
        """Server CPU seconds per job done; NaN when not measured."""
        if self.server_cpu is None or not self.jobs:
            return math.nan
        return self.server_cpu / self.jobs

    def measured(self, cpu: CpuUse, *, peak_rss_kb: int | None) -> Figures:
        """The same figures with the server's peak RSS and the CPU `cpu` saw spent meanwhile."""
        return dataclasses.replace(
            self,
            peak_rss_kb=peak_rss_kb,
            server_cpu=cpu.server,
            client_cpu=cpu.client,
            others_busy=cpu.others,
            machine_cpu=cpu.machine,
        )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank q-quantile of already sorted values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = min(len(sorted_values), max(1, math.ceil(q * len(sorted_values))))
    return sorted_values[rank - 1]


def _figures(
    name: str,
    clients: int,
    tally: Tally,
    *,
    elapsed: float,
    post_elapsed: float,
    kind: Literal["job", "post"] = "job",
) -> Figures:
    latencies = tally.latencies if kind == "job" else tally.post_latencies
    return Figures(
        name=name,
        clients=clients,
        jobs=tally.jobs,
        posts=tally.posts,
        accepted=tally.accepted,
        polls=tally.polls,
        errors=dict(tally.errors),
        distinct_ids=len(tally.ids),
        elapsed=elapsed,
        post_elapsed=post_elapsed,
        latencies=tuple(sorted(latencies)),
        latency_kind=kind,
    )


async def _read(response: aiohttp.ClientResponse) -> bytes:
    return await response.read()


async def _send(
    session: aiohttp.ClientSession, base: str, endpoint: str, body: bytes
) -> tuple[int, bytes, str]:
    """POST one job: the answer's status, body and `Retry-After` header (empty when absent)."""
    async with session.post(f"{base}/api/{endpoint}", data=body, headers=_JSON_HEADERS) as resp:
        raw = await _read(resp)
        return resp.status, raw, resp.headers.get("Retry-After", "")


async def _get(
    session: aiohttp.ClientSession, url: str, params: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """GET `url`: the answer's status and body."""
    async with session.get(url, params=params) as resp:
        raw = await _read(resp)
        return resp.status, raw


async def _post(
    session: aiohttp.ClientSession,
    base: str,
    endpoint: str,
    body: bytes,
    began: float,
    *,
    tally: Tally,
) -> str | None:
    """POST one job begun at `began`: its id (the round trip timed), or None, counted why."""
    tally.posts += 1
    status, raw, _ = await _send(session, base, endpoint, body)
    if status != 200:
        tally.errors[f"POST {status}"] += 1
        return None
    job_id = json.loads(raw).get("job_id")
    if not isinstance(job_id, str):
        tally.errors["POST without job_id"] += 1
        return None
    tally.accepted += 1
    tally.ids.add(job_id)
    tally.post_latencies.append(time.perf_counter() - began)
    return job_id


async def _until_done(
    session: aiohttp.ClientSession,
    base: str,
    job_id: str,
    *,
    mode: Mode,
    poll_interval: float,
    deadline: float,
    tally: Tally,
) -> bool:
    """Poll (or long-poll) until the job is done; False after counting why not."""
    url = f"{base}/api/get_results/{job_id}"
    if mode == "wait":
        url += f"?wait={WAIT_SECONDS}"
    while True:
        tally.polls += 1
        status, raw = await _get(session, url)
        if status != 200:
            tally.errors[f"GET {status}"] += 1
            return False
        state = result_status(raw)
        if state == "done":
            return True
        if state != "running":
            tally.errors[f"job {state}"] += 1
            return False
        if time.perf_counter() >= deadline:
            tally.errors["job timeout"] += 1
            return False
        if mode == "poll":
            await asyncio.sleep(poll_interval)


async def _run_bounded(coros: Iterable[object], seconds: float, tally: Tally) -> None:
    """Run client coroutines together; past `seconds`, cancel them and count it."""
    tasks = [asyncio.ensure_future(c) for c in coros]  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(seconds):
            await asyncio.gather(*tasks)
    except TimeoutError:
        tally.errors["run overran its time bound"] += 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run_clients(
    clients: int,
    jobs: int,
    workload: Workload,
    step: Step,
    *,
    seed: int,
    time_limit: float,
    slack: float,
    tally: Tally,
) -> float:
    """`clients` clients share `jobs` jobs drawn from `workload`; each does `step` on one at a time.

    A client stops when the jobs run out or `time_limit` seconds have passed since the start; a
    step that fails is counted by exception type and followed by a short pause. Past
    `time_limit + slack` seconds the clients are cancelled. Returns the start time.
    """
    tickets = iter(range(jobs))
    started = time.perf_counter()
    deadline = started + time_limit

    async def client(index: int) -> None:
        rng = random.Random(f"{seed}:{index}")
        for _ in tickets:
            if time.perf_counter() >= deadline:
                break
            endpoint, body = workload.pick(rng)
            try:
                await step(endpoint, body, time.perf_counter())
            except _FAILURES as exc:
                tally.failed(exc)
                await asyncio.sleep(ERROR_PAUSE)

    await _run_bounded((client(i) for i in range(clients)), time_limit + slack, tally)
    return started


async def closed_loop(
    base_url: str,
    clients: int,
    jobs: int,
    *,
    mode: Mode = "poll",
    poll_interval: float = 0.001,
    time_limit: float = 15.0,
    workload: Workload | None = None,
    seed: int = 1,
    job_timeout: float = JOB_TIMEOUT,
    session: aiohttp.ClientSession | None = None,
    name: str | None = None,
    tally: Tally | None = None,
) -> Figures:
    """`clients` clients share `jobs` jobs; each does POST, then waits for `done`, then the next.

    Stops after `jobs` jobs or once `time_limit` seconds have passed (a job under way finishes,
    within `job_timeout`).
    """
    if mode not in {"poll", "wait"}:
        raise ValueError(f"mode must be 'poll' or 'wait', not {mode!r}")
    counts = tally if tally is not None else Tally()
    async with _client_scope(base_url, session, workload) as (base, s, chosen):

        async def step(endpoint: str, body: bytes, began: float) -> None:
            job_id = await _post(s, base, endpoint, body, began, tally=counts)
            if job_id is None:
                await asyncio.sleep(ERROR_PAUSE)
                return
            done = await _until_done(
                s,
                base,
                job_id,
                mode=mode,
                poll_interval=poll_interval,
                deadline=began + job_timeout,
                tally=counts,
            )
            if done:
                counts.latencies.append(time.perf_counter() - began)
                counts.jobs += 1

        started = await _run_clients(
            clients,
            jobs,
            chosen,
            step,
            seed=seed,
            time_limit=time_limit,
            slack=job_timeout + _GRACE,
            tally=counts,
        )
        elapsed = time.perf_counter() - started
    label = name or f"{mode} C={clients}"
    return _figures(label, clients, counts, elapsed=elapsed, post_elapsed=elapsed)


async def _final_state(
    session: aiohttp.ClientSession, base: str, job_id: str, deadline: float, tally: Tally
) -> str:
    """Long-poll a job until it leaves `running` or `deadline` passes; its last status."""
    url = f"{base}/api/get_results/{job_id}"
    while True:
        wait = max(0.1, min(float(WAIT_SECONDS), deadline - time.perf_counter()))
        tally.polls += 1
        status, raw = await _get(session, url, {"wait": f"{wait:.3f}"})
        if status != 200:
            return f"GET {status}"
        state = result_status(raw)
        if state != "running" or time.perf_counter() >= deadline:
            return state


async def collect(
    session: aiohttp.ClientSession,
    base_url: str,
    ids: Sequence[str],
    *,
    concurrency: int,
    deadline: float,
    tally: Tally,
) -> Counter[str]:
    """Wait for every job in `ids` to finish (or `deadline`); how many ended in each status.

    `running` in the answer means still running at the deadline: a job that never finished.
    """
    base = require_loopback(base_url)
    finals: Counter[str] = Counter()
    queue = iter(ids)

    async def collector() -> None:
        for job_id in queue:
            try:
                state = await _final_state(session, base, job_id, deadline, tally)
            except _FAILURES as exc:
                state = type(exc).__name__
                await asyncio.sleep(ERROR_PAUSE)
            finals[state] += 1

    seconds = max(0.0, deadline - time.perf_counter()) + REQUEST_TIMEOUT + _GRACE
    await _run_bounded((collector() for _ in range(max(1, concurrency))), seconds, tally)
    return finals


@dataclass(frozen=True, slots=True)
class _Phases:
    """Timings and outcome of a post-everything-then-collect run."""

    post_elapsed: float
    """From the first POST to the last answer."""
    elapsed: float
    """From the first POST to the last result collected."""
    finals: Counter[str]
    """Accepted jobs by final status."""


async def _post_then_collect(
    base_url: str,
    n: int,
    concurrency: int,
    post: Poster,
    *,
    collectors: int,
    time_limit: float,
    workload: Workload | None,
    seed: int,
    session: aiohttp.ClientSession | None,
    tally: Tally,
) -> _Phases:
    """`post` `n` jobs from `concurrency` clients, then collect every accepted one.

    Both phases end within `time_limit` of the first POST (the collection by long-polls from
    `collectors` connections).
    """
    ids: list[str] = []
    async with _client_scope(base_url, session, workload) as (base, s, chosen):

        async def step(endpoint: str, body: bytes, began: float) -> None:
            job_id = await post(s, base, endpoint, body, began)
            if job_id is not None:
                ids.append(job_id)

        started = await _run_clients(
            concurrency,
            n,
            chosen,
            step,
            seed=seed,
            time_limit=time_limit,
            slack=_GRACE,
            tally=tally,
        )
        post_elapsed = time.perf_counter() - started
        finals = await collect(
            s,
            base,
            ids,
            concurrency=collectors,
            deadline=started + time_limit,
            tally=tally,
        )
        elapsed = time.perf_counter() - started
    return _Phases(post_elapsed, elapsed, finals)


async def burst(
    base_url: str,
    n: int,
    concurrency: int = 64,
    *,
    time_limit: float = 60.0,
    workload: Workload | None = None,
    seed: int = 1,
    session: aiohttp.ClientSession | None = None,
    name: str | None = None,
) -> Figures:
    """POST `n` jobs as fast as `concurrency` connections allow, then wait for all of them.

    jobs/s counts from the first POST to the last result; POST/s covers the posting phase; the
    latencies are the POST round trips. A job not done at the end counts as an error.
    """
    tally = Tally()
    phases = await _post_then_collect(
        base_url,
        n,
        concurrency,
        functools.partial(_post, tally=tally),
        collectors=concurrency,
        time_limit=time_limit,
        workload=workload,
        seed=seed,
        session=session,
        tally=tally,
    )
    finals = phases.finals
    tally.jobs = finals.pop("done", 0)
    for state, count in finals.items():
        tally.errors[f"job {state}" if state in {"error", "running"} else state] += count
    return _figures(
        name or f"burst N={n}",
        concurrency,
        tally,
        elapsed=phases.elapsed,
        post_elapsed=phases.post_elapsed,
        kind="post",
    )


@dataclass(frozen=True, slots=True)
class FloodFigures:
    """What a flood measured."""

    sent: int
    accepted: int
    rejected: int
    """503 answers."""
    retry_after_missing: int
    """503 answers without a positive integer `Retry-After` header."""
    other_statuses: dict[str, int]
    errors: dict[str, int]
    """Exceptions while posting, by type."""
    distinct_ids: int
    id_range: tuple[int, int] | None
    """Lowest and highest accepted job number."""
    post_elapsed: float
    collect_elapsed: float
    finals: dict[str, int]
    """Accepted jobs by final status (`done`, `error`, `running` = not finished, ...)."""
    post_latencies: tuple[float, ...] = field(repr=False)

    @property
    def ids_contiguous(self) -> bool:
        """Whether the accepted ids are exactly a run of consecutive numbers."""
        if self.id_range is None:
            return True
        low, high = self.id_range
        return high - low + 1 == self.distinct_ids == self.accepted

    @property
    def all_done(self) -> bool:
        """Whether every accepted job ended `done`."""
        return self.finals.get("done", 0) == self.accepted


def _job_number(job_id: str) -> int | None:
    digits = job_id.rpartition("_")[2]
    return int(digits) if digits.isdigit() else None


async def flood(
    base_url: str,
    n: int,
    concurrency: int = 256,
    *,
    time_limit: float = 300.0,
    workload: Workload | None = None,
    seed: int = 1,
    session: aiohttp.ClientSession | None = None,
) -> FloodFigures:
    """POST `n` jobs from `concurrency` connections without pause; 503s are counted, not retried.

    Then wait for every accepted job to finish, within `time_limit` of the first POST overall.
    """
    tally = Tally()
    statuses: Counter[str] = Counter()
    missing_retry = 0

    async def post(
        session: aiohttp.ClientSession, base: str, endpoint: str, body: bytes, began: float
    ) -> str | None:
        nonlocal missing_retry
        tally.posts += 1
        status, raw, retry_after = await _send(session, base, endpoint, body)
        job_id = json.loads(raw).get("job_id") if status == 200 else None
        tally.post_latencies.append(time.perf_counter() - began)
        statuses[str(status)] += 1
        if status == 503 and not (retry_after.isdigit() and int(retry_after) > 0):
            missing_retry += 1
        if not isinstance(job_id, str):
            return None
        tally.accepted += 1
        tally.ids.add(job_id)
        return job_id

    phases = await _post_then_collect(
        base_url,
        n,
        concurrency,
        post,
        collectors=min(concurrency, 64),
        time_limit=time_limit,
        workload=workload,
        seed=seed,
        session=session,
        tally=tally,
    )
    numbers = [k for k in (_job_number(i) for i in tally.ids) if k is not None]
    rejected = statuses.pop("503", 0)
    statuses.pop("200", None)
    return FloodFigures(
        sent=tally.posts,
        accepted=tally.accepted,
        rejected=rejected,
        retry_after_missing=missing_retry,
        other_statuses=dict(statuses),
        errors=dict(tally.errors),
        distinct_ids=len(tally.ids),
        id_range=(min(numbers), max(numbers)) if numbers else None,
        post_elapsed=phases.post_elapsed,
        collect_elapsed=phases.elapsed - phases.post_elapsed,
        finals=dict(phases.finals),
        post_latencies=tuple(sorted(tally.post_latencies)),
    )


@dataclass(frozen=True, slots=True)
class LongPollFigures:
    """Long-poll round trips next to plain GETs of the same jobs once done (seconds, sorted)."""

    clients: int
    waits: tuple[float, ...] = field(repr=False)
    """`GET ?wait=` sent right after the POST answered: round trip."""
    plains: tuple[float, ...] = field(repr=False)
    """A plain `GET` of the same job, done by then: round trip."""
    errors: dict[str, int]
    asked: dict[int, int] = field(default_factory=dict, repr=False)
    """Job number -> `time.monotonic_ns()` when its long-poll was sent."""
    answered: dict[int, int] = field(default_factory=dict, repr=False)
    """Job number -> `time.monotonic_ns()` when its long-poll answer (`done`) had arrived."""

    def excess(self, q: float) -> float:
        """The q-quantile of the long-poll round trip minus the median plain GET."""
        return percentile(self.waits, q) - percentile(self.plains, 0.5)


async def longpoll_latency(
    base_url: str,
    clients: int,
    samples: int,
    *,
    time_limit: float = 15.0,
    workload: Workload | None = None,
    seed: int = 7,
    session: aiohttp.ClientSession | None = None,
) -> LongPollFigures:
    """Each client: POST, at once `GET ?wait=5` (timed), then a plain GET of the job (timed)."""
    tally = Tally()
    waits: list[float] = []
    plains: list[float] = []
    asked: dict[int, int] = {}
    answered: dict[int, int] = {}
    async with _client_scope(base_url, session, workload) as (base, s, chosen):

        async def timed_get(url: str) -> tuple[float, str]:
            began = time.perf_counter()
            status, raw = await _get(s, url)
            took = time.perf_counter() - began
            return took, result_status(raw) if status == 200 else f"GET {status}"

        async def step(endpoint: str, body: bytes, began: float) -> None:
            job_id = await _post(s, base, endpoint, body, began, tally=tally)
            if job_id is None:
                await asyncio.sleep(ERROR_PAUSE)
                return
            url = f"{base}/api/get_results/{job_id}"
            sent = time.monotonic_ns()
            wait, state = await timed_get(f"{url}?wait={WAIT_SECONDS}")
            arrived = time.monotonic_ns()
            plain, again = await timed_get(url)
            if state != "done" or again != "done":
                tally.errors[f"long-poll {state}, then {again}"] += 1
                return
            waits.append(wait)
            plains.append(plain)
            number = _job_number(job_id)
            if number is not None:
                asked[number], answered[number] = sent, arrived

        await _run_clients(
            clients,
            samples,
            chosen,
            step,
            seed=seed,
            time_limit=time_limit,
            slack=REQUEST_TIMEOUT + _GRACE,
            tally=tally,
        )
    return LongPollFigures(
        clients=clients,
        waits=tuple(sorted(waits)),
        plains=tuple(sorted(plains)),
        errors=dict(tally.errors),
        asked=asked,
        answered=answered,
    )


def ms(seconds: float) -> str:
    """Seconds as milliseconds with two decimals; `-` for NaN (nothing measured)."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.2f}"


def _pct(part: float | None, whole: float) -> str:
    return "-" if part is None or whole <= 0 else f"{100 * part / whole:.0f}"


def format_table(rows: Sequence[Figures], ceilings: Mapping[int, float] | None = None) -> str:
    """A text table of `rows`; with `ceilings` (bare pairs/s by client count), a cost column.

    The cost of a job is the bare pair rate at the same C divided by our jobs/s: how many bare
    aiohttp POST+GET pairs one job costs. `srv us/job` is the server's CPU time per job,
    `cli %` the load generator's CPU use (100 = one core), `oth %` the share of all CPUs that
    other processes took meanwhile: the noise.
    """
    header = (
        f"{'scenario':<22} {'C':>4} {'jobs':>6} {'jobs/s':>7} {'POST/s':>7} "
        f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'GET/job':>7} "
        f"{'errors':>6} {'ids':>6} {'RSS MB':>6} {'srv us/job':>10} {'cli %':>5} {'oth %':>5} "
        f"{'cost':>5}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        ceiling = (ceilings or {}).get(row.clients)
        if row.name.startswith("bare"):
            cost = "=1"
        elif ceiling and row.jobs_per_s > 0:
            cost = f"{ceiling / row.jobs_per_s:.2f}"
        else:
            cost = "-"
        ids = f"{row.distinct_ids}" + ("" if row.distinct_ids == row.accepted else "!")
        rss = "-" if row.peak_rss_kb is None else f"{row.peak_rss_kb / 1024:.0f}"
        cpu_job = row.server_cpu_per_job
        srv = "-" if math.isnan(cpu_job) else f"{cpu_job * 1e6:.0f}"
        others = "-" if row.others_busy is None else f"{100 * row.others_busy:.0f}"
        name = row.name + (" *" if row.latency_kind == "post" else "")
        lines.append(
            f"{name:<22} {row.clients:>4} {row.jobs:>6} {row.jobs_per_s:>7.0f} "
            f"{row.posts_per_s:>7.0f} {ms(row.latency(0.5)):>7} {ms(row.latency(0.9)):>7} "
            f"{ms(row.latency(0.99)):>7} {ms(row.latency(1.0)):>7} "
            f"{row.polls_per_job:>7.2f} {row.error_count:>6} {ids:>6} {rss:>6} {srv:>10} "
            f"{_pct(row.client_cpu, row.elapsed):>5} {others:>5} {cost:>5}"
        )
    return "\n".join(lines)


def format_errors(rows: Iterable[Figures]) -> str:
    """One line per run that had failures, with their kinds; empty when none had any."""
    return "\n".join(
        f"  {row.name}: " + ", ".join(f"{kind} x{n}" for kind, n in sorted(row.errors.items()))
        for row in rows
        if row.errors
    )


def verdict(ok: bool) -> str:
    """How a figure fares against its goal."""
    return "PASS" if ok else "FAIL"


def format_failures(failures: Iterable[str]) -> str:
    """The closing block of a report that found the server misbehaving."""
    return "\nSERVER MISBEHAVIOUR:\n" + "\n".join(f"  {f}" for f in failures)


def exit_status(failures: Sequence[str]) -> int:
    """Print the failures, if any; 0 when there were none, else 1."""
    if failures:
        print(format_failures(failures))
    return 1 if failures else 0
