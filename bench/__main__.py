"""`python -m bench` (`make bench`): every benchmark, each in its own interpreter.

In order: the data benchmarks (`bench/bench_data.py`) and the engine benchmarks
(`bench/bench_engine.py`) when present, then the HTTP benchmarks (`bench.bench_http`). The soak
(`python -m bench.soak`, 100,000 jobs) and the flood (`python -m bench.flood`, 50,000 POSTs) take
longer and run only with `--soak`, `--flood` or `--all`. `--quick` makes every part a smoke run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

HERE = Path(__file__).resolve().parent
PART_TIMEOUT = 1800.0
"""Seconds any one part may take before it is stopped."""
QUICK_FLAGS = {
    "bench.soak": ["--jobs", "2000", "--warmup", "200", "--sample-every", "2"],
    "bench.flood": ["--posts", "3000"],
}


def _supports_quick(module: str) -> bool:
    """Whether a module's --help lists a --quick flag (other people's benchmarks may not)."""
    try:
        shown = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", module, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=HERE.parent,
        )
    except subprocess.TimeoutExpired:
        return False
    return "--quick" in shown.stdout


def _run(module: str, flags: list[str]) -> tuple[int | str, float]:
    """Run one part with its output going straight to ours; its exit code and duration."""
    command = [sys.executable, "-m", module, *flags]
    print(f"\n=== {' '.join(['python', '-m', module, *flags])}", flush=True)
    began = time.perf_counter()
    try:
        code: int | str = subprocess.run(  # noqa: S603 - our own interpreter and module
            command, timeout=PART_TIMEOUT, check=False, cwd=HERE.parent
        ).returncode
    except subprocess.TimeoutExpired:
        code = f"stopped after {PART_TIMEOUT:g} s"
    return code, time.perf_counter() - began


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts; 0 when every part exited 0."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every part")
    parser.add_argument("--soak", action="store_true", help="also run the 100,000-job soak")
    parser.add_argument("--flood", action="store_true", help="also run the 50,000-POST flood")
    parser.add_argument("--all", action="store_true", help="everything: soak and flood too")
    args = parser.parse_args(argv)
    parts: list[tuple[str, list[str]]] = []
    for name in ("bench_data", "bench_engine"):
        if (HERE / f"{name}.py").exists():
            module = f"bench.{name}"
            quick = args.quick and _supports_quick(module)
            parts.append((module, ["--quick"] if quick else []))
    parts.append(("bench.bench_http", ["--quick"] if args.quick else []))
    if args.soak or args.all:
        parts.append(("bench.soak", QUICK_FLAGS["bench.soak"] if args.quick else []))
    if args.flood or args.all:
        parts.append(("bench.flood", QUICK_FLAGS["bench.flood"] if args.quick else []))
    if args.all:
        parts.append(("bench.bench_redis", ["--quick", "--soak"] if args.quick else ["--soak"]))
    outcomes = [(module, flags, *_run(module, flags)) for module, flags in parts]
    print("\n=== summary")
    for module, flags, code, seconds in outcomes:
        print(f"  python -m {' '.join([module, *flags]):<40} exit {code}  {seconds:6.1f} s")
    if not (args.soak or args.flood or args.all):
        print(
            "  not run (longer): python -m bench.soak (100,000 jobs), python -m bench.flood "
            "(50,000 POSTs), python -m bench.bench_redis (several processes on Redis), "
            "or python -m bench --all"
        )
    return 0 if all(code == 0 for *_, code, _ in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
