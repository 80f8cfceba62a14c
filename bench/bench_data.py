"""Benchmark of the data layer: loading a file, and answering each of the nine statistics.

Usage: python bench/bench_data.py [--rows 18650 1000000] [--runs 3]

1. Loading. For each row count a demo file is generated once (cached in /tmp/lestats-bench/, keyed
   by rows, seed and the generator's source) and loaded in fresh subprocesses, so each peak RSS
   (`ru_maxrss`, read inside the child when it is done) belongs to one measurement:
   `load_dataset(path)` by each parser, the csv module's (`LESTATS_CSV_PARSER=csv`) and
   pyarrow's (the default where pyarrow is installed; its import counts in its time), next to
   the floor, `csv.DictReader` merely iterating the same file (and, for reference, a bare
   `csv.reader`).
2. Jobs. On the 18,650-row demo dataset, microseconds per call of `statistics.compute` for each
   endpoint, next to the naive reference of `tests/reference.py` scanning the same rows (parsed
   once, in memory), and the speedup. Both must give the same answer.

Goals (printed next to the figures): 1,000,000 rows load in <= 3 s and <= 400 MB peak RSS; every
endpoint <= 50 us per job on 18,650 rows.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import resource
import subprocess
import sys
import time
import timeit
from pathlib import Path
from typing import TYPE_CHECKING

from lestats.data import demo
from lestats.data.loader import PARSER_VARIABLE, load_dataset
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MIN
from lestats.data.statistics import COURSE_STATISTICS as ENDPOINTS
from lestats.data.statistics import compute, default_registry

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path("/tmp/lestats-bench")  # noqa: S108 - a cache that may be shared between reruns
QUESTION = BEST_IS_MIN[1]  # obesity
LOAD_GOAL_ROWS = 1_000_000
LOAD_GOAL_SECONDS = 3.0
LOAD_GOAL_MB = 400.0
JOB_GOAL_ROWS = demo.DEMO_ROWS
JOB_GOAL_US = 50.0
HAVE_PYARROW = importlib.util.find_spec("pyarrow") is not None


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (`ru_maxrss` is in KB on Linux)."""
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":  # bytes there
        kilobytes //= 1024
    return kilobytes / 1024


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def demo_file(rows: int, seed: int) -> Path:
    """The cached demo CSV for (rows, seed), generated if absent or if the generator changed.

    `write_demo_csv` runs in a subprocess: a child's `ru_maxrss` starts from its parent's peak
    (Linux carries it over `exec`), so this process must stay small.
    """
    version = hashlib.sha256(Path(demo.__file__).read_bytes()).hexdigest()[:10]
    path = CACHE / f"demo-{rows}-seed{seed}-{version}.csv"
    if not path.exists():
        started = time.perf_counter()
        code = "import sys; from lestats.data.demo import write_demo_csv as w; "
        code += "w(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))"
        command = [sys.executable, "-c", code, str(path), str(rows), str(seed)]
        subprocess.run(command, check=True)  # noqa: S603
        elapsed = time.perf_counter() - started
        print(f"  generated {path} ({path.stat().st_size / 1e6:.1f} MB) in {elapsed:.1f} s")
    return path


# --- children: one measurement each, in a fresh interpreter ------------------------------------


def child_load(path: Path) -> dict[str, float]:
    """Time `load_dataset(path)` in this process, with the csv module."""
    os.environ[PARSER_VARIABLE] = "csv"
    return time_load(path)


class _Deferrals(logging.Handler):
    """Collects the arrow loader's log records: it logs only when it defers to the csv module."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def child_arrow(path: Path) -> dict[str, float]:
    """Time `load_dataset(path)` in this process, with pyarrow (imported in the measured time).

    Raises:
        RuntimeError: pyarrow deferred the file to the csv module, so the figures are not its.
    """
    os.environ.pop(PARSER_VARIABLE, None)
    deferrals = _Deferrals()
    logger = logging.getLogger("lestats.data.arrow_loader")
    logger.addHandler(deferrals)
    logger.setLevel(logging.INFO)
    figures = time_load(path)
    if deferrals.messages:
        raise RuntimeError(f"not the arrow path's figures: {deferrals.messages}")
    return figures


def time_load(path: Path) -> dict[str, float]:
    """Time `load_dataset(path)` in this process."""
    before = peak_rss_mb()
    cpu = cpu_seconds()
    started = time.perf_counter()
    dataset = load_dataset(path)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    return {"seconds": seconds, "cpu": cpu, "rows": dataset.rows_read, "before_mb": before}


def child_dictreader(path: Path) -> dict[str, float]:
    """Time iterating `csv.DictReader` over every row of `path`, keeping nothing."""
    before = peak_rss_mb()
    cpu = cpu_seconds()
    started = time.perf_counter()
    rows = 0
    with path.open(encoding="utf-8", newline="") as file:
        for _ in csv.DictReader(file):
            rows += 1
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "before_mb": before}


def child_reader(path: Path) -> dict[str, float]:
    """Time iterating a plain `csv.reader` (lists, no dicts) over every row of `path`."""
    before = peak_rss_mb()
    cpu = cpu_seconds()
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as file:
        rows = sum(1 for _ in csv.reader(file)) - 1
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "before_mb": before}


CHILDREN: dict[str, Callable[[Path], dict[str, float]]] = {
    "load": child_load,
    "arrow": child_arrow,
    "dictreader": child_dictreader,
    "reader": child_reader,
}


def run_child(kind: str, path: Path) -> dict[str, float]:
    """Run one measurement in a subprocess and return its figures, peak RSS included."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return json.loads(done.stdout)


def measure(kind: str, path: Path, runs: int) -> dict[str, float]:
    """Best time and highest peak RSS over `runs` fresh subprocesses."""
    results = [run_child(kind, path) for _ in range(runs)]
    return {
        "seconds": min(r["seconds"] for r in results),
        "cpu": min(r["cpu"] for r in results),
        "peak_mb": max(r["peak_mb"] for r in results),
        "before_mb": min(r["before_mb"] for r in results),
        "rows": results[0]["rows"],
    }


# --- the report ----------------------------------------------------------------------------


def net(figures: dict[str, float]) -> str:
    """Peak RSS minus the RSS before the measured work, in MB, parenthesised."""
    return f"({figures['peak_mb'] - figures['before_mb']:.1f})"


def cpu(figures: dict[str, float]) -> str:
    """CPU seconds of the measured work, parenthesised (wall time suffers on a busy machine)."""
    return f"({figures['cpu']:.3f})"


def verdict(ok: bool) -> str:
    """A short pass or miss mark for a goal."""
    return "ok" if ok else "MISSED"


def load_figures(figures: dict[str, float] | None, width: int) -> str:
    """`s (cpu) peak MB (net)` of one loader, or n/a across the same width."""
    if figures is None:
        return f"{'n/a':>{width}}"
    return (
        f"{figures['seconds']:>7.3f} {cpu(figures):>7} {figures['peak_mb']:>8.1f} {net(figures):>7}"
    )


def goal_verdict(figures: dict[str, float] | None) -> str:
    """Whether one loader meets the loading goal (for the goal's row count)."""
    if figures is None:
        return "n/a"
    return (
        f"time {verdict(figures['seconds'] <= LOAD_GOAL_SECONDS)}, "
        f"memory {verdict(figures['peak_mb'] <= LOAD_GOAL_MB)}"
    )


def bench_loading(row_counts: list[int], seed: int, runs: int) -> None:
    """Print load time and peak RSS of both parsers against the DictReader floor."""
    print(f"Loading (best time, highest peak RSS of {runs} fresh subprocesses each)")
    paths = {rows: demo_file(rows, seed) for rows in row_counts}
    loader_columns = f"{'s':>7} {'(cpu)':>7} {'peak MB':>8} {'(net)':>7}"
    width = len(loader_columns)
    header = (
        f"{'':>18} | {'csv path':^{width}} | {'arrow path':^{width}} | "
        f"{'DictReader floor':^{width}} | {'':>7} | {'':>12} |\n"
        f"{'rows':>10} {'file MB':>7} | {loader_columns} | {loader_columns} | {loader_columns} | "
        f"{'arrow/DR':>7} | {'csv.reader s':>12} | goal at {LOAD_GOAL_ROWS:,} rows: "
        f"<= {LOAD_GOAL_SECONDS:g} s, <= {LOAD_GOAL_MB:g} MB"
    )
    print(header)
    print("-" * max(map(len, header.splitlines())))
    baselines = []
    for rows, path in paths.items():
        load = measure("load", path, runs)
        arrow = measure("arrow", path, runs) if HAVE_PYARROW else None
        floor = measure("dictreader", path, runs)
        reader = measure("reader", path, runs)
        if rows == LOAD_GOAL_ROWS:
            goal = f"csv: {goal_verdict(load)}; arrow: {goal_verdict(arrow)}"
        else:
            goal = "-"
        ratio = f"{arrow['seconds'] / floor['seconds']:>7.2f}" if arrow else f"{'n/a':>7}"
        print(
            f"{rows:>10,} {path.stat().st_size / 1e6:>7.1f} | {load_figures(load, width)} | "
            f"{load_figures(arrow, width)} | {load_figures(floor, width)} | {ratio} | "
            f"{reader['seconds']:>12.3f} | {goal}"
        )
        baselines += [load["before_mb"], floor["before_mb"]]
        if arrow:
            baselines.append(arrow["before_mb"])
        counts = {load["rows"], floor["rows"], reader["rows"]} | (
            {arrow["rows"]} if arrow else set()
        )
        if counts != {rows}:
            print(f"  !! rows read: csv {load['rows']}, DictReader {floor['rows']}, want {rows}")
    print(
        f"(peak RSS is the whole child process: interpreter and imports were "
        f"{min(baselines):.0f}-{max(baselines):.0f} MB before the measured work; "
        f"(net) = peak minus that)"
    )
    print(
        "(csv path: LESTATS_CSV_PARSER=csv; arrow path: the default with pyarrow installed, "
        "its import included in its figures)"
    )
    print("(csv.reader s: iterating plain csv.reader rows, the floor of a csv-module loader)")
    print("((cpu) = user + system CPU seconds of the same runs, steadier on a busy machine)")


def per_call_us(call: Callable[[], object], min_seconds: float) -> float:
    """Microseconds per call: the best of 5 timeit repeats, each at least `min_seconds` long."""
    timer = timeit.Timer(call)
    number, elapsed = timer.autorange()
    number = max(1, round(number * min_seconds / elapsed))
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def bench_jobs(seed: int) -> None:
    """Print per-job time of each endpoint against the naive reference scan."""
    sys.path.insert(0, str(ROOT / "tests"))
    naive = importlib.import_module("reference")
    path = demo_file(JOB_GOAL_ROWS, seed)
    dataset = load_dataset(path)
    with path.open(encoding="utf-8", newline="") as file:
        rows = naive.parse_rows(csv.DictReader(file))
    state = dataset.states[len(dataset.states) // 2]
    print()
    print(
        f"Jobs on {JOB_GOAL_ROWS:,} demo rows ({dataset.rows} numeric), question: obesity, "
        f"state: {state}; goal <= {JOB_GOAL_US:g} us per job"
    )
    header = (
        f"{'endpoint':<24} | {'compute us':>10} | {'naive scan us':>13} | {'speedup':>8} | "
        f"{'same answer':>11} | goal"
    )
    print(header)
    print("-" * len(header))
    for endpoint in ENDPOINTS:
        needs_state = default_registry()[endpoint].needs_state
        query = Query(endpoint, QUESTION, state if needs_state else None)
        fast = per_call_us(lambda query=query: compute(dataset, query), 0.1)
        slow = per_call_us(
            lambda query=query: naive.reference(query.kind, QUESTION, query.state, rows),
            0.05,
        )
        result = compute(dataset, query)
        expected = naive.reference(endpoint, QUESTION, query.state, rows)
        same = result == expected and list(result) == list(expected)
        print(
            f"{endpoint:<24} | {fast:>10.2f} | {slow:>13,.0f} | {slow / fast:>7,.0f}x | "
            f"{'yes' if same else 'NO':>11} | {verdict(fast <= JOB_GOAL_US)}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --child, one measurement) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[demo.DEMO_ROWS, LOAD_GOAL_ROWS], metavar="N"
    )
    parser.add_argument("--runs", type=int, default=3, help="subprocesses per load measurement")
    parser.add_argument("--seed", type=int, default=demo.DEMO_SEED)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, path = args.child
        figures = CHILDREN[kind](Path(path))
        figures["peak_mb"] = peak_rss_mb()
        print(json.dumps(figures))
        return 0
    print(f"Python {sys.version.split()[0]} on {sys.platform}")
    bench_loading(args.rows, args.seed, args.runs)
    bench_jobs(args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
