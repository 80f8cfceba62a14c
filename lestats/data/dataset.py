"""The loaded data: immutable, shared by reference by every worker, answers precomputed.

Every answer's ingredients are computed once at load, so that a job is a lookup, not a scan.

Values are kept grouped by everything a filter may want (question, state, stratification, years,
state abbreviation); row order is not kept because no statistic depends on it (sums are `fsum`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import chain
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from lestats.data.catalog import Catalog
from lestats.data.numbers import MAX_MAGNITUDE
from lestats.data.row_columns import RowColumns

if TYPE_CHECKING:
    from array import array
    from collections.abc import Iterable, Mapping

    from lestats.data.table import EstimateTable

__all__ = ["MAX_MAGNITUDE", "Dataset", "GroupKey", "QuestionStats", "Ranking", "Record"]

GroupKey = tuple[str, str, str, str, str, str, str]
"""(question, state, category, stratum, year_start, year_end, state_abbr) of a group of rows."""

Ranking = dict[str, float]
"""Means by key, in the order the contract lists them. Read-only: callers copy before changing."""


class Record(NamedTuple):
    """One row as the statistics see it; `value` may be text, as in a CSV cell.

    A value that is empty, not a number, NaN, infinite or absurdly large (beyond
    `MAX_MAGNITUDE`) counts in no statistic.
    """

    question: str
    state: str
    value: float | str | None
    category: str = ""
    stratum: str = ""
    year_start: str = ""
    year_end: str = ""
    state_abbr: str = ""


@dataclass(frozen=True, slots=True)
class QuestionStats:
    """Everything the nine endpoints need for one question, computed once at load.

    Means are `fsum(values) / count` over the rows with a numeric value. Rankings break ties by
    state name A to Z in both directions.
    """

    global_mean: float
    ascending: Ranking
    """States by mean, lowest first."""
    descending: Ranking
    """States by mean, highest first."""
    state_means: Ranking
    by_category: Ranking
    """`"('<state>', '<category>', '<stratum>')"` keys, sorted by that tuple."""
    state_by_category: dict[str, Ranking]
    """Per state: `"('<category>', '<stratum>')"` keys, sorted by that tuple."""


class Dataset:
    """An immutable, fully aggregated dataset. Build it with `from_records` or a loader.

    Not a row store: it answers the contract's statistics and lists states and questions; it
    does not keep the file's row order or the columns no statistic uses.
    """

    __slots__ = (
        "_catalog",
        "_stats",
        "groups",
        "rows_read",
        "rows_skipped",
        "source",
        "state_set",
        "states",
        "table",
    )

    def __init__(
        self,
        groups: Mapping[GroupKey, array[float]],
        *,
        source: str,
        rows_read: int,
        rows_skipped: int,
        table: EstimateTable,
    ) -> None:
        """Aggregate `groups` (finite float values by group key). Prefer the factories.

        `table` holds the same rows one by one, for the v2 queries.
        """
        self.groups: Mapping[GroupKey, array[float]] = MappingProxyType(dict(groups))
        self.table = table
        self._catalog: Catalog | None = None
        self.source = source
        self.rows_read = rows_read
        self.rows_skipped = rows_skipped
        self.state_set: frozenset[str] = frozenset(key[1] for key in self.groups)
        self.states: tuple[str, ...] = tuple(sorted(self.state_set))
        self._stats: Mapping[str, QuestionStats] = MappingProxyType(_aggregate(self.groups))

    @classmethod
    def from_records(cls, records: Iterable[Record], *, source: str = "<records>") -> Dataset:
        """Build a dataset from in-memory rows, for tests and embedders that have no file.

        The table gets the columns a `Record` has (no ids, intervals or footnotes).
        """
        columns = RowColumns(_RECORD_COLUMNS, len(Record._fields))
        columns.read([_text(cell) for cell in Record(*record)] for record in records)
        groups, dropped, table = columns.build()
        return cls(groups, source=source, rows_read=len(columns), rows_skipped=dropped, table=table)

    @property
    def rows(self) -> int:
        """How many rows count in the statistics (read minus skipped)."""
        return self.rows_read - self.rows_skipped

    @property
    def questions(self) -> tuple[str, ...]:
        """The questions with at least one numeric row, sorted."""
        return tuple(sorted(self._stats))

    @property
    def catalog(self) -> Catalog:
        """The names of the table's questions, locations, strata and years (built on first use)."""
        if self._catalog is None:
            self._catalog = Catalog.of(self.table)
        return self._catalog

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the loaded rows in canonical form, computed on first use.

        Equal for the same rows in any order and from either parser, different for any other data.
        """
        return self.table.fingerprint

    def stats(self, question: str) -> QuestionStats | None:
        """The precomputed aggregates of `question`, or None if it has no numeric row."""
        return self._stats.get(question)

    def __repr__(self) -> str:
        return (
            f"Dataset(source={self.source!r}, rows_read={self.rows_read}, "
            f"rows_skipped={self.rows_skipped}, states={len(self.states)})"
        )


_RECORD_COLUMNS = {
    "Question": 0,
    "LocationDesc": 1,
    "Data_Value": 2,
    "StratificationCategory1": 3,
    "Stratification1": 4,
    "YearStart": 5,
    "YearEnd": 6,
    "LocationAbbr": 7,
}
"""Where each column is in a `Record` (the kept columns it lacks read as `""`)."""


def _text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, int | float):
        return repr(float(cell))
    return str(cell)


def _mean(parts: list[array[float]]) -> float | None:
    count = sum(map(len, parts))
    if count == 0:
        return None
    return math.fsum(chain.from_iterable(parts)) / count


def _ranked(means: Mapping[str, float], *, descending: bool) -> Ranking:
    sign = -1.0 if descending else 1.0
    return dict(sorted(means.items(), key=lambda item: (sign * item[1], item[0])))


def _aggregate(groups: Mapping[GroupKey, array[float]]) -> dict[str, QuestionStats]:
    by_state: defaultdict[str, defaultdict[str, list[array[float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    by_category: defaultdict[str, defaultdict[tuple[str, str, str], list[array[float]]]] = (
        defaultdict(lambda: defaultdict(list))
    )
    for (question, state, category, stratum, *_), values in groups.items():
        by_state[question][state].append(values)
        if category and stratum:
            by_category[question][(state, category, stratum)].append(values)

    stats: dict[str, QuestionStats] = {}
    for question, states in by_state.items():
        global_mean = _mean([part for parts in states.values() for part in parts])
        if global_mean is None:
            continue
        state_means = {s: m for s, parts in states.items() if (m := _mean(parts)) is not None}
        category_means = sorted(
            (key, m)
            for key, parts in by_category[question].items()
            if (m := _mean(parts)) is not None
        )
        per_state: defaultdict[str, list[tuple[str, float]]] = defaultdict(list)
        for (state, category, stratum), mean in category_means:
            per_state[state].append((str((category, stratum)), mean))
        stats[question] = QuestionStats(
            global_mean=global_mean,
            ascending=_ranked(state_means, descending=False),
            descending=_ranked(state_means, descending=True),
            state_means=state_means,
            by_category={str(key): mean for key, mean in category_means},
            state_by_category={s: dict(v) for s, v in per_state.items()},
        )
    return stats
