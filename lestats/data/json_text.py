"""Pieces of JSON text for answers written straight from the table, as `jsonio.dumps` writes them.

Why this exists: a ranking's ~52 rows of 9 fields cost ~70 us to encode from dicts with the json
module, more than computing them, and ~40 % of that is `float.__repr__` (~130 ns a number). The
texts repeat across queries: values, limits and sample sizes are few distinct numbers (one
decimal), and locations, strata, questions, periods and footnotes are a few hundred entities.
So numbers' texts are remembered (up to `NUMBER_MEMO` of each kind, a dict lookup instead of a
repr), and each entity's fragment (`"location": "OH", "name": "Ohio"`) is written once per
table and reused by every query. Every text comes from `jsonio.text`, so the bytes are those of
`jsonio.dumps` of the same answer as dicts (tests/test_json_text.py checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from lestats import jsonio

if TYPE_CHECKING:
    from collections.abc import Callable

NUMBER_MEMO = 1 << 14
"""Distinct numbers whose text each memo keeps (~110 bytes each: at most ~2 MB for both)."""
DERIVED_MEMO = 64
"""Texts of tables and catalogs kept (a server has one table; tests load many): cleared when
full."""

NULL = "null"
TRUE = "true"
FALSE = "false"


class _NumberText(dict[float, str]):
    """A number's JSON text, NaN as `null` (no number); Infinity raises as `jsonio` does.

    A finite float's text is `float.__repr__`, as the json module writes it. Zero is never
    remembered: `-0.0 == 0.0`, so they would share one key and one text.
    """

    def __missing__(self, number: float) -> str:
        if number != number:  # noqa: PLR0124 - NaN, never equal to itself: no call
            return NULL
        if number - number != 0:  # infinite: jsonio refuses it with its own error
            return jsonio.text(number)
        text = repr(number)
        if number and len(self) < NUMBER_MEMO:
            self[number] = text
        return text


class _SizeText(dict[float, str]):
    """A sample size's JSON text: an integer without `.0` (as the CDC writes it), NaN as `null`.

    Sizes are more diverse than values (9,580 distinct in the CDC file, 805 values and limits):
    a miss costs ~0.2 us, a hit ~0.05 us.
    """

    def __missing__(self, size: float) -> str:
        if size.is_integer():  # False for NaN and infinities
            text = str(int(size))
        elif size != size:  # noqa: PLR0124 - NaN
            return NULL
        else:
            text = NUMBERS[size]
        if len(self) < NUMBER_MEMO:
            self[size] = text
        return text


NUMBERS: dict[float, str] = _NumberText()
"""`NUMBERS[x]`: the text of a value or confidence limit; `null` for NaN."""
PERCENT_TENTHS = 1000
"""0.1 to 100.0 in tenths, the CDC's precision: their texts are in `NUMBERS` from the start
(~1 ms at import, ~110 kB), so that a process's first jobs find them too (a cold ranking
took ~50 us more). `tenths / 10` is the float that `"29.6"` parses to (both are correctly
rounded)."""
NUMBERS.update((tenths / 10, repr(tenths / 10)) for tenths in range(1, PERCENT_TENTHS + 1))
SIZES: dict[float, str] = _SizeText()
"""`SIZES[x]`: the text of a sample size; `null` for NaN."""


_Source = TypeVar("_Source")
_Derived = TypeVar("_Derived")
_MEMO: dict[tuple[int, object], tuple[object, object]] = {}


def derived(anchor: object, build: Callable[[_Source], _Derived], source: _Source) -> _Derived:
    """`build(source)`, computed once per `anchor`: a small object of `source`'s own.

    E.g. a table's `shape` for texts of the whole table, a catalog's `places` tuple for texts
    of the places. Keyed by the anchor's identity, the anchor kept alive with the result so
    that its id is never another's; anchors are small (never a table's columns).
    """
    key = (id(anchor), build)
    found = _MEMO.get(key)
    if found is not None and found[0] is anchor:
        return found[1]  # type: ignore[return-value] # built by `build` for this anchor
    result = build(source)
    if len(_MEMO) >= DERIVED_MEMO:
        _MEMO.clear()
    _MEMO[key] = (anchor, result)
    return result
