"""What a result file costs to save: an unnamed file linked into place against a renamed temporary.

`python -m bench.bench_result_save [--files 5000] [--rounds 6] [--results-in DIR]`

`ResultFiles.save` writes each done job's file whole before its name appears. Both ways save
into directories of their own side by side (default: scratch under `.bench-tmp/`, the
repository's disk; pass `--results-in /dev/shm` for a tmpfs), one file each in turn, the way
that goes first alternating from file to file, so that whatever else the disk is doing (the
machine is shared; the deletions of the round before are written back) weighs on both alike.
Each save is timed with this thread's CPU clock (the figure that counts: the ResultStore's
thread pays it for every job). The medians of the rounds are the answer.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench import option, parse_plan
from bench.servers import given_or_scratch_dir
from lestats.stores.result_files import ResultFiles

if TYPE_CHECKING:
    from collections.abc import Sequence

RESULT = b'{"Alabama": 31.25, "Alaska": 29.5, "Arizona": 30.125, "Arkansas": 33.0}' * 4
"""A result of the size of a ranking's (about 300 bytes)."""


@dataclass(frozen=True, slots=True)
class SavePlan:
    """Time result file saves: unnamed + link against temporary name + rename."""

    files: int = option(5000, "files per way per round")
    rounds: int = option(6, "rounds (each measures both ways once)")
    results_in: str = option("", "directory to save in (default: scratch on this disk)")


def one_round(root: Path, files: int) -> tuple[float, float]:
    """Save `files` results each way, interleaved; CPU seconds per file (named, unnamed)."""
    spent = {False: 0, True: 0}
    ways = {}
    for unnamed in (False, True):
        directory = root / ("unnamed" if unnamed else "named")
        directory.mkdir()
        ways[unnamed] = ResultFiles(directory, 0)
        ways[unnamed]._unnamed = unnamed  # noqa: SLF001 - the way under test
    for job_id in range(1, files + 1):
        order = (False, True) if job_id % 2 else (True, False)
        for unnamed in order:
            began = time.thread_time_ns()
            ways[unnamed].save(job_id, RESULT)
            spent[unnamed] += time.thread_time_ns() - began
    for storage in ways.values():
        storage.close()
    if not ways[True]._unnamed:  # noqa: SLF001
        raise RuntimeError(f"{root} has no unnamed files (O_TMPFILE): nothing to compare")
    return spent[False] / files / 1e9, spent[True] / files / 1e9


def run(plan: SavePlan, root: Path) -> str:
    """The rounds; the report."""
    pairs: list[tuple[float, float]] = []
    for number in range(plan.rounds):
        round_dir = Path(tempfile.mkdtemp(prefix="save-", dir=root))
        try:
            named, unnamed = one_round(round_dir, plan.files)
        finally:
            shutil.rmtree(round_dir, ignore_errors=True)
        pairs.append((named, unnamed))
        print(
            f"  round {number + 1}: named {named * 1e6:6.1f} us/file  "
            f"unnamed {unnamed * 1e6:6.1f} us/file",
            flush=True,
        )
    named = statistics.median(a for a, _ in pairs)
    unnamed = statistics.median(b for _, b in pairs)
    ratio = statistics.median(b / a for a, b in pairs)
    return (
        f"{plan.rounds} rounds of {plan.files} files each way in {root} "
        "(medians, CPU of the saving thread):\n"
        f"  temporary name + rename  {named * 1e6:6.1f} us/file\n"
        f"  unnamed file + link      {unnamed * 1e6:6.1f} us/file  (ratio {ratio:.2f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print."""
    plan = parse_plan(SavePlan, argv, prog="python -m bench.bench_result_save")
    with given_or_scratch_dir(plan.results_in, "result-save-") as root:
        print(run(plan, root), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
