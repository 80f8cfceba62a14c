"""CPU per job of the engine alone (no HTTP), split by thread, for several builds side by side.

`python -m bench.bench_engine_cpu --trees "/tmp/lestats-base ." [--rounds 6] [--jobs 6000]
[--results-in /dev/shm]`

Each tree is a checkout of the project (`git archive <commit> | tar -x -C DIR`); its `Engine`
runs in a subprocess of its own (`--one TREE`), on the demo dataset with 2 Workers, under the
course's job path as an HTTP client drives it but without the HTTP: 32 asyncio tasks each
submit a job (a random course statistic, question and state) and poll its outcome every
millisecond until it is done, then take the next. After a warm-up, the CPU time of each thread
(the event loop's `MainThread`, `ResultStore`, `Worker`s, `JournalCommitter`, `Dispatcher`) and
of the whole process is read from the thread CPU clocks and divided by the jobs; what threads
that ended meanwhile spent (a compaction's sync pool) is in the total only.

The machine's speed drifts, so the trees take turns, round after round, and the medians of
the rounds are the answer. Results go to `--results-in` (default: scratch under
`.bench-tmp/`, the repository's disk; `/dev/shm` takes the disk out of the figures).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench import option, parse_plan
from bench.servers import given_or_scratch_dir

if TYPE_CHECKING:
    from collections.abc import Sequence

CLIENTS = 32
WARMUP_JOBS = 2000
POLL_SECONDS = 0.001
# The course's nine statistics (spec section 3), spelt out rather than read from the registry:
# `lestats` may only be imported from the tree under test, and older trees lack that list.
STATE_STATISTICS = ("state_mean", "state_diff_from_mean", "state_mean_by_category")
STATISTICS = (
    "states_mean",
    "best5",
    "worst5",
    "global_mean",
    "diff_from_mean",
    "mean_by_category",
    *STATE_STATISTICS,
)


@dataclass(frozen=True, slots=True)
class EnginePlan:
    """Engine CPU per job, by thread, for each of `--trees`, in alternating rounds."""

    trees: str = option(".", "checkouts to compare, separated by spaces")
    rounds: int = option(6, "rounds (each runs every tree once)")
    jobs: int = option(6000, "jobs measured per tree per round")
    results_in: str = option("", "directory for the results directories (default: scratch)")
    one: str = option("", "internal: measure this tree once and print its figures as JSON")


def measure_one(tree: str, jobs: int, results: Path) -> dict[str, float]:
    """In this process: run `tree`'s Engine under the job path; CPU seconds per job by thread."""
    sys.path.insert(0, tree)
    from lestats.actors.engine import Engine  # noqa: PLC0415 - the tree under test
    from lestats.data.loader import load_demo_dataset  # noqa: PLC0415
    from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN  # noqa: PLC0415

    dataset = load_demo_dataset()
    rng = random.Random(1)
    states = list(dataset.states)
    questions = list(BEST_IS_MIN + BEST_IS_MAX)
    mix = [
        (kind, rng.choice(questions), rng.choice(states) if kind in STATE_STATISTICS else None)
        for kind in (rng.choice(STATISTICS) for _ in range(5000))
    ]
    gc.freeze()
    with Engine(dataset, workers=2, results_dir=results) as engine:

        async def run(count: int) -> None:
            left = [count]
            picks = iter(mix * (count // len(mix) + 1))

            async def client() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    job = await engine.submit_async(*next(picks))
                    while (await engine.outcome_async(job)).status.value == "running":  # noqa: ASYNC110 - a polling client
                        await asyncio.sleep(POLL_SECONDS)

            await asyncio.gather(*(client() for _ in range(CLIENTS)))

        async def timed() -> dict[str, float]:
            await run(WARMUP_JOBS)
            threads_before, process_before = thread_seconds(), time.process_time()
            await run(jobs)
            threads_after, process_after = thread_seconds(), time.process_time()
            spent: collections.Counter[str] = collections.Counter()
            for name, seconds in threads_after.items():
                spent[re.sub(r"-\d+$", "", name)] += seconds - threads_before.get(name, 0.0)
            spent["total"] = process_after - process_before
            return {name: seconds / jobs for name, seconds in spent.items()}

        return asyncio.run(timed())


def thread_seconds() -> dict[str, float]:
    """The CPU seconds of every live thread of this process, by thread name."""
    seconds = {}
    for thread in threading.enumerate():
        if thread.ident is not None:
            clock = time.pthread_getcpuclockid(thread.ident)
            seconds[thread.name] = time.clock_gettime(clock)
    return seconds


def compare(plan: EnginePlan, root: Path) -> str:
    """Run the rounds, each tree in a subprocess; the report."""
    trees = plan.trees.split()
    figures: dict[str, list[dict[str, float]]] = {tree: [] for tree in trees}
    for number in range(plan.rounds):
        for tree in trees:
            results = Path(tempfile.mkdtemp(prefix="engine-", dir=root))
            one_run = ["--one", tree, "--jobs", str(plan.jobs), "--results-in", str(results)]
            try:
                done = subprocess.run(  # noqa: S603 - our own interpreter and module
                    [sys.executable, "-m", "bench.bench_engine_cpu", *one_run],
                    check=True,
                    capture_output=True,
                    text=True,
                )
            finally:
                shutil.rmtree(results, ignore_errors=True)
            one = json.loads(done.stdout.strip().splitlines()[-1])
            figures[tree].append(one)
            print(f"  round {number + 1} {tree}: {line(one)}", flush=True)
    lines = [f"{plan.rounds} rounds of {plan.jobs} jobs, C={CLIENTS}, engine alone (medians):"]
    for tree, rounds in figures.items():
        names = sorted({name for one in rounds for name in one}, key=_order)
        medians = {name: statistics.median(one.get(name, 0.0) for one in rounds) for name in names}
        lines.append(f"  {tree}: {line(medians)}")
    return "\n".join(lines)


def _order(name: str) -> tuple[int, str]:
    return (0 if name == "total" else 1, name)


def line(figures: dict[str, float]) -> str:
    """`total=... us/job` then each thread's share, largest first."""
    threads = sorted(
        ((name, seconds) for name, seconds in figures.items() if name != "total"),
        key=lambda item: -item[1],
    )
    parts = [f"{name}={seconds * 1e6:.1f}" for name, seconds in threads if seconds >= 5e-8]
    return f"total={figures.get('total', 0.0) * 1e6:.1f} us/job  " + "  ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print."""
    plan = parse_plan(EnginePlan, argv, prog="python -m bench.bench_engine_cpu")
    if plan.one:
        print(json.dumps(measure_one(plan.one, plan.jobs, Path(plan.results_in))), flush=True)
        return 0
    with given_or_scratch_dir(plan.results_in, "engine-cpu-") as root:
        print(compare(plan, root), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
