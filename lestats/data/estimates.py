"""The v2 query kinds over estimates: `estimates`, `trend`, `ranking`, `compare` (docs/queries.md).

Each is a pure function of (dataset, canonical query). `<kind>_json` writes the answer's JSON
straight from the table (what the Workers store: `Registry.encode`), byte for byte what
`jsonio.dumps` writes for the answer as dicts; `<kind>` returns its decoding, so the two have
one source. They read the row table by bisection (a cell is a slice), never scan the file. A
suppressed estimate (the CDC withheld it, or it has no number) is counted and listed, never
used as a number; a year or location without a number is a gap, never a zero.

When a cell holds several rows (duplicates; none in the CDC file), trend, ranking and compare
use its first row with a number in table order (numbers ascending), else its first row.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lestats import jsonio
from lestats.data import json_text
from lestats.data.catalog import direction
from lestats.data.estimate_rows import RowTexts, question_rows

if TYPE_CHECKING:
    from lestats.data.catalog import Catalog
    from lestats.data.dataset import Dataset
    from lestats.data.query import Query
    from lestats.data.table import EstimateTable

Result = dict[str, Any]

Z_95 = 1.96
"""|z| beyond which a two-sided difference is significant at 95 %."""
CI_WIDTH_IN_SE = 2 * Z_95
"""A 95 % CI is about this many standard errors wide: SE ~ (high - low) / 3.92."""
DIFFERENCE_DECIMALS = 10
COMPARE_METHOD = "approximate z-test from 95 % CIs, SE = (high - low) / 3.92"
SUPPRESSED = "suppressed"
NOT_ASKED = "not asked"
NO_DATA = "no data"
_SUPPRESSED_TEXT, _NOT_ASKED_TEXT, _NO_DATA_TEXT = map(
    jsonio.text, (SUPPRESSED, NOT_ASKED, NO_DATA)
)


class _Cells:
    """Lookups of one question's rows by stratum, year and location ids."""

    __slots__ = ("catalog", "questions", "shape", "table")

    def __init__(self, dataset: Dataset, question: str) -> None:
        self.table: EstimateTable = dataset.table
        self.catalog: Catalog = dataset.catalog
        self.shape = self.table.shape
        self.questions = self.catalog.question_codes[question]

    def starts(self, stratum: str, year: int) -> list[int]:
        """The key of location code 0 in each (question, stratum, period) of (stratum, year)."""
        catalog, pack = self.catalog, self.shape.pack
        return [
            pack(q, s, p, 0)
            for q in self.questions
            for s in catalog.stratum_codes.get(stratum, ())
            for p in catalog.period_codes.get(year, ())
        ]

    def rows(self, stratum: str, year: int, location: str) -> list[int]:
        """Every row of the cell, in table order."""
        cell = self.table.cell
        codes = self.catalog.location_codes.get(location, ())
        found = [
            row for start in self.starts(stratum, year) for c in codes for row in cell(start + c)
        ]
        return sorted(found) if len(found) > 1 else found

    def best_by_location(self, stratum: str, year: int) -> dict[int, int]:
        """The row standing for each location code's cell of (stratum, year) (see `best`).

        One slice per period; rows of a cell come in table order, so the first with a number
        is kept, else the first.
        """
        found: dict[int, int] = {}
        table = self.table
        keys, locations, suppressed = table.keys, self.shape.locations, table.suppressed
        starts = self.starts(stratum, year)
        if len(starts) == 1:  # the usual case: one slice, most often one row per location
            span = table.span(starts[0], starts[0] + locations)
            codes = [key - starts[0] for key in keys[span.start : span.stop]]
            if len(set(codes)) == len(codes):
                return dict(zip(codes, span, strict=True))
        for start in starts:
            for row in table.span(start, start + locations):
                code = keys[row] - start
                kept = found.get(code)
                if kept is None or (suppressed(kept) and not suppressed(row)):
                    found[code] = row
        if len(starts) > 1:  # several periods or codes of one id: keep table order among them
            return {code: self._first(code, found, starts) for code in found}
        return found

    def _first(self, code: int, found: dict[int, int], starts: list[int]) -> int:
        rows = sorted(row for start in starts for row in self.table.cell(start + code))
        best = self.best(rows)
        return found[code] if best is None else best

    def best_of(self, found: dict[int, int], codes: tuple[int, ...]) -> int | None:
        """The row standing for a location with several codes (names), from `found`."""
        return self.best(sorted(found[code] for code in codes if code in found))

    def best(self, rows: list[int]) -> int | None:
        """The row that stands for a cell: its first with a number, else its first."""
        suppressed = self.table.suppressed
        for row in rows:
            if not suppressed(row):
                return row
        return rows[0] if rows else None


def estimates(dataset: Dataset, query: Query) -> Result:
    """Every row of the question that passes the filters, sorted by location, year, stratum."""
    return jsonio.loads(estimates_json(dataset, query))  # type: ignore[no-any-return]


def estimates_json(dataset: Dataset, query: Query) -> bytes:
    """`estimates` as the Worker stores it: each row written as it is found, then sorted.

    The rows are found block by block (question, stratum, period: a contiguous run of keys,
    whose starts `estimate_rows.Blocks` keeps per question), and, with a location filter,
    each wanted location's row where a block with every location holds it (else by
    bisection); they are sorted (stably, as found) by an integer made of their entities'
    places in `RowTexts`.
    """
    catalog, table = dataset.catalog, dataset.table
    question = query.question or ""
    locations = _codes(catalog.location_codes, query.param("location"))
    strata = _codes(catalog.stratum_codes, query.param("stratum"))
    category = query.param("category")
    if isinstance(category, str):
        inside = set(catalog.category_codes.get(category, ()))
        strata = inside if strata is None else strata & inside
    years = query.param("year")
    periods = (
        None
        if not isinstance(years, tuple)
        else {p for year in years if isinstance(year, int) for p in catalog.period_codes[year]}
    )
    wanted = None if locations is None else sorted(locations)
    stratum_list = range(table.shape.strata) if strata is None else sorted(strata)
    period_list = range(table.shape.periods) if periods is None else sorted(periods)
    rows = [
        row
        for q in catalog.question_codes.get(question, ())
        for row in question_rows(table, q, stratum_list, period_list, wanted)
    ]
    texts, keys, suppressed = RowTexts.of(table).write(table, rows)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    written = ", ".join(map(texts.__getitem__, order))
    return f'{{"count": {len(order)}, "suppressed": {suppressed}, "rows": [{written}]}}'.encode()


def _codes(by_name: dict[str, tuple[int, ...]], names: object) -> set[int] | None:
    if not isinstance(names, tuple):
        return None
    return {code for name in names if isinstance(name, str) for code in by_name.get(name, ())}


def trend(dataset: Dataset, query: Query) -> Result:
    """One stratum of the question for each location, every year from its first to its last."""
    return jsonio.loads(trend_json(dataset, query))  # type: ignore[no-any-return]


def trend_json(dataset: Dataset, query: Query) -> bytes:
    """`trend` as the Worker stores it: each point written from the table."""
    question, stratum = query.question or "", str(query.param("stratum"))
    cells = _Cells(dataset, question)
    catalog, table = dataset.catalog, dataset.table
    value, low, high, size = table.value, table.low, table.high, table.sample_size
    withheld, footnote_codes, cell = table.withheld, table.footnote_codes, table.cell
    numbers, sizes = json_text.NUMBERS, json_text.SIZES
    asked = catalog.years.get(question, ())
    years = list(range(asked[0], asked[-1] + 1)) if asked else []
    starts = [
        (year, cells.starts(stratum, year), _NO_DATA_TEXT if year in asked else _NOT_ASKED_TEXT)
        for year in years
    ]
    named = json_text.derived(catalog.places, _Places, catalog.places).by_abbreviation
    series = []
    for location in _strings(query.param("location")):
        codes = catalog.location_codes[location]
        points: list[str] = []
        for year, year_starts, gap in starts:
            rows = [row for start in year_starts for c in codes for row in cell(start + c)]
            row = cells.best(sorted(rows) if len(rows) > 1 else rows)
            if row is None:
                points.append(f'{{"year": {year}, "value": null, "gap": {gap}}}')
            elif value[row] != value[row] or withheld[footnote_codes[row]]:
                points.append(f'{{"year": {year}, "value": null, "gap": {_SUPPRESSED_TEXT}}}')
            else:
                points.append(
                    f'{{"year": {year}, "value": {numbers[value[row]]}, '
                    f'"low": {numbers[low[row]]}, "high": {numbers[high[row]]}, '
                    f'"sample_size": {sizes[size[row]]}}}'
                )
        series.append(f'{{{named[location]}, "points": [{", ".join(points)}]}}')
    return (
        f'{{"years": [{", ".join(map(str, years))}], "stratum": {jsonio.text(stratum)}, '
        f'"series": [{", ".join(series)}]}}'
    ).encode()


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, tuple):
        return tuple(item for item in value if isinstance(item, str))
    return (value,) if isinstance(value, str) else ()


def ranking(dataset: Dataset, query: Query) -> Result:
    """Every state and territory with a number, best first, ties sharing a rank (decoded)."""
    return jsonio.loads(ranking_json(dataset, query))  # type: ignore[no-any-return]


def ranking_json(dataset: Dataset, query: Query) -> bytes:
    """`ranking` as the Worker stores it: the JSON written from the table, no dicts between."""
    question, stratum = query.question or "", str(query.param("stratum"))
    year = query.param("year")
    catalog, table = dataset.catalog, dataset.table
    cells = _Cells(dataset, question)
    best = cells.best_by_location(stratum, year) if isinstance(year, int) else {}
    value, withheld, footnote_codes = table.value, table.withheld, table.footnote_codes
    way = direction(catalog.questions[question]) if question in catalog.questions else None
    sign = 1.0 if way == "min" else -1.0
    places = json_text.derived(catalog.places, _Places, catalog.places)
    texts, national = places.texts, places.national
    rows = list(map(best.get, places.codes))  # -1 (no single code): None
    for index in places.several:
        rows[index] = cells.best_of(best, catalog.places[index][3])
    reference = json_text.NULL
    ranked: list[tuple[float, int, int]] = []
    no_data: list[str] = []
    for index, row in enumerate(rows):
        if row is not None:
            number = value[row]
            if number == number and not withheld[footnote_codes[row]]:  # noqa: PLR0124 - NaN
                if not national[index]:
                    ranked.append((sign * number, index, row))
                elif reference is json_text.NULL:
                    reference = f"{{{texts[index]}, {_numbers_text(table, row)}}}"
                continue
        if not national[index]:
            reason = _NO_DATA_TEXT if row is None else _SUPPRESSED_TEXT
            no_data.append(f'{{{texts[index]}, "reason": {reason}}}')
    ranked.sort()  # ties by place, i.e. by abbreviation
    return (
        f'{{"year": {jsonio.text(year)}, "stratum": {jsonio.text(stratum)}, '
        f'"direction": {_DIRECTION_TEXTS[way]}, "reference": {reference}, '
        f'"rows": [{_ranked(table, places.texts, ranked)}], "no_data": [{", ".join(no_data)}]}}'
    ).encode()


_DIRECTION_TEXTS = {way: jsonio.text(way) for way in ("min", "max", None)}


class _Places:
    """The catalog's places as rankings read them, built once per catalog.

    `texts`: each one's `"location": ..., "name": ...` (and `by_abbreviation`); `codes`: its
    location code, or -1 when it has none or several (`several` lists those); `national`:
    whether it is (US).
    """

    __slots__ = ("by_abbreviation", "codes", "national", "several", "texts")

    def __init__(self, places: tuple[tuple[str, str, str, tuple[int, ...]], ...]) -> None:
        text = jsonio.text
        self.texts = tuple(
            f'"location": {text(abbr)}, "name": {text(name)}' for abbr, name, _, _ in places
        )
        self.codes = tuple(codes[0] if len(codes) == 1 else -1 for _, _, _, codes in places)
        self.several = tuple(i for i, (_, _, _, codes) in enumerate(places) if len(codes) > 1)
        self.national = tuple(kind == "national" for _, _, kind, _ in places)
        self.by_abbreviation = dict(
            zip((abbr for abbr, _, _, _ in places), self.texts, strict=True)
        )


def _numbers_text(table: EstimateTable, row: int) -> str:
    """The value, CI and sample size of a row with a number."""
    numbers, size = json_text.NUMBERS, json_text.SIZES[table.sample_size[row]]
    return (
        f'"value": {numbers[table.value[row]]}, "low": {numbers[table.low[row]]}, '
        f'"high": {numbers[table.high[row]]}, "sample_size": {size}'
    )


def _ranked(
    table: EstimateTable, named: tuple[str, ...], numbered: list[tuple[float, int, int]]
) -> str:
    """The ranked rows: competition ranks (1, 2, 2, 4), whether each CI overlaps its neighbours'.

    The overlap is null when either has no interval, false at the ends. One plain loop with
    as few calls as can be (NaN tests by `!=`, max and min by comparisons, numbers' texts from
    memos): this runs for every ranking job, ~50 rows each, within a budget of 100 us.
    """
    value, low, high, size = table.value, table.low, table.high, table.sample_size
    numbers, sizes = json_text.NUMBERS, json_text.SIZES
    true, false, null = json_text.TRUE, json_text.FALSE, json_text.NULL
    rows: list[str] = []
    append = rows.append
    head = ""
    previous_value = previous_low = previous_high = math.nan
    rank = 0
    overlaps = false
    for position, (_, index, row) in enumerate(numbered, start=1):
        number, lo, hi = value[row], low[row], high[row]
        if position > 1:
            if number != previous_value:
                rank = position
            no_interval = lo != lo or hi != hi  # noqa: PLR0124 - NaN, without a call
            if no_interval or previous_low != previous_low or previous_high != previous_high:  # noqa: PLR0124
                overlaps = null
            else:  # max(lows) <= min(highs), without the calls
                top = previous_low if previous_low > lo else lo  # noqa: FURB136
                bottom = previous_high if previous_high < hi else hi  # noqa: FURB136
                overlaps = true if top <= bottom else false
            append(f"{head}{overlaps}}}")
        else:
            rank = 1
        head = (
            f'{{"rank": {rank}, {named[index]}, "value": {numbers[number]}, '
            f'"low": {numbers[lo]}, "high": {numbers[hi]}, "sample_size": {sizes[size[row]]}, '
            f'"overlaps_previous": {overlaps}, "overlaps_next": '
        )
        previous_value, previous_low, previous_high = number, lo, hi
    if head:
        append(f"{head}{false}}}")
    return ", ".join(rows)


def compare(dataset: Dataset, query: Query) -> Result:
    """Two estimates that differ in one of location, year, stratum; b - a and a z-test."""
    return jsonio.loads(compare_json(dataset, query))  # type: ignore[no-any-return]


def compare_json(dataset: Dataset, query: Query) -> bytes:
    """`compare` as the Worker stores it: the two estimates written from the table."""
    question, table = query.question or "", dataset.table
    cells = _Cells(dataset, question)
    sides = _sides(query)
    rows = [cells.best(cells.rows(stratum, year, location)) for location, year, stratum in sides]
    written, _, _ = RowTexts.of(table).write(table, [row for row in rows if row is not None])
    estimates = iter(written)
    texts, facts = [], []
    for row, side in zip(rows, sides, strict=True):
        if row is None:
            missing = _missing(dataset, question, *side)
            texts.append(jsonio.text(missing))
            facts.append(missing)
        else:
            texts.append(next(estimates))
            facts.append(_facts(table, row))
    test = jsonio.text(_test(*facts))[1:-1]  # its members
    return (
        f'{{"a": {texts[0]}, "b": {texts[1]}, {test}, "method": {_COMPARE_METHOD_TEXT}}}'.encode()
    )


def _facts(table: EstimateTable, row: int) -> Result:
    """What the test reads of an estimate (`RowTexts.write` writes the same, and more)."""
    _, stratum, period, location = table.shape.unpack(table.keys[row])
    number, low, high = table.value[row], table.low[row], table.high[row]
    suppressed = table.suppressed(row)
    return {
        "location": table.locations[location].abbr,
        "year": table.periods[period].year,
        "stratum": table.strata[stratum].id or None,
        "suppressed": suppressed,
        "value": None if suppressed else number,
        "low": None if suppressed or low != low else low,  # noqa: PLR0124 - NaN: no limit
        "high": None if suppressed or high != high else high,  # noqa: PLR0124
    }


_COMPARE_METHOD_TEXT = jsonio.text(COMPARE_METHOD)


def _sides(query: Query) -> list[tuple[str, int, str]]:
    values = {name: query.param(name) for name in ("location", "year", "stratum")}
    sides = []
    for index in (0, 1):
        picked = [v[index] if isinstance(v, tuple) else v for v in values.values()]
        location, year, stratum = picked
        sides.append((str(location), year if isinstance(year, int) else 0, str(stratum)))
    return sides


def _missing(dataset: Dataset, question: str, location: str, year: int, stratum: str) -> Result:
    """The side of a comparison that has no row at all."""
    catalog = dataset.catalog
    found = catalog.strata.get(stratum)
    return {
        "question": question,
        "location": location,
        "name": catalog.locations[location].name if location in catalog.locations else None,
        "year": year,
        "category": found.category_id if found else None,
        "category_name": found.category if found else None,
        "stratum": stratum,
        "stratum_name": found.name if found else None,
        "value": None,
        "low": None,
        "high": None,
        "sample_size": None,
        "suppressed": False,
        "footnote": None,
    }


def _why_missing(side: str, item: Result) -> str | None:
    what = f"{side} ({item['location']} {item['year']} {item['stratum']})"
    if item["suppressed"]:
        return f"{what} is suppressed by the CDC"
    if item["value"] is None:
        return f"{what} has no data"
    if item["low"] is None or item["high"] is None:
        return f"{what} has no confidence interval"
    return None


def _rounded(difference: float) -> float:
    """The difference without float noise (37.8 - 29.6 is 8.199999999999996): 10 decimals."""
    return round(difference, DIFFERENCE_DECIMALS)


def _test(a: Result, b: Result) -> Result:
    """The approximate z-test of docs/queries.md, or nulls and the reason it cannot be done."""
    reasons = [r for r in (_why_missing("a", a), _why_missing("b", b)) if r is not None]
    nothing: Result = {"difference": None, "z": None, "p_value": None, "significant": None}
    if reasons:
        difference = None if None in (a["value"], b["value"]) else _rounded(b["value"] - a["value"])
        return {**nothing, "difference": difference, "reason": "; ".join(reasons)}
    difference = b["value"] - a["value"]
    se_a = (a["high"] - a["low"]) / CI_WIDTH_IN_SE
    se_b = (b["high"] - b["low"]) / CI_WIDTH_IN_SE
    se = math.hypot(se_a, se_b)
    if se == 0:
        return {**nothing, "difference": _rounded(difference), "reason": "no interval has a width"}
    z = difference / se
    return {
        "difference": _rounded(difference),
        "z": z,
        "p_value": math.erfc(abs(z) / math.sqrt(2)),
        "significant": abs(z) > Z_95,
    }
