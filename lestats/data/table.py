"""Every row of the file as the v2 queries see it: one estimate per row, in compact columns.

Why this exists: the nine course statistics need only values grouped by key (`Dataset.groups`);
the queries of docs/queries.md need each row's confidence interval, sample size, footnote and
ids, looked up by question x stratum x year x location. Keeping a Python object per row would
cost ~10 times the memory, so the rows are kept as columns:

- five *entities* (question, location, stratum, period, footnote), each a sorted tuple of the
  distinct combinations of its columns' texts, with each row's entity as a small integer code;
- four numbers per row (value, low, high, sample size) in `array('d')`, NaN where the cell is
  empty or not a number (`numbers.parse_number` decides, for both parsers).

Rows are sorted by (question, stratum, period, location, footnote, value, low, high, sample
size), NaN after every number, so the table does not depend on the file's row order or on the
parser, and its fingerprint is a hash of its bytes. The first four codes of a row are packed in
one integer `keys[i]` (sorted too), so that every cell (question x stratum x period x location)
and every prefix of it is a contiguous slice found by bisection.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lestats import jsonio
from lestats.data.numbers import parse_number

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

ENTITY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "question": ("Question", "QuestionID", "Class", "Topic", "Data_Value_Unit"),
    "location": ("LocationDesc", "LocationAbbr"),
    "stratum": (
        "StratificationCategory1",
        "StratificationCategoryId1",
        "Stratification1",
        "StratificationID1",
    ),
    "period": ("YearStart", "YearEnd"),
    "footnote": ("Data_Value_Footnote_Symbol", "Data_Value_Footnote"),
}
"""Each entity's columns (names after stripping); a column the file lacks reads as `""`."""
NUMBER_COLUMNS: tuple[str, ...] = (
    "Data_Value",
    "Low_Confidence_Limit",
    "High_Confidence_Limit",
    "Sample_Size",
)
"""The numeric columns kept per row, in the order of `EstimateTable.numbers`."""
KEPT_COLUMNS: tuple[str, ...] = (
    *(name for columns in ENTITY_COLUMNS.values() for name in columns),
    *NUMBER_COLUMNS,
)
"""Every column the table reads."""
SUPPRESSED_SYMBOL = "~"
"""The CDC's footnote symbol for a value withheld because the sample is too small."""
NATIONAL = frozenset({"US"})
TERRITORIES = frozenset({"AS", "GU", "MP", "PR", "VI"})


@dataclass(frozen=True, slots=True)
class Question:
    """A question as the file names it; `id` is its `QuestionID`, or its text if it has none."""

    text: str
    id: str
    class_: str
    topic: str
    unit: str


@dataclass(frozen=True, slots=True)
class Location:
    """A location; `abbr` is its `LocationAbbr`, or its name if it has none."""

    name: str
    abbr: str

    @property
    def kind(self) -> str:
        """`national` (US), `territory` (GU, PR, VI, ...) or `state` (the 50 and DC)."""
        if self.abbr in NATIONAL or self.name == "National":
            return "national"
        if self.abbr in TERRITORIES:
            return "territory"
        return "state"


@dataclass(frozen=True, slots=True)
class Stratum:
    """A stratification pair with its ids (the names where the file has no id)."""

    category: str
    category_id: str
    name: str
    id: str

    @property
    def empty(self) -> bool:
        """Whether the row belongs to no stratum (9 rows of New Jersey 2019 in the CDC file)."""
        return not (self.category or self.name)


@dataclass(frozen=True, slots=True)
class Period:
    """`YearStart` and `YearEnd` as written; `year` is YearStart when it is a plain year."""

    start: str
    end: str

    @property
    def year(self) -> int | None:
        """The year of the estimate, or None when `YearStart` is not a year."""
        text = self.start.strip()
        if text.isascii() and text.isdigit() and len(text) <= 4:  # noqa: PLR2004 - a year
            return int(text)
        return None


@dataclass(frozen=True, slots=True)
class Footnote:
    """The footnote symbol and text of a row (both empty when it has none)."""

    symbol: str
    text: str


def _question(cells: tuple[str, ...]) -> Question:
    text, qid, class_, topic, unit = cells
    return Question(text, qid.strip() or text, class_, topic, unit)


def _location(cells: tuple[str, ...]) -> Location:
    name, abbr = cells
    return Location(name, abbr.strip() or name)


def _stratum(cells: tuple[str, ...]) -> Stratum:
    category, category_id, name, sid = cells
    return Stratum(category, category_id.strip() or category, name, sid.strip() or name)


def _period(cells: tuple[str, ...]) -> Period:
    return Period(*cells)


def _footnote(cells: tuple[str, ...]) -> Footnote:
    return Footnote(*cells)


def canonical_order(words: Sequence[tuple[str, ...]]) -> tuple[list[tuple[str, ...]], list[int]]:
    """The distinct texts sorted, and for each old code its new one (both parsers use this)."""
    ordered = sorted(range(len(words)), key=words.__getitem__)
    remap = [0] * len(words)
    for new, old in enumerate(ordered):
        remap[old] = new
    return [words[old] for old in ordered], remap


def dense_ranks(keys: Sequence[Any]) -> list[int]:
    """Each key's place among the distinct keys, in ascending order (equal keys, equal places)."""
    place = {key: index for index, key in enumerate(sorted(set(keys)))}
    return [place[key] for key in keys]


def code_type(count: int) -> str:
    """The `array` type of codes into `count` entities (footnotes: a handful)."""
    return "H" if count <= 1 << 16 else "I"


class EstimateTable:
    """The rows, sorted and packed; see the module docstring. Immutable once built."""

    __slots__ = (
        "_fingerprint",
        "footnote_codes",
        "footnotes",
        "high",
        "keys",
        "locations",
        "low",
        "periods",
        "questions",
        "sample_size",
        "shape",
        "strata",
        "value",
        "withheld",
    )

    def __init__(
        self,
        words: Mapping[str, Sequence[tuple[str, ...]]],
        keys: array[int],
        footnote_codes: array[int],
        numbers: Sequence[array[float]],
    ) -> None:
        """Take sorted, canonical columns (built by `row_columns` or the arrow loader)."""
        self.questions: tuple[Question, ...] = tuple(map(_question, words["question"]))
        self.locations: tuple[Location, ...] = tuple(map(_location, words["location"]))
        self.strata: tuple[Stratum, ...] = tuple(map(_stratum, words["stratum"]))
        self.periods: tuple[Period, ...] = tuple(map(_period, words["period"]))
        self.footnotes: tuple[Footnote, ...] = tuple(map(_footnote, words["footnote"]))
        self.withheld: tuple[bool, ...] = tuple(
            f.symbol.strip() == SUPPRESSED_SYMBOL for f in self.footnotes
        )
        """Per footnote code: whether the CDC withheld the value (see `suppressed`)."""
        self.shape = Shape(len(self.strata), len(self.periods), len(self.locations))
        """How keys pack the four codes."""
        self.keys = keys
        self.footnote_codes = footnote_codes
        self.value, self.low, self.high, self.sample_size = numbers
        self._fingerprint: str | None = None

    # --- shape and lookups -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.keys)

    def span(self, low_key: int, high_key: int) -> range:
        """The rows whose key is in [low_key, high_key)."""
        return range(bisect_left(self.keys, low_key), bisect_left(self.keys, high_key))

    def cell(self, key: int) -> list[int]:
        """The rows whose key is `key` (one bisection: most cells hold one row)."""
        keys = self.keys
        first = bisect_left(keys, key)
        end = first
        size = len(keys)
        while end < size and keys[end] == key:
            end += 1
        return list(range(first, end))

    def suppressed(self, row: int) -> bool:
        """Whether the CDC withheld the row's value (footnote `~`), or it has no number."""
        return self.withheld[self.footnote_codes[row]] or math.isnan(self.value[row])

    def rows_with(self, question: int) -> Iterator[int]:
        """Every row of the question code, in table order."""
        shape = self.shape
        return iter(self.span(shape.pack(question, 0, 0, 0), shape.pack(question + 1, 0, 0, 0)))

    # --- fingerprint -----------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """sha256 of the rows in canonical form (hex), computed on first use.

        The same for the same rows in any order, whichever parser read them.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for entity in (self.questions, self.locations, self.strata, self.periods):
                digest.update(jsonio.dumps([_cells(item) for item in entity]))
            digest.update(jsonio.dumps([_cells(item) for item in self.footnotes]))
            digest.update(self.keys.tobytes())
            digest.update(array("I", self.footnote_codes).tobytes())
            for column in (self.value, self.low, self.high, self.sample_size):
                digest.update(column.tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


def _cells(item: Question | Location | Stratum | Period | Footnote) -> list[str]:
    if isinstance(item, Question):
        return [item.text, item.id, item.class_, item.topic, item.unit]
    if isinstance(item, Location):
        return [item.name, item.abbr]
    if isinstance(item, Stratum):
        return [item.category, item.category_id, item.name, item.id]
    if isinstance(item, Period):
        return [item.start, item.end]
    return [item.symbol, item.text]


@dataclass(frozen=True, slots=True)
class Shape:
    """How the question, stratum, period and location codes pack into one sortable integer."""

    strata: int
    periods: int
    locations: int

    @classmethod
    def of(cls, words: Mapping[str, Sequence[tuple[str, ...]]]) -> Shape:
        """The shape of a table with these entities."""
        return cls(len(words["stratum"]), len(words["period"]), len(words["location"]))

    def pack(self, question: int, stratum: int, period: int, location: int) -> int:
        """The key of a cell; with trailing zeros, the first key of a prefix."""
        return ((question * self.strata + stratum) * self.periods + period) * self.locations + (
            location
        )

    def unpack(self, key: int) -> tuple[int, int, int, int]:
        """(question, stratum, period, location) of a key."""
        rest, location = divmod(key, self.locations)
        rest, period = divmod(rest, self.periods)
        question, stratum = divmod(rest, self.strata)
        return question, stratum, period, location


def number_or_nan(text: str) -> float:
    """The cell's number for the table: NaN when it is none.

    `-0` reads as `0.0`: equal numbers have equal bytes, which the fingerprint hashes.
    """
    number = parse_number(text)
    return math.nan if number is None else number + 0.0
