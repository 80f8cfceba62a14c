"""The csv path's rows turned into the v2 row table and the course groups, a column at a time.

Why this exists: the csv module hands over one list of cells per row, and a Python statement
per row and column is what made the csv path slow (~10 s for 1M rows, twice the loader without
the row table). So the rows are read a batch at a time (`ROW_BATCH`, small enough to stay in
the CPU cache) and every step is a `map` over a batch, run in C:

- each row's text columns (all the entities', the group key's among them) are looked up, as one
  tuple, in a dict that numbers the distinct tuples (`_WideCodes`): the row keeps one integer,
  its *wide code*, and every text a row implies (its question's id, class, topic, its
  stratum's ids, its location's abbreviation) is then worked out once per distinct tuple, not
  once per row (the CDC file has no two rows alike; the 1M-row demo file has ~5 rows a tuple);
- the number cells are looked up by their text in a dict that numbers the distinct texts (values
  repeat: `29.6`): each is parsed once, by `table.number_or_nan` as on the arrow path.

Then the table's rows are ordered by one integer each, which packs the rank of the row's place
(its cell and footnote) and the ranks of its four numbers (NaN after every number): that one
sort gives the very order of `table.EstimateTable` (place, then value, low, high, sample size),
and the columns are unpacked from the sorted integers. The course groups are slices of the
sorted value column (`groups.course_groups`).
"""

from __future__ import annotations

import gc
import math
from array import array
from contextlib import contextmanager
from itertools import chain, islice, repeat
from operator import add, and_, itemgetter, lshift, or_, rshift
from typing import TYPE_CHECKING, Any, TypeVar

from lestats.data.groups import KEY_COLUMNS, course_groups
from lestats.data.table import (
    ENTITY_COLUMNS,
    NUMBER_COLUMNS,
    EstimateTable,
    Shape,
    canonical_order,
    code_type,
    number_or_nan,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from lestats.data.dataset import GroupKey

__all__ = [
    "KEY_COLUMNS",
    "ROW_BATCH",
    "TEXT_COLUMNS",
    "VALUE_COLUMN",
    "RowColumns",
    "collector_paused",
]

VALUE_COLUMN = "Data_Value"
TEXT_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys((*KEY_COLUMNS, *(name for names in ENTITY_COLUMNS.values() for name in names)))
)
"""The text columns a row is numbered by: every entity's (the group key's are among them)."""
ENTITY_ORDER = ("question", "stratum", "period", "location", "footnote")
"""The entities in the order a row's place packs them (see `table.Shape`)."""
_MASK_64 = (1 << 64) - 1
ROW_BATCH = 512
"""Rows handled a batch at a time: ~1 MB of cells for the CDC layout, which stays in cache."""


_K = TypeVar("_K")


class _Codes(dict[_K, int]):
    """Numbers what it is asked for in order of first sight: a hit costs no Python call."""

    def __missing__(self, key: _K) -> int:
        code = self[key] = len(self)
        return code


class _WideCodes(_Codes[tuple[str, ...]]):
    """`_Codes` of tuples of texts, which keeps each distinct text once.

    A lookup that hits compares the row's texts with the stored tuple's: when all stored
    tuples share their texts, those few hundred strings stay in the CPU cache, where ~200,000
    tuples of their own strings (the 1M-row demo file's) would cost a cache miss per text.
    """

    __slots__ = ("_texts",)

    def __init__(self) -> None:
        super().__init__()
        self._texts: dict[str, str] = {}

    def __missing__(self, key: tuple[str, ...]) -> int:
        code = self[tuple(map(self._texts.setdefault, key, key))] = len(self)
        return code


class RowColumns:
    """The kept columns of rows of the header's width, gathered a batch at a time.

    `names` maps each column to its position (`loader.column_indexes`); the columns the file
    lacks read as `""`.
    """

    __slots__ = (
        "_cells",
        "_numbers_of",
        "_present",
        "_rows",
        "_text_of",
        "_texts",
        "_wide",
        "_width",
        "malformed",
        "numbers_present",
    )

    def __init__(self, names: Mapping[str, int], width: int) -> None:
        self._width = width
        self._present = [name for name in TEXT_COLUMNS if name in names]
        self._text_of = _getter([names[name] for name in self._present])
        self._wide = _WideCodes()
        self._rows = array("I")
        """Each row's wide code."""
        self.numbers_present = [name for name in NUMBER_COLUMNS if name in names]
        self._numbers_of = _getter([names[name] for name in self.numbers_present])
        self._texts = _Codes[str]()
        """The distinct texts of the number cells (all columns: they share most texts)."""
        self._cells = array("I")
        """Each row's number cells as codes into `_texts`, a row after the other."""
        self.malformed = 0
        """Rows of another width than the header's (empty lines not counted)."""

    def __len__(self) -> int:
        return len(self._rows)

    def read(self, rows: Iterator[list[str]]) -> None:
        """Keep every row of `rows` of the header's width; count the other non-empty ones."""
        with collector_paused():
            self._read(rows)

    def _read(self, rows: Iterator[list[str]]) -> None:
        wide, codes, texts, cells = self._wide, self._rows, self._texts, self._cells
        text_of, numbers_of, width = self._text_of, self._numbers_of, self._width
        while batch := list(islice(rows, ROW_BATCH)):
            if len(set(map(len, batch))) != 1 or len(batch[0]) != width:
                batch = self._of_width(batch)
            codes.extend(map(wide.__getitem__, map(text_of, batch)))
            cells.extend(map(texts.__getitem__, chain.from_iterable(map(numbers_of, batch))))

    def _of_width(self, batch: list[list[str]]) -> list[list[str]]:
        good = [row for row in batch if len(row) == self._width]
        self.malformed += sum(1 for row in batch if row and len(row) != self._width)
        return good

    def build(self) -> tuple[dict[GroupKey, array[float]], int, EstimateTable]:
        """The groups, how many rows count in none, and the row table.

        Groups come in order of first row, each with its finite values in row order; a row whose
        value is no finite number counts in none.
        """
        with collector_paused():
            return self._build()

    def _build(self) -> tuple[dict[GroupKey, array[float]], int, EstimateTable]:
        wides: list[tuple[str, ...]] = list(self._wide)
        self._wide.clear()
        if len(self._present) < len(TEXT_COLUMNS):  # absent columns read as "" at the end
            wides = list(map(add, wides, repeat(("",))))
        position = {name: index for index, name in enumerate(self._present)}
        absent = len(self._present)

        def cells_of(names: Sequence[str]) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
            return _getter([position.get(name, absent) for name in names])

        words: dict[str, list[tuple[str, ...]]] = {}
        entity_of_wide: dict[str, list[int]] = {}
        for entity, names in ENTITY_COLUMNS.items():
            distinct = _Codes[tuple[str, ...]]()
            codes = list(map(distinct.__getitem__, map(cells_of(names), wides)))
            words[entity], remap = canonical_order(list(distinct))
            entity_of_wide[entity] = list(map(remap.__getitem__, codes))
        del wides
        table = self._table(words, entity_of_wide)
        groups, dropped = course_groups(words, table.keys, table.value)
        return groups, dropped, table

    def _column(self, name: str) -> array[int]:
        """The text codes of one number column, a row after the other."""
        step = len(self.numbers_present)
        return self._cells[self.numbers_present.index(name) :: step]

    def _table(
        self, words: dict[str, list[tuple[str, ...]]], entity_of_wide: dict[str, list[int]]
    ) -> EstimateTable:
        """The rows sorted by (place, value, low, high, sample size), NaN after every number.

        Each row becomes one integer, `place << 128 | value << 96 | low << 64 | high << 32 |
        sample size`, with each number replaced by its rank (`_ranks`), built and taken apart by
        `map`s over arrays; one integer sort orders the rows.
        """
        shape = Shape.of(words)
        footnotes = len(words["footnote"])
        place_of_wide = [
            shape.pack(question, stratum, period, location) * footnotes + footnote
            for question, stratum, period, location, footnote in zip(
                *(entity_of_wide[entity] for entity in ENTITY_ORDER), strict=True
            )
        ]
        del entity_of_wide
        place_rank = _dense_ranks(place_of_wide)
        key_of_rank = [0] * len(place_of_wide)
        footnote_of_rank = [0] * len(place_of_wide)
        for place, rank in zip(place_of_wide, place_rank, strict=True):
            key_of_rank[rank], footnote_of_rank[rank] = divmod(place, footnotes)
        del place_of_wide
        empty = self._texts[""]  # what an absent column reads as
        rank_of_text, number_of_rank = _ranks(self._texts)
        high, low = self._number_words(rank_of_text, rank_of_text[empty])
        ordered = list(
            map(
                or_,
                map(
                    lshift,
                    map(
                        or_, map(lshift, map(place_rank.__getitem__, self._rows), repeat(64)), high
                    ),
                    repeat(64),
                ),
                low,
            )
        )
        del place_rank, high, low
        ordered.sort()
        numbers = self._numbers_in_order(ordered, number_of_rank)
        ranks = array("I", map(rshift, ordered, repeat(128)))
        del ordered
        return EstimateTable(
            words,
            array("q", map(key_of_rank.__getitem__, ranks)),
            array(code_type(footnotes), map(footnote_of_rank.__getitem__, ranks)),
            numbers,
        )

    def _number_words(self, rank_of_text: list[int], empty: int) -> tuple[array[int], array[int]]:
        """Per row, `value << 32 | low` and `high << 32 | sample size`, by rank (NaN if absent).

        Built as the bytes of 32-bit ranks in little-endian order (low before value) read as
        64-bit words.
        """
        rows = len(self)
        ranks = array("I", map(rank_of_text.__getitem__, self._cells))
        step = len(self.numbers_present)
        # (value, low, high, sample size) go to the 32-bit slots 1, 0, 3, 2 of each row.
        slots = array("I", bytes(16 * rows))
        for slot, name in zip((1, 0, 3, 2), NUMBER_COLUMNS, strict=True):
            if name in self.numbers_present:
                slots[slot::4] = ranks[self.numbers_present.index(name) :: step]
            else:
                slots[slot::4] = array("I", [empty]) * rows
        del ranks
        words = array("Q", slots.tobytes())
        del slots
        return words[0::2], words[1::2]

    def _numbers_in_order(
        self, ordered: list[int], number_of_rank: list[float]
    ) -> list[array[float]]:
        """The four number columns of the sorted rows, taken out of their integers."""
        words = array("Q", bytes(16 * len(ordered)))
        words[0::2] = array("Q", map(and_, map(rshift, ordered, repeat(64)), repeat(_MASK_64)))
        words[1::2] = array("Q", map(and_, ordered, repeat(_MASK_64)))
        slots = array("I", words.tobytes())
        del words
        return [
            array("d", map(number_of_rank.__getitem__, slots[slot::4])) for slot in (1, 0, 3, 2)
        ]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (if it runs) while a dataset is built.

    The ~200,000 tuples and ~170,000 arrays built from 1M rows hold no reference cycles, but
    allocating them triggers collections that would walk them all again and again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _getter(indexes: list[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """The cells at `indexes` of a row, always as a tuple (even of one cell)."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda row: (row[only],)
    return itemgetter(*indexes)


def _dense_ranks(keys: Sequence[Any]) -> list[int]:
    """Each key's rank among the distinct keys, in ascending order (equal keys, equal ranks)."""
    ranks = [0] * len(keys)
    rank = -1
    previous: object = _NOTHING
    for index in sorted(range(len(keys)), key=keys.__getitem__):
        key = keys[index]
        if key != previous:
            rank += 1
            previous = key
        ranks[index] = rank
    return ranks


_NOTHING = object()


def _ranks(texts: Iterable[str]) -> tuple[list[int], list[float]]:
    """Per text, the rank of its number (`table.number_or_nan`); per rank, the number.

    NaN ranks after every number; equal numbers (`30`, `30.0`) share a rank.
    """
    numbers = list(map(number_or_nan, texts))
    rank_of_text = _dense_ranks([(math.isnan(n), 0.0 if math.isnan(n) else n) for n in numbers])
    number_of_rank = [0.0] * (max(rank_of_text, default=0) + 1)
    for number, rank in zip(numbers, rank_of_text, strict=True):
        number_of_rank[rank] = number
    return rank_of_text, number_of_rank
