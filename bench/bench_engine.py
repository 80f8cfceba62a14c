"""Benchmark of the actor engine alone (no HTTP): jobs per second through `Engine`.

Usage: python -m bench.bench_engine [--jobs 5000] [--workers 1 2 4] [--tasks 32] [--quick]

On the demo dataset, for each worker count:
  (a) sync, pipelined: one thread submits every job (`submit` returns once the job is on disk),
      then waits for the last one and for nothing to be pending;
  (b) asyncio: `--tasks` concurrent tasks, each looping `submit_async` -> `result_async`, until
      `--jobs` jobs in all are done.
Next to them, in the same process launch, the round trips an engine job is built from:
  - a raw pykka `ask` to a trivial echo actor (asks/s);
  - a bare `concurrent.futures.Future` tell/reply to a trivial actor (the engine's own protocol);
  - and the disk work per job, in the same directory: an atomic result file written by the
    ResultStore (`ResultFiles.save`: write a temporary file, rename it), and a journal line
    made durable one at a time (`os.write` + `fdatasync`); the engine batches the syncs instead
    (group commit, done by its JournalCommitter actor), so it can beat this line's rate.
A job travels client -> Dispatcher -> ResultStore (numbered, journaled) -> Worker, and its id
comes back from the JournalCommitter after the group commit; the result goes Worker ->
ResultStore, which writes its file atomically. So the ratio to the bare round trip says how
close the engine is to the floor of its design.

Results go to a temporary directory inside the repository (the /tmp disk may be busy), removed at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import tempfile
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka

from lestats.actors.engine import Engine
from lestats.actors.jobs import JobStatus
from lestats.data.demo import iter_demo_lines
from lestats.data.loader import load_lines
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import COURSE_STATISTICS as ENDPOINTS
from lestats.data.statistics import default_registry
from lestats.stores import journal as records
from lestats.stores.journal import Journal
from lestats.stores.result_files import ResultFiles

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lestats.data.dataset import Dataset

REPO = Path(__file__).resolve().parent.parent
QUICK_JOBS = 500
BASELINE_TRIPS = 20_000
DISK_OPERATIONS = 1000


# --- baselines -----------------------------------------------------------------------------------


class Echo(pykka.ThreadingActor):
    """Answers a pykka `ask` with the message itself."""

    def on_receive(self, message: Any) -> Any:  # noqa: ANN401
        """Echo."""
        return message


@dataclass(frozen=True, slots=True)
class Ping:
    """A request in the engine's style: the actor settles `reply`."""

    reply: Future[None] = field(default_factory=Future)


class Replier(pykka.ThreadingActor):
    """Settles each Ping's future, as the engine's actors do."""

    def on_receive(self, message: Any) -> None:  # noqa: ANN401
        """Settle the reply."""
        message.reply.set_result(None)


def ask_rate(trips: int) -> float:
    """Sequential pykka `ask` round trips per second."""
    ref = Echo.start()
    try:
        for _ in range(200):
            ref.ask(1)
        began = time.perf_counter()
        for n in range(trips):
            ref.ask(n)
        return trips / (time.perf_counter() - began)
    finally:
        ref.stop()


def future_rate(trips: int) -> float:
    """Sequential tell + `Future.result()` round trips per second."""
    ref = Replier.start()
    try:
        for _ in range(200):
            ping = Ping()
            ref.tell(ping)
            ping.reply.result()
        began = time.perf_counter()
        for _ in range(trips):
            ping = Ping()
            ref.tell(ping)
            ping.reply.result()
        return trips / (time.perf_counter() - began)
    finally:
        ref.stop()


def save_rate(directory: Path, saves: int) -> float:
    """Atomic result files written per second (the ResultStore's work for each done job)."""
    directory.mkdir(parents=True, exist_ok=True)
    storage = ResultFiles(directory, 16 << 20)
    began = time.perf_counter()
    for job_id in range(1, saves + 1):
        storage.save(job_id, b'{"global_mean": 31.25}')
    return saves / (time.perf_counter() - began)


def commit_rate(directory: Path, commits: int) -> float:
    """Journal lines appended and made durable per second, one `fdatasync` each (no batching)."""
    journal = Journal(directory / "journal.jsonl")
    query = Query("global_mean", BEST_IS_MIN[0])
    try:
        began = time.perf_counter()
        for job_id in range(1, commits + 1):
            journal.append(records.submitted(job_id, query))
            journal.commit()
        return commits / (time.perf_counter() - began)
    finally:
        journal.close()


# --- the engine ----------------------------------------------------------------------------------


def job_mix(dataset: Dataset) -> list[tuple[str, str, str | None]]:
    """Every endpoint over every question, states taken in turn."""
    states = itertools.cycle(dataset.states)
    return [
        (endpoint, question, next(states) if default_registry()[endpoint].needs_state else None)
        for question in BEST_IS_MIN + BEST_IS_MAX
        for endpoint in ENDPOINTS
    ]


def run_sync(dataset: Dataset, workers: int, jobs: int, directory: Path) -> float:
    """(a) One thread submits `jobs` jobs, then waits for the last; seconds taken."""
    mix = itertools.cycle(job_mix(dataset))
    with Engine(dataset, workers=workers, results_dir=directory, max_pending=jobs + 1) as engine:
        began = time.perf_counter()
        last = ""
        for _ in range(jobs):
            last = engine.submit(*next(mix))
        engine.result(last, timeout=120)
        while engine.num_jobs():
            time.sleep(0.0005)
        elapsed = time.perf_counter() - began
        if engine.jobs()[-1] != (last, JobStatus.DONE):
            raise RuntimeError(f"the run went wrong: {engine.jobs()[-1]}")
    return elapsed


def run_async(dataset: Dataset, workers: int, jobs: int, tasks: int, directory: Path) -> float:
    """(b) `tasks` tasks loop submit_async -> result_async until `jobs` are done; seconds."""
    mix = itertools.cycle(job_mix(dataset))
    with Engine(dataset, workers=workers, results_dir=directory, max_pending=jobs + 1) as engine:
        remaining = [jobs]

        async def client() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                job = await engine.submit_async(*next(mix))
                await engine.result_async(job, timeout=120)

        async def main() -> float:
            began = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(tasks)))
            return time.perf_counter() - began

        return asyncio.run(main())


# --- the report ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_engine", description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tasks", type=int, default=32, help="concurrent asyncio clients")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run ({QUICK_JOBS} jobs)")
    args = parser.parse_args(argv)
    jobs = QUICK_JOBS if args.quick else args.jobs
    trips = BASELINE_TRIPS // 10 if args.quick else BASELINE_TRIPS

    began = time.perf_counter()
    dataset = load_lines(iter_demo_lines(), source="demo")
    print(f"demo dataset: {dataset.rows} rows, loaded in {time.perf_counter() - began:.2f} s")

    (REPO / ".bench-tmp").mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-engine-", dir=REPO / ".bench-tmp"))
    rows = []
    try:
        asks = ask_rate(trips)
        futures = future_rate(trips)
        disk = DISK_OPERATIONS // 5 if args.quick else DISK_OPERATIONS
        saves = save_rate(scratch / "saves", disk)
        commits = commit_rate(scratch, disk)
        print(f"\nbaselines ({trips} sequential round trips, {disk} disk operations each)")
        print(f"  pykka ask to an echo actor          {asks:>10,.0f} /s")
        print(f"  Future tell/reply to an actor       {futures:>10,.0f} /s")
        print(f"  atomic result file (write, rename)  {saves:>10,.0f} /s")
        print(f"  journal line + fdatasync            {commits:>10,.0f} /s")
        for workers in args.workers:
            seconds = run_sync(dataset, workers, jobs, scratch / f"sync-{workers}")
            rows.append(("sync pipelined", workers, seconds))
            seconds = run_async(dataset, workers, jobs, args.tasks, scratch / f"async-{workers}")
            rows.append((f"asyncio x{args.tasks}", workers, seconds))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nengine, {jobs} jobs per run (demo data, no HTTP)")
    header = (
        f"  {'mode':<16}{'workers':>8}{'seconds':>9}{'jobs/s':>10}"
        f"{'/ Future RT':>13}{'/ pykka ask':>13}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for mode, workers, seconds in rows:
        rate = jobs / seconds
        print(
            f"  {mode:<16}{workers:>8}{seconds:>9.2f}{rate:>10,.0f}"
            f"{rate / futures:>13.3f}{rate / asks:>13.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
