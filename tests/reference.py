"""A deliberately naive reference for the nine statistics of spec §3, for tests to compare against.

Written from the contract (`/work/shared/spec/api.md` §3) alone, not from `lestats.data`: it keeps
every row, scans all of them for every answer, groups with plain dicts and orders with `sorted`.
Slow on purpose and simple enough to check by reading. The only thing it takes from the package is
which questions are lower-is-better (`BEST_IS_MIN`) or higher-is-better (`BEST_IS_MAX`).

Public API:
    reference(endpoint, question, state, rows) -> dict   the `data` of a done job
    parse_rows(rows) -> list[Row]                        normalise (and parse) rows once
    parse_value(value) -> float | None                   one Data_Value cell
    Row                                                  a normalised row
    ENDPOINTS, STATE_ENDPOINTS                           the nine endpoint names

Rows may be given as:
    - sequences whose first five items are (question, state, value, category, stratum); a
      `lestats.data.dataset.Record` is one, extra items are ignored;
    - mappings with the CSV column names (`Question`, `LocationDesc`, `Data_Value`,
      `StratificationCategory1`, `Stratification1`), as `csv.DictReader` yields them;
    - mappings with the `Row` field names (`question`, `state`, `value`, `category`, `stratum`);
    - `Row` objects from `parse_rows`, used as they are (parse once, query many times).
Missing category or stratum read as empty. Values may be text (as in the CSV), numbers or None.

Example:
    >>> rows = [("Q", "Ohio", "30", "Total", "Total"), ("Q", "Ohio", "", "Total", "Total")]
    >>> reference("state_mean", "Q", "Ohio", rows)
    {'Ohio': 30.0}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN

__all__ = [
    "ENDPOINTS",
    "STATE_ENDPOINTS",
    "Row",
    "parse_rows",
    "parse_value",
    "reference",
]

ENDPOINTS: tuple[str, ...] = (
    "states_mean",
    "state_mean",
    "best5",
    "worst5",
    "global_mean",
    "diff_from_mean",
    "state_diff_from_mean",
    "mean_by_category",
    "state_mean_by_category",
)
"""The nine endpoints of spec §3, in the spec's order."""

STATE_ENDPOINTS: frozenset[str] = frozenset(
    {"state_mean", "state_diff_from_mean", "state_mean_by_category"}
)
"""The endpoints that take a state besides the question."""

_CSV_COLUMNS = (
    "Question",
    "LocationDesc",
    "Data_Value",
    "StratificationCategory1",
    "Stratification1",
)
_FIELDS = ("question", "state", "value", "category", "stratum")


class Row(NamedTuple):
    """One row reduced to what the statistics read; `value` is None if it counts in none."""

    question: str
    state: str
    value: float | None
    category: str
    stratum: str


def parse_value(value: object) -> float | None:
    """Parse one Data_Value: a finite float, or None for empty, non-numeric, NaN or infinite."""
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number):
        return None
    return number


def _row(raw: object) -> Row:
    if isinstance(raw, Row):
        return raw
    if isinstance(raw, Mapping):
        columns = _CSV_COLUMNS if _CSV_COLUMNS[0] in raw else _FIELDS
        question, state, value, category, stratum = (raw.get(name) for name in columns)
    else:
        question, state, value, *rest = raw  # type: ignore[misc]
        category = rest[0] if len(rest) > 0 else ""
        stratum = rest[1] if len(rest) > 1 else ""
    return Row(str(question), str(state), parse_value(value), category or "", stratum or "")


def parse_rows(rows: Iterable[object]) -> list[Row]:
    """Normalise rows of any accepted shape into `Row`s, parsing every value once."""
    return [_row(raw) for raw in rows]


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _numeric_rows(question: str, rows: Iterable[object]) -> list[Row]:
    """The rows of `question` with a numeric value, in input order."""
    return [row for row in parse_rows(rows) if row.question == question and row.value is not None]


def _state_means(numeric: list[Row]) -> dict[str, float]:
    """Mean per state, by scanning all rows once for each state, in no particular order."""
    states = []
    for row in numeric:
        if row.state not in states:
            states.append(row.state)
    means = {}
    for state in states:
        values = [row.value for row in numeric if row.state == state]
        means[state] = _mean(values)  # type: ignore[arg-type]
    return means


def _ascending(numeric: list[Row]) -> list[tuple[str, float]]:
    """States by mean, lowest first, ties by state name A to Z."""
    return sorted(_state_means(numeric).items(), key=lambda item: (item[1], item[0]))


def _descending(numeric: list[Row]) -> list[tuple[str, float]]:
    """States by mean, highest first, ties still by state name A to Z."""
    return sorted(_state_means(numeric).items(), key=lambda item: (-item[1], item[0]))


def _global_mean(numeric: list[Row]) -> float:
    return _mean([row.value for row in numeric])  # type: ignore[misc]


def _lower_is_better(question: str) -> bool:
    if question in BEST_IS_MIN:
        return True
    if question in BEST_IS_MAX:
        return False
    raise ValueError(f"not one of the nine questions: {question!r}")


def _category_means(numeric: list[Row], state: str | None) -> list[tuple[tuple[str, ...], float]]:
    """Means by (state, category, stratum) (or (category, stratum) of one state), key-sorted.

    Rows with an empty category or stratum are left out.
    """
    groups: dict[tuple[str, ...], list[float]] = {}
    for row in numeric:
        if not row.category or not row.stratum:
            continue
        if state is None:
            key: tuple[str, ...] = (row.state, row.category, row.stratum)
        elif row.state == state:
            key = (row.category, row.stratum)
        else:
            continue
        groups.setdefault(key, []).append(row.value)  # type: ignore[arg-type]
    return [(key, _mean(groups[key])) for key in sorted(groups)]


def _states_mean(numeric: list[Row], question: str, state: str | None) -> dict:
    del question, state
    return dict(_ascending(numeric))


def _best5(numeric: list[Row], question: str, state: str | None) -> dict:
    del state
    ranking = _ascending if _lower_is_better(question) else _descending
    return dict(ranking(numeric)[:5])


def _worst5(numeric: list[Row], question: str, state: str | None) -> dict:
    del state
    ranking = _descending if _lower_is_better(question) else _ascending
    return dict(ranking(numeric)[:5])


def _global(numeric: list[Row], question: str, state: str | None) -> dict:
    del question, state
    return {"global_mean": _global_mean(numeric)}


def _diff_from_mean(numeric: list[Row], question: str, state: str | None) -> dict:
    del question, state
    overall = _global_mean(numeric)
    return {name: overall - mean for name, mean in _ascending(numeric)}


def _mean_by_category(numeric: list[Row], question: str, state: str | None) -> dict:
    del question, state
    return {str(key): mean for key, mean in _category_means(numeric, None)}


def _state_values(numeric: list[Row], state: str | None) -> list[float]:
    return [row.value for row in numeric if row.state == state]  # type: ignore[misc]


def _state_mean(numeric: list[Row], question: str, state: str | None) -> dict:
    del question
    values = _state_values(numeric, state)
    return {state: _mean(values)} if values else {}


def _state_diff_from_mean(numeric: list[Row], question: str, state: str | None) -> dict:
    del question
    values = _state_values(numeric, state)
    return {state: _global_mean(numeric) - _mean(values)} if values else {}


def _state_mean_by_category(numeric: list[Row], question: str, state: str | None) -> dict:
    del question
    return {state: {str(key): mean for key, mean in _category_means(numeric, state)}}


_ANSWERS: dict[str, Callable[[list[Row], str, str | None], dict]] = {
    "states_mean": _states_mean,
    "state_mean": _state_mean,
    "best5": _best5,
    "worst5": _worst5,
    "global_mean": _global,
    "diff_from_mean": _diff_from_mean,
    "state_diff_from_mean": _state_diff_from_mean,
    "mean_by_category": _mean_by_category,
    "state_mean_by_category": _state_mean_by_category,
}


def reference(endpoint: str, question: str, state: str | None, rows: Iterable[object]) -> dict:
    """Answer one job the naive way: the `data` a done job must hold, in contract order.

    Args:
        endpoint: one of `ENDPOINTS`.
        question: the question; any string (unknown ones simply have no rows), except that
            `best5` and `worst5` need one of the nine to know which way is better.
        state: the state for the `STATE_ENDPOINTS`; ignored by the others.
        rows: the dataset's rows, in any shape the module docstring lists.

    Raises:
        ValueError: unknown endpoint, a state endpoint without a state, or `best5`/`worst5` for
            a question that is not one of the nine.
    """
    if endpoint not in _ANSWERS:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    if endpoint in STATE_ENDPOINTS and state is None:
        raise ValueError(f"{endpoint} needs a state")
    numeric = _numeric_rows(question, rows)
    if not numeric:
        return {}
    return _ANSWERS[endpoint](numeric, question, state)
