"""Benchmark of the v2 queries' data side: what the row table costs at load, and a job's cost.

Usage: python -m bench.bench_queries [--runs 3] [--rows 1000000] [--jobs 200]

1. Loading, before and after the row table, in the same run. Each load runs in a fresh
   subprocess, either with this tree's `lestats` ("after") or with the `lestats` of the commit
   before the one that added `lestats/data/table.py` (extracted with `git archive` into a
   temporary folder and put first on PYTHONPATH: "before"). Files: the CDC export (88,629
   rows, read in place from ../shared/data) and a 1,000,000-row demo file (cached in
   /tmp/lestats-bench like bench_data's). For each: the best load time of `--runs`, the
   highest peak RSS (`ru_maxrss`), and the resident memory once loaded (VmRSS after a
   collection), with each parser (pyarrow, the default where installed, and the csv module).
   The best CPU time (`process_time`, all threads) is printed beside the wall time: on a
   machine shared with other work it moves less than the wall time.
   The fingerprint, computed on first use, is timed apart.
2. Worker time per job: on the CDC dataset, `--jobs` distinct random queries of each kind
   (ranking, trend, compare, estimates of 1-3 states) each computed once and encoded as the
   Worker does (`Registry.encode` + `jsonio.dumps`), i.e. the cost of a query not yet in the
   Worker's memo; the discovery kinds' one query each, computed `--jobs` times. Median and 95th
   percentile in microseconds, and the answers' median size. Only "after": run this part with
   an older tree first on the path for "before" (it uses `Registry.run` where there is no
   `Registry.encode`).

Goals: after <= 1.25 x before in load time and in memory; ranking and trend <= 100 us a job.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.servers import cdc_file

if TYPE_CHECKING:
    from lestats.data.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.25
GOAL_JOB_US = 100.0
GOAL_KINDS = ("ranking", "trend")
"""The kinds the Worker-time goal names."""
PARAMETERIZED = ("ranking", "trend", "compare", "estimates")
"""The kinds measured on `--jobs` distinct random queries each."""
DISCOVERY = ("questions", "locations", "strata")
"""The kinds without parameters: their one query, computed `--jobs` times."""

_CHILD = r"""
import gc, json, os, resource, sys, time
import lestats
from lestats.data.loader import load_dataset
path = sys.argv[1]
started, cpu = time.perf_counter(), time.process_time()
dataset = load_dataset(path)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
gc.collect()
with open("/proc/self/status") as status:
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
figures = {"seconds": seconds, "cpu": cpu, "rss_mb": rss, "rows": dataset.rows_read,
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "module": lestats.__file__}
if hasattr(type(dataset), "fingerprint"):  # a property: hasattr on the instance computes it
    started = time.perf_counter()
    dataset.fingerprint
    figures["fingerprint_s"] = time.perf_counter() - started
print(json.dumps(figures))
"""


@dataclass(frozen=True)
class Load:
    """The figures of one (tree, parser, file) over several runs."""

    seconds: float
    cpu: float
    peak_mb: float
    rss_mb: float
    rows: int
    fingerprint_s: float | None


def base_tree(folder: Path) -> tuple[str, Path]:
    """The `lestats` of the commit before the row table, extracted into `folder`: "before"."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "lestats/data/table.py"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    commit = f"{added}^"
    archive = folder / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(  # noqa: S603 - git with our own arguments
            ["git", "archive", commit, "lestats"],  # noqa: S607
            cwd=ROOT,
            stdout=out,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return f"{added[:10]}^", folder


def load_once(tree: Path, path: Path, parser: str) -> dict[str, float]:
    """One load in a fresh interpreter with `tree` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if parser == "csv":
        env["LESTATS_CSV_PARSER"] = "csv"
    else:
        env.pop("LESTATS_CSV_PARSER", None)
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _CHILD, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    figures = json.loads(done.stdout)
    if not figures["module"].startswith(str(tree)):
        raise RuntimeError(f"loaded {figures['module']}, not the tree {tree}")
    return figures


def summary(results: list[dict[str, float]]) -> Load:
    """Best time, highest peak and resident memory over several loads."""
    fingerprints = [r["fingerprint_s"] for r in results if "fingerprint_s" in r]
    return Load(
        seconds=min(r["seconds"] for r in results),
        cpu=min(r["cpu"] for r in results),
        peak_mb=max(r["peak_mb"] for r in results),
        rss_mb=max(r["rss_mb"] for r in results),
        rows=int(results[0]["rows"]),
        fingerprint_s=min(fingerprints) if fingerprints else None,
    )


def _ratio(after: float, before: float) -> str:
    ratio = after / before
    verdict = "ok" if ratio <= GOAL_RATIO else "OVER"
    return f"x{ratio:.2f} {verdict}"


def bench_loading(files: list[Path], runs: int) -> None:
    """Print before/after figures for each file and parser."""
    with tempfile.TemporaryDirectory() as folder:
        commit, before_tree = base_tree(Path(folder))
        print(f"1. Loading: before = lestats of {commit} (no row table), after = this tree")
        header = (
            f"{'file':>24} {'parser':>6} {'':>6} {'load s':>8} {'cpu s':>8} {'peak MB':>8} "
            f"{'RSS MB':>8}"
        )
        print(header)
        for path in files:
            for parser in ("arrow", "csv"):
                # Alternated, so that a busy moment of the machine hits both alike.
                pairs = [
                    (load_once(before_tree, path, parser), load_once(ROOT, path, parser))
                    for _ in range(runs)
                ]
                before = summary([b for b, _ in pairs])
                after = summary([a for _, a in pairs])
                name = path.name[:24]
                for label, load in (("before", before), ("after", after)):
                    print(
                        f"{name:>24} {parser:>6} {label:>6} {load.seconds:8.2f} {load.cpu:8.2f} "
                        f"{load.peak_mb:8.1f} {load.rss_mb:8.1f}"
                    )
                print(
                    f"{'':>24} {'':>6} {'ratio':>6} {_ratio(after.seconds, before.seconds):>8} "
                    f"{_ratio(after.cpu, before.cpu):>8} "
                    f"{_ratio(after.peak_mb, before.peak_mb):>8} "
                    f"{_ratio(after.rss_mb, before.rss_mb):>8}"
                )
                if after.fingerprint_s is not None:
                    print(f"{'':>24} fingerprint on first use: {after.fingerprint_s:.3f} s")


def _random_query(catalog: Catalog, kind: str, rng: random.Random) -> dict[str, object]:
    """The parameters of a random query of `kind` (a question, then what the kind takes)."""
    states = [abbr for abbr, _, place, _ in catalog.places if place != "national"]
    strata = list(catalog.strata)
    question = rng.choice(list(catalog.questions))
    raw: dict[str, object] = {"question": question}
    if kind == "estimates":  # what a map or table of a few states asks: ~70 rows
        raw["location"] = rng.sample(states, rng.randint(1, 3))
        if rng.random() < 0.5:
            raw["year"] = [rng.choice(catalog.years[question])]
        if rng.random() < 0.3:
            raw["category"] = rng.choice(sorted({s.category_id for s in catalog.strata.values()}))
        return raw
    raw["stratum"] = rng.choice(strata)
    if kind == "ranking":
        raw["year"] = rng.choice(catalog.years[question])
    elif kind == "trend":
        raw["location"] = rng.choice(states)
    elif kind == "compare":
        raw["location"] = rng.sample(states, 2)
    return raw


def bench_jobs(path: Path, jobs: int) -> None:
    """Print the Worker time of distinct queries of every v2 kind on the CDC data."""
    from lestats import jsonio  # noqa: PLC0415 - after the loading children
    from lestats.data.loader import load_dataset  # noqa: PLC0415
    from lestats.data.params import parse_query  # noqa: PLC0415
    from lestats.data.statistics import default_registry  # noqa: PLC0415

    dataset = load_dataset(path)
    registry = default_registry()
    gc.collect()
    gc.freeze()  # as run.py does once it serves: no full collection walks the dataset mid-job
    # What the Engine gives its Workers (`Registry.encode`), else, in a tree without it, what
    # it gave them before: `Registry.run`, whose answer the Worker encodes.
    runner = getattr(registry, "encode", registry.run)
    catalog = dataset.catalog
    rng = random.Random(14)
    print(f"2. Worker time per job (runner + JSON encoding), {jobs} distinct queries each")
    for kind in (*PARAMETERIZED, *DISCOVERY):
        times: list[float] = []
        sizes: list[int] = []
        seen = set()
        while len(times) < jobs:
            raw = _random_query(catalog, kind, rng) if kind in PARAMETERIZED else {}
            query = parse_query(dataset, kind, raw)
            if query in seen and kind in PARAMETERIZED:
                continue
            seen.add(query)
            started = time.perf_counter()
            encoded = jsonio.dumps(runner(dataset, query))
            times.append((time.perf_counter() - started) * 1e6)
            sizes.append(len(encoded))
        median = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[-1]
        verdict = ""
        if kind in GOAL_KINDS:
            verdict = f"  (goal <= {GOAL_JOB_US:g}: {'ok' if median <= GOAL_JOB_US else 'OVER'})"
        print(
            f"  {kind:>9}: median {median:6.1f} us, p95 {p95:6.1f} us, "
            f"median {statistics.median(sizes):6.0f} bytes{verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run both parts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="loads per measurement")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the demo file")
    parser.add_argument("--jobs", type=int, default=200, help="distinct queries per kind")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.rows, args.jobs = 1, 20_000, 20
    from bench.bench_data import demo_file  # noqa: PLC0415

    cdc = cdc_file()
    files = [p for p in (cdc, demo_file(args.rows, 2024)) if p is not None]
    bench_loading(files, args.runs)
    if cdc is not None:
        bench_jobs(cdc, args.jobs)
    else:
        print("2. skipped: the CDC export is not in ../shared/data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
