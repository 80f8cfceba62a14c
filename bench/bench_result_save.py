"""What a result file costs to save: an unnamed file linked into place against a renamed temporary.

`python -m bench.bench_result_save [--files 5000] [--rounds 6] [--results-in DIR]`

`ResultFiles.save` writes each done job's file whole before its name appears. Both ways are
measured in alternating rounds, each into a fresh directory (default: scratch under
`.bench-tmp/`, the repository's disk; pass `--results-in /dev/shm` for a tmpfs), with the CPU
time of this process per file (the figure that counts: the ResultStore's thread pays it for
every job). The machine's speed drifts, so the medians of the rounds are the answer, and the
ratio of each round's pair.
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
from bench.servers import scratch_dir
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


def cpu_per_file(directory: Path, files: int, *, unnamed: bool) -> float:
    """Save `files` results into a fresh `directory`; CPU seconds per file."""
    directory.mkdir()
    storage = ResultFiles(directory, 0)
    storage._unnamed = unnamed  # noqa: SLF001 - the way under test
    began = time.process_time()
    for job_id in range(1, files + 1):
        storage.save(job_id, RESULT)
    spent = time.process_time() - began
    storage.close()
    if unnamed and not storage._unnamed:  # noqa: SLF001
        raise RuntimeError(f"{directory} has no unnamed files (O_TMPFILE): nothing to compare")
    return spent / files


def run(plan: SavePlan, root: Path) -> str:
    """Alternate the two ways; the report."""
    pairs: list[tuple[float, float]] = []
    for number in range(plan.rounds):
        round_dir = Path(tempfile.mkdtemp(prefix="save-", dir=root))
        try:
            ways = (False, True) if number % 2 == 0 else (True, False)
            spent = {
                unnamed: cpu_per_file(round_dir / str(unnamed), plan.files, unnamed=unnamed)
                for unnamed in ways
            }
        finally:
            shutil.rmtree(round_dir, ignore_errors=True)
        pairs.append((spent[False], spent[True]))
        print(
            f"  round {number + 1}: named {spent[False] * 1e6:6.1f} us/file  "
            f"unnamed {spent[True] * 1e6:6.1f} us/file",
            flush=True,
        )
    named = statistics.median(a for a, _ in pairs)
    unnamed = statistics.median(b for _, b in pairs)
    ratio = statistics.median(b / a for a, b in pairs)
    return (
        f"{plan.rounds} rounds of {plan.files} files in {root} (medians, CPU of this process):\n"
        f"  temporary name + rename  {named * 1e6:6.1f} us/file\n"
        f"  unnamed file + link      {unnamed * 1e6:6.1f} us/file  (ratio {ratio:.2f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print."""
    plan = parse_plan(SavePlan, argv, prog="python -m bench.bench_result_save")
    if plan.results_in:
        print(run(plan, Path(plan.results_in)), flush=True)
        return 0
    with scratch_dir("result-save-") as root:
        print(run(plan, root), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
