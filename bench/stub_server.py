"""`run.py` with the actors taken out: what our HTTP layer alone costs, for limit analysis.

`python -m bench.stub_server [run.py's options]` serves the real application (middleware, entry
and exit log lines, validation, JSON, routing) over an Engine whose job calls answer at once: a
POST validates its query and gets the next id, a GET of any job reads `done` with a canned
`best5`-sized result. No Dispatcher, Worker, ResultStore, journal or result file is involved.

Next to `bench.bare_server` (aiohttp alone) and `run.py` (everything), with `bench.ab`, it splits a
job's cost into aiohttp's, our HTTP layer's and the engine's. Never a server to use.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from bench.bare_server import CANNED_RESULT
from lestats import cli
from lestats.actors.engine import Engine
from lestats.actors.jobs import JobOutcome, JobStatus, format_job_id

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from lestats.data.query import Query

_DATA = CANNED_RESULT[CANNED_RESULT.index(b'"data": ') + len(b'"data": ') : -1]


def stub_engine() -> None:
    """Make every Engine answer submissions and results at once, without its actors."""
    ids = itertools.count(1)

    async def submit_async(
        self: Engine,
        kind: str | Query,
        question: object,
        state: object,
        params: Mapping[str, object],
    ) -> str:
        self._submission(kind, question, state, params)  # checked as the real engine does
        return format_job_id(next(ids))

    async def outcome_async(self: Engine, job_id: str | int) -> JobOutcome:
        del self, job_id
        return JobOutcome(JobStatus.DONE, _DATA)

    Engine._submit_async = submit_async  # type: ignore[method-assign]  # noqa: SLF001
    Engine.outcome_async = outcome_async  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    """run.py's `main`, over the stubbed engine."""
    stub_engine()
    return cli.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
