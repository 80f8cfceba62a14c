"""run.py whose jobs wait for a gate file: lets a test hold accepted jobs in a real process.

`python tests/gated_run.py [run.py options]`, with `LESTATS_TEST_GATE` naming a file: every job
waits (at most `GATE_TIMEOUT` s) until that file exists, then computes as usual. Everything else
is `run.py` itself (`lestats.cli.main`), signals included.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lestats.cli import main
from lestats.data.statistics import compute

if TYPE_CHECKING:
    from lestats.data.dataset import Dataset
    from lestats.data.query import Query

GATE = Path(os.environ["LESTATS_TEST_GATE"])
GATE_TIMEOUT = 60.0


def gated(dataset: Dataset, query: Query) -> object:
    """`compute`, once the gate file exists."""
    deadline = time.monotonic() + GATE_TIMEOUT
    while not GATE.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return compute(dataset, query)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], runner=gated))
