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
from collections import deque
from contextlib import contextmanager
from itertools import chain, count, islice, repeat
from operator import add, and_, floordiv, itemgetter, lshift, mod, mul, or_, rshift
from typing import TYPE_CHECKING, TypeVar

from lestats.data.groups import KEY_COLUMNS, course_groups
from lestats.data.table import (
    ENTITY_COLUMNS,
    NUMBER_COLUMNS,
    EstimateTable,
    Shape,
    canonical_order,
    code_type,
    dense_ranks,
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
_RANK_BITS = 16
"""Bits of a number's rank in a row's sort key when the file has at most 65,536 number texts
(else twice as many)."""
_RANK_TYPES = {16: "H", 32: "I"}
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

    def _table(
        self, words: dict[str, list[tuple[str, ...]]], entity_of_wide: dict[str, list[int]]
    ) -> EstimateTable:
        """The rows sorted by (place, value, low, high, sample size), NaN after every number.

        Each row becomes one integer, `place << 64 | value << 48 | low << 32 | high << 16 |
        sample size`, with the place and each number replaced by its rank (`_ranks`; 32 bits a
        rank if the file has over 65,536 distinct numbers), built and taken apart by `map`s
        over arrays; one integer sort orders the rows.
        """
        shape = Shape.of(words)
        footnotes = len(words["footnote"])
        # `Shape.pack(question, stratum, period, location) * footnotes + footnote`, by maps.
        place_of_wide = entity_of_wide["question"]
        for entity, size in zip(
            ENTITY_ORDER[1:],
            (shape.strata, shape.periods, shape.locations, footnotes),
            strict=True,
        ):
            place_of_wide = list(
                map(add, map(mul, place_of_wide, repeat(size)), entity_of_wide[entity])
            )
        del entity_of_wide
        # Distinct texts make distinct places: a place's rank is its position once sorted.
        by_place = sorted(range(len(place_of_wide)), key=place_of_wide.__getitem__)
        place_rank = [0] * len(by_place)
        deque(map(place_rank.__setitem__, by_place, count()), maxlen=0)
        places = list(map(place_of_wide.__getitem__, by_place))
        del place_of_wide, by_place
        empty = self._texts[""]  # what an absent column reads as
        rank_of_text, number_of_rank = _ranks(self._texts)
        bits = _RANK_BITS if len(number_of_rank) <= 1 << _RANK_BITS else 2 * _RANK_BITS
        number_words = self._number_words(rank_of_text, rank_of_text[empty], bits)
        packed: Iterator[int] = map(place_rank.__getitem__, self._rows)
        for word in number_words:
            packed = map(or_, map(lshift, packed, repeat(64)), word)
        ordered = list(packed)
        del place_rank, number_words, packed
        ordered.sort()
        numbers = _numbers_in_order(ordered, number_of_rank, bits)
        ranks = array("I", map(rshift, ordered, repeat(bits * len(NUMBER_COLUMNS))))
        del ordered
        return EstimateTable(
            words,
            array("q", map(floordiv, map(places.__getitem__, ranks), repeat(footnotes))),
            array(
                code_type(footnotes), map(mod, map(places.__getitem__, ranks), repeat(footnotes))
            ),
            numbers,
        )

    def _number_words(self, rank_of_text: list[int], empty: int, bits: int) -> list[array[int]]:
        """Each row's number ranks (value first) packed in 64-bit words, most significant first.

        `bits` (16 or 32) bits a rank: one word a row, or two. Built as the bytes of the ranks
        in the little-endian order of the words' slots (`_slots`).
        """
        rows = len(self)
        typecode = _RANK_TYPES[bits]
        ranks = array(typecode, map(rank_of_text.__getitem__, self._cells))
        step = len(self.numbers_present)
        slots = array(typecode, bytes(rows * len(NUMBER_COLUMNS) * bits // 8))
        for slot, name in zip(_slots(bits), NUMBER_COLUMNS, strict=True):
            if name in self.numbers_present:
                slots[slot :: len(NUMBER_COLUMNS)] = ranks[self.numbers_present.index(name) :: step]
            else:
                slots[slot :: len(NUMBER_COLUMNS)] = array(typecode, [empty]) * rows
        del ranks
        words = array("Q", slots.tobytes())
        del slots
        per_row = len(words) // rows if rows else 1
        return [words[word::per_row] for word in range(per_row)]


def _slots(bits: int) -> list[int]:
    """Where each number's rank sits among a row's slots of `bits` bits (value, low, high, size).

    Words are little-endian and the row's first word the most significant: the value's rank
    must be the highest slot of the first word, and so on.
    """
    per_word = 64 // bits
    return [
        index // per_word * per_word + per_word - 1 - index % per_word
        for index in range(len(NUMBER_COLUMNS))
    ]


def _numbers_in_order(
    ordered: list[int], number_of_rank: list[float], bits: int
) -> list[array[float]]:
    """The four number columns of the sorted rows, taken out of their integers."""
    per_row = len(NUMBER_COLUMNS) * bits // 64
    words = array("Q", bytes(8 * per_row * len(ordered)))
    for word in range(per_row):
        shift = 64 * (per_row - 1 - word)
        words[word::per_row] = array(
            "Q",
            map(and_, map(rshift, ordered, repeat(shift)) if shift else ordered, repeat(_MASK_64)),
        )
    slots = array(_RANK_TYPES[bits], words.tobytes())
    del words
    return [
        array("d", map(number_of_rank.__getitem__, slots[slot :: len(NUMBER_COLUMNS)]))
        for slot in _slots(bits)
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


def _ranks(texts: Iterable[str]) -> tuple[list[int], list[float]]:
    """Per text, the rank of its number (`table.number_or_nan`); per rank, the number.

    NaN ranks after every number; equal numbers (`30`, `30.0`) share a rank.
    """
    numbers = list(map(number_or_nan, texts))
    rank_of_text = dense_ranks([(math.isnan(n), 0.0 if math.isnan(n) else n) for n in numbers])
    number_of_rank = [0.0] * (max(rank_of_text, default=0) + 1)
    for number, rank in zip(numbers, rank_of_text, strict=True):
        number_of_rank[rank] = number
    return rank_of_text, number_of_rank
