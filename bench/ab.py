"""A/B: two builds of the server, up side by side, measured in alternating short rounds.

This machine's speed drifts by tens of percent within minutes, so one run of A followed by one
of B says little about a change worth 10%. Here both servers run at once (the idle one costs
nothing) and take turns, ABBA..., for `--rounds` rounds of `--jobs` jobs at C=`--clients` with
1 ms polling; each round's B/A ratio is taken right after its A (or before), and the medians of
those ratios are the answer: jobs/s, server CPU per job (less noisy), the machine's CPU per job
but the load generator's (the server's, plus kernel threads': a build that leaves its files'
writeback to the kernel, as `os.sync` does, spends less of its own CPU but no less in all;
anything else running counts too, so run it on a quiet machine) and p99.

A and B are command lines that accept `run.py`'s options, for instance the code as committed
against your working tree:

    git worktree add /tmp/lestats-base HEAD
    python -m bench.ab --a "python /tmp/lestats-base/run.py" --b "python run.py"
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench import bench_http, loadgen, option, parse_plan
from bench.servers import ServerProcess, scratch_dir

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

DEFAULT_COMMAND = f"{sys.executable} run.py"


@dataclass(frozen=True, slots=True)
class AbPlan:
    """Compare two server command lines in alternating rounds at the same load."""

    a: str = option(DEFAULT_COMMAND, "command line of A (run.py's options are appended)")
    b: str = option(DEFAULT_COMMAND, "command line of B")
    rounds: int = option(10, "rounds (each measures A and B once)")
    jobs: int = option(2000, "jobs per server per round")
    clients: int = option(32, "concurrent clients")
    warmup: int = option(500, "jobs per server first")
    results_in: str = option("", "directory for both results directories (default: scratch)")
    time_limit: float = option(30.0, "seconds per measurement at most")


@dataclass(frozen=True, slots=True)
class Round:
    """One server's figures in one round."""

    jobs: int
    jobs_per_s: float
    cpu_per_job: float
    machine_cpu_per_job: float
    """The whole machine's CPU but the load generator's: the server's, and the kernel threads'
    that write its files back (an `fsync` does that work in the caller, `os.sync` in them)."""
    p99: float


def server(name: str, command: str, workdir: Path, results_root: Path) -> ServerProcess:
    """`command` with run.py's options for a free port, a log and results of its own."""
    results = results_root / f"{name}-results"
    argv = [
        *shlex.split(command),
        "--port",
        "0",
        "--results-dir",
        str(results),
        "--log-file",
        str(workdir / f"{name}.log"),
    ]
    return ServerProcess(name, argv, workdir)


async def measure(target: ServerProcess, plan: AbPlan) -> Round:
    """One closed-loop run against `target`, with the server's CPU time meanwhile."""
    run = loadgen.closed_loop(target.url, plan.clients, plan.jobs, time_limit=plan.time_limit)
    figures = await bench_http.measure(target, run)
    if figures.error_count:
        raise RuntimeError(f"{target.name}: errors {figures.errors}")
    machine = (figures.machine_cpu or 0.0) / figures.jobs
    return Round(
        figures.jobs,
        figures.jobs_per_s,
        figures.server_cpu_per_job,
        machine,
        figures.latency(0.99),
    )


async def compare(plan: AbPlan) -> str:
    """Run the rounds; the report."""
    with scratch_dir("ab-") as workdir, _results_root(plan.results_in, workdir) as results:
        a = server("A", plan.a, workdir, results)
        b = server("B", plan.b, workdir, results)
        async with a, b:
            for target in (a, b):
                await loadgen.closed_loop(target.url, 8, plan.warmup, time_limit=plan.time_limit)
            rounds: list[tuple[Round, Round]] = []
            for number in range(plan.rounds):
                first, second = (a, b) if number % 2 == 0 else (b, a)
                one, two = await measure(first, plan), await measure(second, plan)
                pair = (one, two) if first is a else (two, one)
                rounds.append(pair)
                print(f"  round {number + 1}: {line(pair)}", flush=True)
    return report(plan, rounds)


@contextlib.contextmanager
def _results_root(results_in: str, workdir: Path) -> Iterator[Path]:
    """Where both servers' results go: a fresh directory in `--results-in`, else `workdir`.

    The fresh directory is removed afterwards: a run leaves ~1 GB there, which on tmpfs (as
    `--results-in /dev/shm/...` is meant to be) would otherwise stay in RAM.
    """
    if not results_in:
        yield workdir
        return
    Path(results_in).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ab-", dir=results_in))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def line(pair: tuple[Round, Round]) -> str:
    """One round: both servers' figures and B/A."""
    a, b = pair
    return (
        f"A {a.jobs_per_s:6.0f} jobs/s {a.cpu_per_job * 1e6:5.0f} us/job  "
        f"B {b.jobs_per_s:6.0f} jobs/s {b.cpu_per_job * 1e6:5.0f} us/job  "
        f"B/A {b.jobs_per_s / a.jobs_per_s:5.2f}"
    )


def report(plan: AbPlan, rounds: Sequence[tuple[Round, Round]]) -> str:
    """The medians over the rounds, and how many rounds B won."""

    def median_ratio(field: str) -> float:
        return statistics.median(getattr(b, field) / getattr(a, field) for a, b in rounds)

    def median(index: int, field: str) -> float:
        return statistics.median(getattr(pair[index], field) for pair in rounds)

    faster = sum(b.jobs_per_s > a.jobs_per_s for a, b in rounds)
    rows = [
        ("jobs/s", "jobs_per_s", 1.0, "", f" (B faster in {faster} rounds)"),
        ("CPU per job", "cpu_per_job", 1e6, " us", ""),
        ("machine CPU", "machine_cpu_per_job", 1e6, " us", " (all but the load generator)"),
        ("p99", "p99", 1e3, " ms", ""),
    ]
    lines = [
        f"A: {plan.a}",
        f"B: {plan.b}",
        f"{len(rounds)} rounds of {plan.jobs} jobs at C={plan.clients}, 1 ms polling (medians):",
    ]
    for label, field, scale, unit, extra in rows:
        lines.append(
            f"  {label:<12} A {median(0, field) * scale:7.1f}{unit}  "
            f"B {median(1, field) * scale:7.1f}{unit}  B/A {median_ratio(field):.3f}{extra}"
        )
    lines.append("all rounds together (total CPU / total jobs: what work done now and then costs):")
    for label, field in (("CPU per job", "cpu_per_job"), ("machine CPU", "machine_cpu_per_job")):
        a_mean, b_mean = (overall(rounds, index, field) for index in (0, 1))
        lines.append(
            f"  {label:<12} A {a_mean * 1e6:7.1f} us  B {b_mean * 1e6:7.1f} us  "
            f"B/A {b_mean / a_mean:.3f}"
        )
    return "\n".join(lines)


def overall(rounds: Sequence[tuple[Round, Round]], index: int, field: str) -> float:
    """One server's `field` per job over every round: a compaction's cost spread over its jobs.

    The medians of per-round ratios hide work done every few rounds (a round with it is an
    outlier); this average counts it once per job, as a long run would.
    """
    jobs = sum(pair[index].jobs for pair in rounds)
    return sum(getattr(pair[index], field) * pair[index].jobs for pair in rounds) / jobs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print it."""
    plan = parse_plan(AbPlan, argv, prog="python -m bench.ab")
    print(asyncio.run(compare(plan)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
