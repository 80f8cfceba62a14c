"""The rows of an `estimates` answer (and of `compare`'s two): found in the table, written.

Why this exists: an `estimates` answer is often hundreds of rows of 14 fields; building a dict
for each and encoding it cost ~6 us a row. Here the rows are found by the blocks of keys they
sit in (`question_rows`, `Blocks`) and written straight to JSON text from per-table fragments
(`RowTexts`), byte for byte what `jsonio.dumps` writes for the rows as dicts.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING

from lestats import jsonio
from lestats.data import json_text
from lestats.data.table import dense_ranks

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lestats.data.table import EstimateTable


class RowTexts:
    """The JSON fragments of a table's entities as an estimate shows them, and their order.

    Built once per table (`json_text.derived`); `*_order` rank each code as `estimates` sorts
    its rows: by location abbreviation, year (none as 0), category id, stratum id.
    """

    __slots__ = (
        "footnotes",
        "location_order",
        "locations",
        "period_order",
        "periods",
        "questions",
        "strata",
        "stratum_order",
    )

    def __init__(self, table: EstimateTable) -> None:
        text = jsonio.text
        self.questions = tuple(f'"question": {text(q.id)}' for q in table.questions)
        self.locations = tuple(
            f'"location": {text(loc.abbr)}, "name": {text(loc.name)}' for loc in table.locations
        )
        self.periods = tuple(f'"year": {text(period.year)}' for period in table.periods)
        self.strata = tuple(
            f'"category": {text(s.category_id or None)}, '
            f'"category_name": {text(s.category or None)}, '
            f'"stratum": {text(s.id or None)}, "stratum_name": {text(s.name or None)}'
            for s in table.strata
        )
        self.footnotes = tuple(text(f.text or f.symbol or None) for f in table.footnotes)
        self.location_order = dense_ranks([loc.abbr for loc in table.locations])
        self.period_order = dense_ranks([period.year or 0 for period in table.periods])
        self.stratum_order = dense_ranks([(s.category_id, s.id) for s in table.strata])

    @staticmethod
    def of(table: EstimateTable) -> RowTexts:
        """The texts of `table`'s entities (built on first use)."""
        return json_text.derived(table.shape, RowTexts, table)

    def write(self, table: EstimateTable, rows: list[int]) -> tuple[list[str], list[int], int]:
        """Each row's estimate, its sort key, and how many of them are suppressed."""
        value, low, high, size = table.value, table.low, table.high, table.sample_size
        withheld, footnote_codes, cell_keys = table.withheld, table.footnote_codes, table.keys
        numbers, sizes, footnotes = json_text.NUMBERS, json_text.SIZES, self.footnotes
        questions, locations, periods, strata = (
            self.questions,
            self.locations,
            self.periods,
            self.strata,
        )
        location_order, period_order, stratum_order = (
            self.location_order,
            self.period_order,
            self.stratum_order,
        )
        width, period_count, stratum_count = (
            table.shape.locations,
            table.shape.periods,
            table.shape.strata,
        )
        texts: list[str] = []
        keys: list[int] = []
        append_text, append_key = texts.append, keys.append
        suppressed = 0
        period_step = len(stratum_order)
        location_step = len(period_order) * period_step
        for row in rows:
            rest, location = divmod(cell_keys[row], width)
            rest, period = divmod(rest, period_count)
            question, stratum = divmod(rest, stratum_count)
            number, footnote = value[row], footnote_codes[row]
            if number != number or withheld[footnote]:  # noqa: PLR0124 - NaN: suppressed
                suppressed += 1
                append_text(
                    f"{{{questions[question]}, {locations[location]}, {periods[period]}, "
                    f'{strata[stratum]}, "value": null, "low": null, "high": null, '
                    f'"sample_size": {sizes[size[row]]}, "suppressed": true, '
                    f'"footnote": {footnotes[footnote]}}}'
                )
            else:
                append_text(
                    f"{{{questions[question]}, {locations[location]}, {periods[period]}, "
                    f'{strata[stratum]}, "value": {numbers[number]}, '
                    f'"low": {numbers[low[row]]}, "high": {numbers[high[row]]}, '
                    f'"sample_size": {sizes[size[row]]}, "suppressed": false, '
                    f'"footnote": {footnotes[footnote]}}}'
                )
            append_key(
                location_order[location] * location_step
                + period_order[period] * period_step
                + stratum_order[stratum]
            )
        return texts, keys, suppressed


class Blocks:
    """Where each block (question, stratum, period) of a table begins, per question code.

    `starts(table, q)`: S x P + 1 row positions, block (s, p) being the rows from
    `starts[s * P + p]` to the next start. Built on a question's first use: one bisection per
    block that follows a block with rows (~170 on a CDC question, ~0.2 ms), then kept (S x P +
    1 integers per question, 8 bytes each). It holds no reference to the table
    (`json_text.derived` keeps one `Blocks` per table, by its shape).
    """

    __slots__ = ("_by_question",)

    def __init__(self, _table: EstimateTable) -> None:
        self._by_question: dict[int, array[int]] = {}

    def starts(self, table: EstimateTable, q: int) -> array[int]:
        """The first row of each block of question code `q`, and the end of its rows."""
        found = self._by_question.get(q)
        if found is None:
            keys, shape = table.keys, table.shape
            width, blocks = shape.locations, shape.strata * shape.periods
            base = shape.pack(q, 0, 0, 0)
            end = bisect_left(keys, base + blocks * width)
            position = bisect_left(keys, base, 0, end)
            found = array("q")
            for block in range(blocks + 1):
                key = base + block * width
                if position < end and keys[position] < key:
                    position = bisect_left(keys, key, position, end)
                found.append(position)
            self._by_question[q] = found
        return found


def question_rows(
    table: EstimateTable,
    q: int,
    strata: Sequence[int],
    periods: Sequence[int],
    wanted: list[int] | None,
) -> list[int]:
    """The rows of question code `q` in (strata x periods), in table order.

    Only those of the `wanted` location codes (sorted), if given: in a block that holds every
    location from its first, code `c` is at `first row + c - first code`; that guess is
    checked, and only a wrong one costs a bisection (within the block).
    """
    keys, shape = table.keys, table.shape
    width, period_count = shape.locations, shape.periods
    starts = json_text.derived(shape, Blocks, table).starts(table, q)
    base = shape.pack(q, 0, 0, 0)
    found: list[int] = []
    append = found.append
    for s in strata:
        for p in periods:
            block = s * period_count + p
            first, last = starts[block], starts[block + 1]
            if first == last:
                continue
            if wanted is None:
                found.extend(range(first, last))
                continue
            start = base + block * width
            first_code, position = keys[first] - start, first
            for code in wanted:
                key, row = start + code, first + code - first_code
                if not (
                    position <= row < last
                    and keys[row] == key
                    and (row == position or keys[row - 1] < key)
                ):
                    row = bisect_left(keys, key, position, last)
                while row < last and keys[row] == key:
                    append(row)
                    row += 1
                position = row
    return found
