"""`run.py` that also notes the moment each job finishes, for the long-poll latency bench.

`python -m bench.stamped_server --stamps FILE [run.py's options]` serves exactly as `run.py`
does; in addition, each time the job store has saved a result (the moment its job becomes
`done`), a line `N NANOSECONDS` goes to FILE: the job number and `time.monotonic_ns()`. That
clock (CLOCK_MONOTONIC) is one clock for every process on the machine, so the load generator
can subtract it from the moment a long-poll answer reached it: how late the answer came after
the job finished, with the job's own running time left out.

The stamp costs the ResultStore one small write per job, so this server is only used where that
delay is measured, never for the throughput rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lestats import cli
from lestats.stores.files import FileStore

if TYPE_CHECKING:
    from collections.abc import Sequence


class StampingStore(FileStore):
    """A FileStore that, once a job's result is saved, writes `N NANOSECONDS` to `out`."""

    def __init__(self, directory: str, out: TextIO) -> None:
        super().__init__(directory)
        self._out = out

    def complete(self, job_id: int, result: bytes) -> bool:
        """Save the result (the moment the job becomes done), then stamp it."""
        completed = super().complete(job_id, result)
        if completed:
            self._out.write(f"{job_id} {time.monotonic_ns()}\n")
        return completed


def read_stamps(path: Path) -> dict[int, int]:
    """Job number -> `monotonic_ns` when it finished; a last line not yet ended is skipped."""
    stamps: dict[int, int] = {}
    for line in path.read_text(encoding="ascii").split("\n")[:-1]:
        number, _, nanoseconds = line.partition(" ")
        if number.isdigit() and nanoseconds.isdigit():
            stamps[int(number)] = int(nanoseconds)
    return stamps


def main(argv: Sequence[str] | None = None) -> int:
    """Take `--stamps FILE`, pass the rest to run.py's `main`."""
    parser = argparse.ArgumentParser(prog="python -m bench.stamped_server", add_help=False)
    parser.add_argument("--stamps", type=Path, required=True, help="where the stamps go")
    args, rest = parser.parse_known_args(argv)
    with args.stamps.open("w", encoding="ascii", buffering=1) as out:
        return cli.main(rest, make_store=lambda directory: StampingStore(directory, out))


if __name__ == "__main__":
    raise SystemExit(main())
