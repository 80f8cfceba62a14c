"""A job's result as a plain-text table for a terminal, in the order the result gives.

Results are JSON objects: `{state: number}` for most statistics, `{"global_mean": number}`,
string-of-tuple keys for the by-category ones (`"('Ohio', 'Income', '$75,000 or greater')"`),
and one level of nesting for `state_mean_by_category`. Each becomes rows of labelled columns;
rankings get a rank column. Numbers are shown with two decimals (the data's own precision is
one); `--json` on the command line prints the exact values instead.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

RANKED = frozenset({"states_mean", "best5", "worst5", "diff_from_mean"})
"""Statistics whose answer is an ordering of states: their rows are numbered."""
_VALUE_NAMES = {"diff_from_mean": "global - state", "state_diff_from_mean": "global - state"}
_BY_CATEGORY = ("state", "category", "stratum")


def _key_parts(key: str) -> tuple[str, ...]:
    """`"('a', 'b')"` -> ('a', 'b'); any other key is one part."""
    if key.startswith("("):
        try:
            parts = ast.literal_eval(key)
        except (ValueError, SyntaxError):
            return (key,)
        if isinstance(parts, tuple) and all(isinstance(part, str) for part in parts):
            return parts
    return (key,)


def rows_of(data: object) -> list[tuple[tuple[str, ...], object]]:
    """The result as (key parts, value) rows; nested objects add their parent's key."""
    if not isinstance(data, dict):
        return [((), data)]
    rows: list[tuple[tuple[str, ...], object]] = []
    for key, value in data.items():
        parts = _key_parts(str(key))
        if isinstance(value, dict):
            rows.extend(((*parts, *inner), leaf) for inner, leaf in rows_of(value))
        else:
            rows.append((parts, value))
    return rows


def _number(value: object) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{value:.2f}"
    return str(value)


def render(statistic: str, data: object) -> str:
    """The table of `data`, the result of a `statistic` job (no trailing newline)."""
    rows = rows_of(data)
    if not rows:
        return "(no data)"
    width = max(len(parts) for parts, _ in rows)
    names: Sequence[str] = _BY_CATEGORY[:width] if width > 1 else ("state",)
    if statistic == "global_mean":
        names = ("",)
    header = [*names, _VALUE_NAMES.get(statistic, "mean")]
    body = [[*parts, *[""] * (width - len(parts)), _number(value)] for parts, value in rows]
    if statistic in RANKED:
        header.insert(0, "#")
        for rank, row in enumerate(body, 1):
            row.insert(0, str(rank))
    table = [header, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {0, len(header) - 1} if statistic in RANKED else {len(header) - 1}

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        )
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body)])
