"""The course statistics' groups, read off the sorted row table (both parsers build them so).

Why this exists: the nine course statistics need the numeric values of each group (question,
location, stratification, years, abbreviation: `dataset.GroupKey`). The row table
(`table.EstimateTable`) already holds every row's value sorted by cell (question x stratum x
period x location), and a group is made of whole cells (most groups are one cell; a question
text under two ids makes two), so each group's values are slices of the table's value column:
no second pass over the rows and no second grouping at load.

Values come in table order (by number) and groups in cell order, not in file order: no
statistic depends on either (sums are `math.fsum`, exact in any order). A value the table holds
as NaN (empty, not a number, withheld) counts in no group, as before; `-0` is `0.0` in the table,
which changes no statistic either (`fsum` of `-0.0` values is `0.0`).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from itertools import compress, count, islice, repeat
from operator import floordiv, mod, ne
from typing import TYPE_CHECKING

from lestats.data.table import Shape

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from lestats.data.dataset import GroupKey

__all__ = ["KEY_COLUMNS", "course_groups"]

KEY_COLUMNS: tuple[str, ...] = (
    "Question",
    "LocationDesc",
    "StratificationCategory1",
    "Stratification1",
    "YearStart",
    "YearEnd",
    "LocationAbbr",
)
"""The group key's columns, in `GroupKey` order (all of them entity columns of the table)."""


def course_groups(
    words: Mapping[str, Sequence[tuple[str, ...]]], keys: array[int], values: array[float]
) -> tuple[dict[GroupKey, array[float]], int]:
    """Each group's finite values, and how many rows have none.

    `words` are the table's entities as raw texts (`table.ENTITY_COLUMNS` order, absent columns
    `""`), `keys` its sorted cell keys and `values` its value column, in table order.
    """
    if not keys:
        return {}, 0
    starts = [0, *compress(count(1), map(ne, keys, islice(keys, 1, None)))]
    ends = [*islice(starts, 1, None), len(keys)]
    shape = Shape.of(words)
    cells = list(map(keys.__getitem__, starts))
    locations = list(map(mod, cells, repeat(shape.locations)))
    cells = list(map(floordiv, cells, repeat(shape.locations)))
    periods = list(map(mod, cells, repeat(shape.periods)))
    cells = list(map(floordiv, cells, repeat(shape.periods)))
    strata = list(map(mod, cells, repeat(shape.strata)))
    questions = map(floordiv, cells, repeat(shape.strata))
    del cells
    question, location, stratum, period = (
        words["question"],
        words["location"],
        words["stratum"],
        words["period"],
    )
    group_keys: list[GroupKey] = list(
        zip(
            map([q[0] for q in question].__getitem__, questions),
            map([loc[0] for loc in location].__getitem__, locations),
            map([s[0] for s in stratum].__getitem__, strata),
            map([s[2] for s in stratum].__getitem__, strata),
            map([p[0] for p in period].__getitem__, periods),
            map([p[1] for p in period].__getitem__, periods),
            map([loc[1] for loc in location].__getitem__, locations),
            strict=True,
        )
    )
    finite = list(map(values.__getitem__, map(slice, starts, ends)))
    nan_rows = compress(count(), map(ne, values, values))  # NaN: the number unequal to itself
    for cell in {bisect_right(starts, row) - 1 for row in nan_rows}:
        finite[cell] = array("d", [n for n in finite[cell] if n == n])  # noqa: PLR0124
    groups = dict(zip(group_keys, finite, strict=True))
    if len(groups) < len(group_keys):  # a group of several cells: join them
        groups = {}
        for key, part in zip(group_keys, finite, strict=True):
            groups[key] = groups[key] + part if key in groups else part
    return groups, len(keys) - sum(map(len, finite))
