"""`GET /metrics`: the engine and the HTTP layer in the Prometheus text format.

Nothing here runs on the job path. The ResultStore, the JournalCommitter and the middleware keep
plain counts (`lestats.metrics_stats`); a scrape reads them, in a thread so that the event loop
never waits, and the official client library (`prometheus-client`) writes the exposition from a
custom collector. What is served:

- `lestats_jobs_{accepted,done,failed}_total{statistic}`; `lestats_job_queue_seconds`,
  `lestats_job_run_seconds`, `lestats_job_end_to_end_seconds` histograms by statistic;
- `lestats_jobs_unfinished`, `lestats_longpoll_waiters`, `lestats_mailbox_depth{actor}`;
- `lestats_journal_commit_seconds` and `lestats_journal_commit_jobs` (group commit latency and
  batch size) histograms;
- `lestats_http_requests_total{method,route,status}`, `lestats_http_request_seconds{method,
  route}`, `lestats_http_refusals_total{reason}` (503s: shutting_down, overloaded, storage);
- `lestats_dataset_rows`, `lestats_dataset_rows_skipped`, `lestats_dataset_load_seconds`.

Several processes on one port (`run.py --processes N` arranges it by itself, in a temporary
directory, unless `LESTATS_METRICS_DIR` names one): give each the same `LESTATS_METRICS_DIR`.
Each process writes its numbers there (one JSON file per process, replaced atomically every
`SHARE_INTERVAL` seconds, at every scrape it answers and when it stops), and a scrape answered by
any of them adds up every process's file: counters and histograms and per-process gauges are
summed (a process that has ended counts with its counters and histograms only); the gauges that
describe shared state (unfinished jobs of a shared store, the dataset) take the maximum. This is the
library's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) done with our own counts: the library's
mode needs its metric objects updated on the job path, each update a lock and a memory-mapped
write. Another process's numbers are thus up to `SHARE_INTERVAL` seconds old.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pykka
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from lestats.http.keys import ENGINE
from lestats.metrics_stats import HTTP_STATS, HistogramValue, HttpStats

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator

    from lestats.actors.engine import Engine
    from lestats.metrics_stats import Buckets

DIRECTORY_VARIABLE = "LESTATS_METRICS_DIR"
"""Environment variable: the directory the processes of one server share their numbers in."""
SHARE_INTERVAL = 1.0
"""Seconds between two writes of a process's numbers to the shared directory."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["counter", "gauge", "histogram"]
Value = float | HistogramValue


@dataclass(slots=True)
class Family:
    """One metric: its kind, help, label names and a value per label values.

    `merge` says how the processes' values add up: `sum`, or `max` for a gauge of shared state.
    """

    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    values: dict[tuple[str, ...], Value] = field(default_factory=dict)
    merge: Literal["sum", "max"] = "sum"


Snapshot = dict[str, Family]
"""Every metric of one process (or of all of them, merged), by name."""

LOAD_SECONDS = web.AppKey("dataset_load_seconds", float)
"""How long the dataset took to load, when the command line measured it."""
SHARED_DIRECTORY = web.AppKey("metrics_directory", Path)


def install(
    app: web.Application, *, load_seconds: float | None = None, directory: Path | None = None
) -> None:
    """Serve `GET /metrics` from `app`, and count its requests.

    `directory` (default: `$LESTATS_METRICS_DIR`, if set) is shared with the server's other
    processes, whose numbers are then added to this one's.
    """
    app[HTTP_STATS] = HttpStats()
    if load_seconds is not None:
        app[LOAD_SECONDS] = load_seconds
    shared = directory or (Path(os.environ[DIRECTORY_VARIABLE]) if _shared_by_env() else None)
    if shared is not None:
        shared.mkdir(parents=True, exist_ok=True)
        app[SHARED_DIRECTORY] = shared
        app.cleanup_ctx.append(_share_periodically)
    app.router.add_get("/metrics", metrics)


def _shared_by_env() -> bool:
    return bool(os.environ.get(DIRECTORY_VARIABLE))


@contextlib.contextmanager
def shared_directory() -> Iterator[Path]:
    """The directory the processes of one server share (for `run.py --processes N`).

    `$LESTATS_METRICS_DIR` if set; else a fresh temporary one, set in the environment for the
    block (forked processes inherit it) and removed afterwards.
    """
    given = os.environ.get(DIRECTORY_VARIABLE)
    if given:
        yield Path(given)
        return
    made = Path(tempfile.mkdtemp(prefix="lestats-metrics-"))
    os.environ[DIRECTORY_VARIABLE] = str(made)
    try:
        yield made
    finally:
        os.environ.pop(DIRECTORY_VARIABLE, None)
        shutil.rmtree(made, ignore_errors=True)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: every metric, in the Prometheus text format (version 0.0.4)."""
    app = request.app
    http = http_snapshot(app[HTTP_STATS])  # read in the loop, which writes it
    text = await asyncio.to_thread(_render, app, http)
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})


def _render(app: web.Application, http: Snapshot) -> bytes:
    mine = {**engine_snapshot(app[ENGINE], app.get(LOAD_SECONDS)), **http}
    shared = app.get(SHARED_DIRECTORY)
    if shared is not None:
        write_share(shared, mine)
        mine = merge(read_shares(shared))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(mine))
    return generate_latest(registry)


# --- snapshots -------------------------------------------------------------------------------


def engine_snapshot(engine: Engine, load_seconds: float | None = None) -> Snapshot:
    """The engine's numbers now (blocking: asks the ResultStore how many jobs are unfinished)."""
    families: Snapshot = {}
    stats = engine.job_stats
    if stats is not None:
        for name, counts, what in (
            ("lestats_jobs_accepted", stats.accepted, "Jobs accepted (journaled), by statistic."),
            ("lestats_jobs_done", stats.done, "Jobs finished with a result, by statistic."),
            ("lestats_jobs_failed", stats.failed, "Jobs finished in error, by statistic."),
        ):
            families[name] = Family("counter", what, ("statistic",), _by_one(counts))
        for name, buckets, what in (
            ("lestats_job_queue_seconds", stats.queue, "From accepted to a Worker's start."),
            ("lestats_job_run_seconds", stats.run, "A Worker's computation of the job."),
            ("lestats_job_end_to_end_seconds", stats.end_to_end, "From accepted to recorded."),
        ):
            families[name] = Family("histogram", what, ("statistic",), _histograms(buckets))
        families["lestats_journal_commit_seconds"] = Family(
            "histogram",
            "Group commits: time to make a batch of accepted jobs durable (fdatasync).",
            values={(): stats.commit_seconds.snapshot()},
        )
        families["lestats_journal_commit_jobs"] = Family(
            "histogram",
            "Group commits: jobs made durable by one commit.",
            values={(): stats.commit_batch.snapshot()},
        )
    if engine.started:
        with contextlib.suppress(Exception):  # a store that cannot answer: no gauge this time
            families["lestats_jobs_unfinished"] = Family(
                "gauge",
                "Accepted jobs not yet finished (queued or running), as the store counts them.",
                values={(): float(engine.num_jobs())},
                merge="max",
            )
    families["lestats_longpoll_waiters"] = Family(
        "gauge", "Long-polls (?wait=) waiting for a job now.", values={(): float(engine.waiting)}
    )
    families["lestats_mailbox_depth"] = Family(
        "gauge", "Messages waiting in each actor's mailbox.", ("actor",), mailbox_depths()
    )
    dataset = engine.dataset
    families["lestats_dataset_rows"] = Family(
        "gauge",
        "Rows of the dataset that count in the statistics.",
        values={(): dataset.rows},
        merge="max",
    )
    families["lestats_dataset_rows_skipped"] = Family(
        "gauge",
        "Rows of the data file skipped at load (no numeric value, malformed).",
        values={(): dataset.rows_skipped},
        merge="max",
    )
    if load_seconds is not None:
        families["lestats_dataset_load_seconds"] = Family(
            "gauge", "How long loading the dataset took.", values={(): load_seconds}, merge="max"
        )
    return families


def mailbox_depths() -> dict[tuple[str, ...], Value]:
    """Each running actor's mailbox depth, as `Class-N` (N counting actors of that class)."""
    depths: dict[tuple[str, ...], Value] = {}
    seen: dict[str, int] = {}
    for ref in pykka.ActorRegistry.get_all():
        kind = ref.actor_class.__name__
        seen[kind] = seen.get(kind, 0) + 1
        inbox = ref.actor_inbox
        depths[(f"{kind}-{seen[kind]}",)] = (
            float(inbox.qsize()) if isinstance(inbox, queue.Queue) else 0.0
        )
    return depths


def http_snapshot(stats: HttpStats) -> Snapshot:
    """The middleware's numbers now (call it in the event loop, which writes them)."""
    return {
        "lestats_http_requests": Family(
            "counter",
            "HTTP requests answered, by method, route pattern and status.",
            ("method", "route", "status"),
            {
                (method, route, str(status)): float(count)
                for (method, route), route_stats in stats.routes.items()
                for status, count in route_stats.statuses.items()
            },
        ),
        "lestats_http_request_seconds": Family(
            "histogram",
            "HTTP request latency (the middleware's), by method and route pattern.",
            ("method", "route"),
            {key: route_stats.latency.snapshot() for key, route_stats in stats.routes.items()},
        ),
        "lestats_http_refusals": Family(
            "counter",
            "503 answers, by reason: shutting_down, overloaded, storage.",
            ("reason",),
            {(reason,): float(count) for reason, count in stats.refused.items()},
        ),
    }


def _by_one(counts: dict[str, int]) -> dict[tuple[str, ...], Value]:
    return {(name,): float(count) for name, count in dict(counts).items()}


def _histograms(buckets: dict[str, Buckets]) -> dict[tuple[str, ...], Value]:
    return {(name,): value.snapshot() for name, value in dict(buckets).items()}


# --- several processes -----------------------------------------------------------------------


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The processes' snapshots added up (or the maximum, for gauges of shared state)."""
    merged: Snapshot = {}
    for snapshot in snapshots:
        for name, family in snapshot.items():
            into = merged.setdefault(
                name, Family(family.kind, family.help, family.labels, {}, family.merge)
            )
            for key, value in family.values.items():
                known = into.values.get(key)
                if known is None:
                    into.values[key] = value
                elif isinstance(known, HistogramValue) and isinstance(value, HistogramValue):
                    into.values[key] = known + value
                elif isinstance(known, float | int) and isinstance(value, float | int):
                    into.values[key] = max(known, value) if family.merge == "max" else known + value
    return merged


def write_share(directory: Path, snapshot: Snapshot) -> None:
    """Write this process's snapshot to `directory/<pid>.json`, atomically."""
    document = {
        name: {
            "kind": family.kind,
            "help": family.help,
            "labels": family.labels,
            "merge": family.merge,
            "values": [[list(key), _encoded(value)] for key, value in family.values.items()],
        }
        for name, family in snapshot.items()
    }
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".share-", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(document, out)
    Path(temporary).replace(directory / f"{os.getpid()}.json")


def read_shares(directory: Path) -> Iterator[Snapshot]:
    """The snapshot of every process that wrote one in `directory`.

    A process that has ended keeps its counters and histograms (they are what it did; as in the
    library's multiprocess mode, clear the directory when the whole server restarts), not its
    gauges (they described it while it ran).
    """
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        pid = int(path.stem) if path.stem.isdigit() else 0
        alive = pid == os.getpid() or _alive(pid)
        yield {
            name: Family(
                entry["kind"],
                entry["help"],
                tuple(entry["labels"]),
                {tuple(key): _decoded(value) for key, value in entry["values"]},
                entry["merge"],
            )
            for name, entry in document.items()
            if alive or entry["kind"] != "gauge"
        }


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _encoded(value: Value) -> object:
    if isinstance(value, HistogramValue):
        return {"bounds": value.bounds, "counts": value.counts, "total": value.total}
    return value


def _decoded(value: object) -> Value:
    if isinstance(value, dict):
        return HistogramValue(tuple(value["bounds"]), tuple(value["counts"]), float(value["total"]))
    return float(value)  # type: ignore[arg-type]  # a number, as written


async def _share_periodically(app: web.Application) -> AsyncIterator[None]:
    """While the server runs, write this process's numbers every `SHARE_INTERVAL` seconds."""
    directory = app[SHARED_DIRECTORY]

    async def share() -> None:
        while True:
            await asyncio.sleep(SHARE_INTERVAL)
            http = http_snapshot(app[HTTP_STATS])
            mine = await asyncio.to_thread(engine_snapshot, app[ENGINE], app.get(LOAD_SECONDS))
            mine.update(http)
            await asyncio.to_thread(write_share, directory, mine)

    task = asyncio.create_task(share())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    http = http_snapshot(app[HTTP_STATS])
    final = await asyncio.to_thread(engine_snapshot, app[ENGINE], app.get(LOAD_SECONDS))
    final.update(http)
    await asyncio.to_thread(write_share, directory, final)  # what this process did, in full


# --- exposition ------------------------------------------------------------------------------


class SnapshotCollector(Collector):
    """Hands a snapshot to prometheus-client, which writes the text format."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """The snapshot's families, as the library's metric families."""
        for name, family in sorted(self._snapshot.items()):
            yield _family(name, family)


def _family(name: str, family: Family) -> Metric:
    labels = list(family.labels)
    if family.kind == "histogram":
        histogram = HistogramMetricFamily(name, family.help, labels=labels)
        for key, value in sorted(family.values.items()):
            if isinstance(value, HistogramValue):
                histogram.add_metric(list(key), _cumulative(value), value.total)
        return histogram
    made: CounterMetricFamily | GaugeMetricFamily
    if family.kind == "counter":
        made = CounterMetricFamily(name, family.help, labels=labels)
    else:
        made = GaugeMetricFamily(name, family.help, labels=labels)
    for key, value in sorted(family.values.items()):
        if not isinstance(value, HistogramValue):
            made.add_metric(list(key), value)
    return made


def _cumulative(value: HistogramValue) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*value.bounds, float("inf")), value.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return buckets
