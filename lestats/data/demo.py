"""Seeded synthetic dataset in the layout of the CDC BRFSS nutrition/obesity export.

Why this exists: the application needs a dataset to serve when no real file is
given, and the benchmarks need arbitrarily large files of the same shape.  The
real export must not be copied, so every *value* here comes from a private,
seeded random generator; only the schema (column names, question texts, codes,
location names, abbreviations and FIPS ids) is fixed metadata.  The layout,
quoting and quirks (empty first header cell, trailing space in
``High_Confidence_Limit ``, footnoted rows, rows without a value) match the
course copy of the export so the loader is exercised exactly as with real data.

Run ``python -m lestats.data.demo --rows N --seed S --out PATH`` to write a file;
a name ending in ``.gz`` is gzip-compressed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import io
import math
import os
import pathlib
import random
import sys
import tempfile
from array import array
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = [
    "DEMO_ROWS",
    "DEMO_SEED",
    "HEADER",
    "iter_demo_lines",
    "iter_demo_records",
    "main",
    "write_demo_csv",
]

DEMO_ROWS = 18_650
"""Rows in the default demo dataset: roughly the size of the real export."""

DEMO_SEED = 2024
"""Seed of the default demo dataset, so every run serves the same data."""

HEADER: tuple[str, ...] = (
    "",
    "YearStart",
    "YearEnd",
    "LocationAbbr",
    "LocationDesc",
    "Datasource",
    "Class",
    "Topic",
    "Question",
    "Data_Value_Unit",
    "Data_Value_Type",
    "Data_Value",
    "Data_Value_Alt",
    "Data_Value_Footnote_Symbol",
    "Data_Value_Footnote",
    "Low_Confidence_Limit",
    "High_Confidence_Limit ",
    "Sample_Size",
    "Total",
    "Age(years)",
    "Education",
    "Gender",
    "Income",
    "Race/Ethnicity",
    "GeoLocation",
    "ClassID",
    "TopicID",
    "QuestionID",
    "DataValueTypeID",
    "LocationID",
    "StratificationCategory1",
    "Stratification1",
    "StratificationCategoryId1",
    "StratificationID1",
)
"""The 34 header cells, byte for byte as in the export (quirks included)."""

_DATASOURCE = "Behavioral Risk Factor Surveillance System"
_VALUE_TYPE = "Value"
_VALUE_TYPE_ID = "VALUE"
_FOOTNOTE_SYMBOL = "~"
_FOOTNOTE_TEXT = "Data not available because sample size is insufficient."
_FIRST_YEAR = 2011
_LAST_YEAR = 2022
_N_YEARS = _LAST_YEAR - _FIRST_YEAR + 1
_MID_YEAR = (_FIRST_YEAR + _LAST_YEAR) / 2

_EMPTY_VALUE_PROBABILITY = 0.007
"""Share of rows without any Data_Value, which the loader has to skip."""

_TERRITORY_FOOTNOTE_BONUS = 0.05
"""Extra footnote probability for small territories (small samples)."""

_MIN_SAMPLE_SIZE = 50
"""Smallest sample size of a published (non-footnoted) estimate."""

_Z95 = 1.96
_VALUE_FLOOR = 1.0
_VALUE_CEILING = 99.0
_MIN_HALF_WIDTH = 0.5
_GZIP_LEVEL = 6
"""Good size/speed balance; level 9 roughly doubles write time for ~3 % gain."""

_FILE_MODE = 0o644
"""``mkstemp`` creates 0600 files; a published data file should be world-readable."""


class _Question(NamedTuple):
    """Fixed metadata of one survey question plus the knobs of its value model."""

    text: str
    class_name: str
    topic: str
    class_id: str
    topic_id: str
    question_id: str
    typical: float
    """Typical percentage across locations (made up, merely plausible)."""
    spread: float
    """Standard deviation of the per-location level around ``typical``."""
    trend: float
    """Change in percentage points per year, so yearly means drift a little."""


_FV = ("Fruits and Vegetables", "Fruits and Vegetables - Behavior", "FV", "FV1")
_OWS = ("Obesity / Weight Status", "Obesity / Weight Status", "OWS", "OWS1")
_PA = ("Physical Activity", "Physical Activity - Behavior", "PA", "PA1")

_QUESTIONS: tuple[_Question, ...] = (
    _Question(
        "Percent of adults who report consuming fruit less than one time daily",
        *_FV,
        "Q018",
        38.0,
        4.0,
        0.3,
    ),
    _Question(
        "Percent of adults who report consuming vegetables less than one time daily",
        *_FV,
        "Q019",
        21.0,
        3.0,
        0.3,
    ),
    _Question(
        "Percent of adults aged 18 years and older who have obesity",
        *_OWS,
        "Q036",
        30.0,
        3.5,
        0.5,
    ),
    _Question(
        "Percent of adults aged 18 years and older who have an overweight classification",
        *_OWS,
        "Q037",
        35.0,
        1.5,
        -0.05,
    ),
    _Question(
        "Percent of adults who achieve at least 150 minutes a week of moderate-intensity "
        "aerobic physical activity or 75 minutes a week of vigorous-intensity aerobic "
        "activity (or an equivalent combination)",
        *_PA,
        "Q043",
        50.0,
        4.0,
        0.0,
    ),
    _Question(
        "Percent of adults who achieve at least 150 minutes a week of moderate-intensity "
        "aerobic physical activity or 75 minutes a week of vigorous-intensity aerobic "
        "physical activity and engage in muscle-strengthening activities on 2 or more "
        "days a week",
        *_PA,
        "Q044",
        21.0,
        3.0,
        0.1,
    ),
    _Question(
        "Percent of adults who achieve at least 300 minutes a week of moderate-intensity "
        "aerobic physical activity or 150 minutes a week of vigorous-intensity aerobic "
        "activity (or an equivalent combination)",
        *_PA,
        "Q045",
        33.0,
        4.0,
        0.0,
    ),
    _Question(
        "Percent of adults who engage in muscle-strengthening activities on 2 or more days a week",
        *_PA,
        "Q046",
        31.0,
        3.0,
        0.1,
    ),
    _Question(
        "Percent of adults who engage in no leisure-time physical activity",
        *_PA,
        "Q047",
        25.0,
        3.5,
        -0.1,
    ),
)


class _Location(NamedTuple):
    """A location of the export, with a made-up box for its fake GeoLocation."""

    desc: str
    abbr: str
    fips: int
    box: tuple[float, float, float, float] | None
    """(lat_min, lat_max, lon_min, lon_max); ``None`` means no GeoLocation."""
    typical_sample: float
    """Typical overall sample size per year (made up, merely plausible)."""


_MAINLAND = (30.0, 47.5, -120.0, -72.0)
_STATE_SAMPLE = 6_000.0
_TERRITORY_SAMPLE = 2_500.0
_NATIONAL_SAMPLE = 400_000.0

_LOCATIONS: tuple[_Location, ...] = (
    *(
        _Location(desc, abbr, fips, _MAINLAND, _STATE_SAMPLE)
        for desc, abbr, fips in (
            ("Alabama", "AL", 1),
            ("Arizona", "AZ", 4),
            ("Arkansas", "AR", 5),
            ("California", "CA", 6),
            ("Colorado", "CO", 8),
            ("Connecticut", "CT", 9),
            ("Delaware", "DE", 10),
            ("District of Columbia", "DC", 11),
            ("Florida", "FL", 12),
            ("Georgia", "GA", 13),
            ("Idaho", "ID", 16),
            ("Illinois", "IL", 17),
            ("Indiana", "IN", 18),
            ("Iowa", "IA", 19),
            ("Kansas", "KS", 20),
            ("Kentucky", "KY", 21),
            ("Louisiana", "LA", 22),
            ("Maine", "ME", 23),
            ("Maryland", "MD", 24),
            ("Massachusetts", "MA", 25),
            ("Michigan", "MI", 26),
            ("Minnesota", "MN", 27),
            ("Mississippi", "MS", 28),
            ("Missouri", "MO", 29),
            ("Montana", "MT", 30),
            ("Nebraska", "NE", 31),
            ("Nevada", "NV", 32),
            ("New Hampshire", "NH", 33),
            ("New Jersey", "NJ", 34),
            ("New Mexico", "NM", 35),
            ("New York", "NY", 36),
            ("North Carolina", "NC", 37),
            ("North Dakota", "ND", 38),
            ("Ohio", "OH", 39),
            ("Oklahoma", "OK", 40),
            ("Oregon", "OR", 41),
            ("Pennsylvania", "PA", 42),
            ("Rhode Island", "RI", 44),
            ("South Carolina", "SC", 45),
            ("South Dakota", "SD", 46),
            ("Tennessee", "TN", 47),
            ("Texas", "TX", 48),
            ("Utah", "UT", 49),
            ("Vermont", "VT", 50),
            ("Virginia", "VA", 51),
            ("Washington", "WA", 53),
            ("West Virginia", "WV", 54),
            ("Wisconsin", "WI", 55),
            ("Wyoming", "WY", 56),
        )
    ),
    _Location("Alaska", "AK", 2, (58.0, 66.0, -160.0, -142.0), _STATE_SAMPLE),
    _Location("Hawaii", "HI", 15, (19.5, 21.5, -158.0, -155.0), _STATE_SAMPLE),
    _Location("Guam", "GU", 66, (13.3, 13.6, 144.6, 145.0), _TERRITORY_SAMPLE),
    _Location("Puerto Rico", "PR", 72, (18.0, 18.5, -67.2, -65.6), _TERRITORY_SAMPLE),
    _Location("Virgin Islands", "VI", 78, (17.7, 18.4, -65.1, -64.6), _TERRITORY_SAMPLE),
    _Location("National", "US", 59, None, _NATIONAL_SAMPLE),
)

_TERRITORIES = frozenset({"GU", "PR", "VI"})


class _Stratum(NamedTuple):
    """One stratification pair and the knobs of its value/sample model."""

    category: str
    value: str
    category_id: str
    stratum_id: str
    column: int
    """Index into ``_DEMOGRAPHIC_COLUMNS`` of the column that repeats ``value``."""
    position: float | None
    """Centred position on an ordered scale (age, education, income) or ``None``."""
    share: float
    """Rough share of the location's sample falling into this stratum."""
    footnote: float
    """Probability that the estimate is suppressed for a too-small sample."""


_DEMOGRAPHIC_COLUMNS = ("Total", "Age(years)", "Education", "Gender", "Income", "Race/Ethnicity")
_COMMON_FOOTNOTE = 0.02

_STRATA: tuple[_Stratum, ...] = (
    _Stratum("Total", "Total", "OVR", "OVERALL", 0, None, 1.0, 0.0),
    *(
        _Stratum("Age (years)", value, "AGEYR", sid, 1, rank - 2.5, 1 / 6, _COMMON_FOOTNOTE)
        for rank, (value, sid) in enumerate(
            (
                ("18 - 24", "AGEYR1824"),
                ("25 - 34", "AGEYR2534"),
                ("35 - 44", "AGEYR3544"),
                ("45 - 54", "AGEYR4554"),
                ("55 - 64", "AGEYR5564"),
                ("65 or older", "AGEYR65PLUS"),
            ),
        )
    ),
    *(
        _Stratum("Education", value, "EDU", sid, 2, rank - 1.5, 1 / 4, _COMMON_FOOTNOTE)
        for rank, (value, sid) in enumerate(
            (
                ("Less than high school", "EDUHS"),
                ("High school graduate", "EDUHSGRAD"),
                ("Some college or technical school", "EDUCOTEC"),
                ("College graduate", "EDUCOGRAD"),
            ),
        )
    ),
    _Stratum("Gender", "Male", "GEN", "MALE", 3, None, 1 / 2, _COMMON_FOOTNOTE),
    _Stratum("Gender", "Female", "GEN", "FEMALE", 3, None, 1 / 2, _COMMON_FOOTNOTE),
    *(
        _Stratum("Income", value, "INC", sid, 4, rank - 2.5, 1 / 7, _COMMON_FOOTNOTE)
        for rank, (value, sid) in enumerate(
            (
                ("Less than $15,000", "INCLESS15"),
                ("$15,000 - $24,999", "INC1525"),
                ("$25,000 - $34,999", "INC2535"),
                ("$35,000 - $49,999", "INC3550"),
                ("$50,000 - $74,999", "INC5075"),
                ("$75,000 or greater", "INC75PLUS"),
            ),
        )
    ),
    _Stratum("Income", "Data not reported", "INC", "INCNR", 4, None, 1 / 7, _COMMON_FOOTNOTE),
    *(
        _Stratum("Race/Ethnicity", value, "RACE", sid, 5, None, share, footnote)
        for value, sid, share, footnote in (
            ("Non-Hispanic White", "RACEWHT", 0.70, _COMMON_FOOTNOTE),
            ("Non-Hispanic Black", "RACEBLK", 0.10, _COMMON_FOOTNOTE),
            ("Hispanic", "RACEHIS", 0.08, _COMMON_FOOTNOTE),
            ("Asian", "RACEASN", 0.03, 0.10),
            ("Hawaiian/Pacific Islander", "RACEHPI", 0.005, 0.35),
            ("American Indian/Alaska Native", "RACENAA", 0.015, 0.20),
            ("2 or more races", "RACE2PLUS", 0.02, 0.10),
            ("Other", "RACEOTH", 0.01, 0.20),
        )
    ),
)

_N_PAIRS = len(_QUESTIONS) * len(_LOCATIONS)
_N_COMBOS = _N_PAIRS * len(_STRATA)


class _Model:
    """Per-seed hidden "truth" the rows are sampled from.

    Drawing a level per (question, location), an offset per (question,
    stratum) and a sample size per location before sampling rows is what makes
    group means, gradients and confidence limits look like real survey data
    instead of independent noise.
    """

    def __init__(self, rng: random.Random) -> None:
        """Draw all hidden parameters from ``rng`` in a fixed order."""
        self.level = [
            question.typical + (0.0 if location.box is None else rng.gauss(0.0, question.spread))
            for question in _QUESTIONS
            for location in _LOCATIONS
        ]
        self.offset: list[float] = []
        for _question in _QUESTIONS:
            slopes = {category: rng.gauss(0.0, 2.0) for category in ("AGEYR", "EDU", "INC")}
            for stratum in _STRATA:
                if stratum.stratum_id == "OVERALL":
                    self.offset.append(0.0)
                elif stratum.position is None:
                    self.offset.append(rng.gauss(0.0, 3.0))
                else:
                    self.offset.append(
                        slopes[stratum.category_id] * stratum.position + rng.gauss(0.0, 1.0),
                    )
        self.sample = [location.typical_sample * rng.uniform(0.5, 2.0) for location in _LOCATIONS]


def _geolocation(location: _Location) -> str:
    """Return a made-up but stable ``"(lat, lon)"`` point inside the location's box.

    Seeded by the abbreviation alone, so coordinates do not change with the
    data seed (they are metadata-like) and never come from a real source.
    """
    if location.box is None:
        return ""
    lat_min, lat_max, lon_min, lon_max = location.box
    rng = random.Random(f"geo:{location.abbr}")  # noqa: S311 - synthetic data, not crypto
    return f"({rng.uniform(lat_min, lat_max)!r}, {rng.uniform(lon_min, lon_max)!r})"


def _quote(field: str) -> str:
    """Return ``field`` exactly as ``csv.writer`` (QUOTE_MINIMAL) writes it.

    Rendered as the first of two cells because a row made of one empty cell
    is special-cased by the writer (written as ``""``).
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow((field, ""))
    return buffer.getvalue()[:-1]


def _segment(fields: Iterable[str]) -> str:
    """Return ``fields`` as a pre-quoted, comma-joined fragment of a CSV line."""
    return ",".join(_quote(field) for field in fields)


class _Cells(NamedTuple):
    """Fixed cells by question, location and stratum, raw and as CSV fragments.

    Everything but the index, year and measure cells is metadata, so it is
    built (and quoted) once per process instead of once per row; that is what
    keeps the in-memory demo and million-row files fast.
    """

    years: tuple[str, ...]
    question_head: tuple[tuple[str, ...], ...]
    question_ids: tuple[tuple[str, ...], ...]
    location_head: tuple[tuple[str, ...], ...]
    geo: tuple[str, ...]
    fips: tuple[str, ...]
    demographics: tuple[tuple[str, ...], ...]
    stratum_tail: tuple[tuple[str, ...], ...]

    @classmethod
    def build(cls) -> _Cells:
        """Derive every fixed cell from the metadata tables."""
        n_columns = len(_DEMOGRAPHIC_COLUMNS)
        return cls(
            years=tuple(str(year) for year in range(_FIRST_YEAR, _LAST_YEAR + 1)),
            question_head=tuple(
                (_DATASOURCE, q.class_name, q.topic, q.text, "", _VALUE_TYPE) for q in _QUESTIONS
            ),
            question_ids=tuple(
                (q.class_id, q.topic_id, q.question_id, _VALUE_TYPE_ID) for q in _QUESTIONS
            ),
            location_head=tuple((loc.abbr, loc.desc) for loc in _LOCATIONS),
            geo=tuple(_geolocation(loc) for loc in _LOCATIONS),
            fips=tuple(str(loc.fips) for loc in _LOCATIONS),
            demographics=tuple(
                tuple(s.value if column == s.column else "" for column in range(n_columns))
                for s in _STRATA
            ),
            stratum_tail=tuple((s.category, s.value, s.category_id, s.stratum_id) for s in _STRATA),
        )

    def quoted(self) -> _Cells:
        """Return the same cells with every group pre-rendered as one CSV fragment."""
        return _Cells(
            years=self.years,
            question_head=tuple((_segment(cells),) for cells in self.question_head),
            question_ids=tuple((_segment(cells),) for cells in self.question_ids),
            location_head=tuple((_segment(cells),) for cells in self.location_head),
            geo=tuple(_quote(cell) for cell in self.geo),
            fips=self.fips,
            demographics=tuple((_segment(cells),) for cells in self.demographics),
            stratum_tail=tuple((_segment(cells),) for cells in self.stratum_tail),
        )


_CELLS = _Cells.build()
_QUOTED = _CELLS.quoted()


def _schedule(rows: int, rng: random.Random) -> array[int]:
    """Return ``rows`` shuffled codes ``combo * years + year_offset``.

    Combos are (question, location, stratum) triples.  They are laid out in 28
    layers, each holding every (question, location) pair once with a different
    stratum, so any prefix covers the pairs evenly; all 13,860 combos appear
    whenever ``rows`` allows it, the rest is uniform filler.  A compact
    ``array`` (8 bytes a row) keeps a million-row shuffle cheap.
    """
    n_strata = len(_STRATA)
    codes: array[int] = array("q")
    orders = [rng.sample(range(n_strata), n_strata) for _ in range(_N_PAIRS)]
    pairs = list(range(_N_PAIRS))
    for layer in range(n_strata):
        missing = rows - len(codes)
        if missing <= 0:
            break
        rng.shuffle(pairs)
        codes.extend(
            (pair * n_strata + orders[pair][layer]) * _N_YEARS + rng.randrange(_N_YEARS)
            for pair in pairs[:missing]
        )
    codes.extend(rng.randrange(_N_COMBOS * _N_YEARS) for _ in range(rows - len(codes)))
    rng.shuffle(codes)
    return codes


_Measure = tuple[str, str, str, str, str, str, str]
_EMPTY_MEASURE: _Measure = ("", "", "", "", "", "", "")


def _measure(rng: random.Random, mean: float, sample: float, footnote: float) -> _Measure:
    """Return the seven measure cells, Data_Value through Sample_Size.

    Three shapes, as in the export: no value at all; a footnoted value
    (small sample, so noisier, with no limits or sample size); a normal value
    with Wald-style 95 % limits from a drawn sample size and design effect.
    None of these cells ever needs CSV quoting.
    """
    unit = rng.random  # bound once; cheaper than ``rng.uniform`` on this hot path
    draw = unit()
    if draw < _EMPTY_VALUE_PROBABILITY:
        return _EMPTY_MEASURE
    if draw < _EMPTY_VALUE_PROBABILITY + footnote:
        value = min(max(rng.gauss(mean, 4.5), _VALUE_FLOOR), _VALUE_CEILING)
        return (f"{value:.1f}", "", _FOOTNOTE_SYMBOL, _FOOTNOTE_TEXT, "", "", "")
    value = round(min(max(rng.gauss(mean, 2.0), _VALUE_FLOOR), _VALUE_CEILING), 1)
    size = max(int(sample * (0.6 + 0.8 * unit())), _MIN_SAMPLE_SIZE)
    design_effect = 1.2 + 0.4 * unit()
    half_width = max(
        _Z95 * design_effect * math.sqrt(value * (100.0 - value) / size),
        _MIN_HALF_WIDTH,
    )
    low = max(value - half_width * (0.85 + 0.3 * unit()), 0.0)
    high = min(value + half_width * (0.85 + 0.3 * unit()), 100.0)
    text = f"{value:.1f}"
    return (text, text, "", "", f"{low:.1f}", f"{high:.1f}", f"{size}.0")


def _check_rows(rows: int) -> None:
    """Reject negative row counts up front rather than yielding nothing silently."""
    if rows < 0:
        msg = f"rows must be >= 0, got {rows}"
        raise ValueError(msg)


def _draws(
    rows: int,
    seed: int,
) -> Iterator[tuple[int, int, int, int, _Measure]]:
    """Yield ``(year_offset, question, location, stratum, measure)`` per row.

    The single source of randomness for records and lines alike, so both
    views of a ``(rows, seed)`` dataset are the same data.  A private
    ``random.Random(seed)`` is used: the global RNG can neither disturb nor be
    disturbed by it.
    """
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not crypto
    model = _Model(rng)
    n_strata = len(_STRATA)
    n_locations = len(_LOCATIONS)
    trends = [
        q.trend * (year - _MID_YEAR)
        for q in _QUESTIONS
        for year in range(_FIRST_YEAR, _LAST_YEAR + 1)
    ]
    bonus = [_TERRITORY_FOOTNOTE_BONUS if loc.abbr in _TERRITORIES else 0.0 for loc in _LOCATIONS]
    for code in _schedule(rows, rng):
        combo, year = divmod(code, _N_YEARS)
        pair, s = divmod(combo, n_strata)
        q, loc = divmod(pair, n_locations)
        stratum = _STRATA[s]
        mean = model.level[pair] + model.offset[q * n_strata + s] + trends[q * _N_YEARS + year]
        sample = model.sample[loc] * stratum.share
        yield year, q, loc, s, _measure(rng, mean, sample, stratum.footnote + bonus[loc])


def iter_demo_records(rows: int = DEMO_ROWS, seed: int = DEMO_SEED) -> Iterator[list[str]]:
    """Yield ``rows`` synthetic data records (34 strings each, header excluded).

    Deterministic for ``(rows, seed)``.  Order looks shuffled like the export,
    yet every (question, location) pair appears once ``rows >= 495`` and every
    (question, location, stratification) combo once ``rows >= 13,860``.
    """
    _check_rows(rows)
    return _records(_draws(rows, seed), _CELLS)


def _records(
    draws: Iterator[tuple[int, int, int, int, _Measure]],
    cells: _Cells,
) -> Iterator[list[str]]:
    """Assemble the cells of each draw into one record, in header order.

    With ``cells`` pre-quoted the same code yields lists of CSV fragments,
    which is how lines are rendered without a per-row ``csv.writer`` call.
    """
    years = cells.years
    for index, (year, q, loc, s, measure) in enumerate(draws):
        yield [
            str(index),
            years[year],
            years[year],
            *cells.location_head[loc],
            *cells.question_head[q],
            *measure,
            *cells.demographics[s],
            cells.geo[loc],
            *cells.question_ids[q],
            cells.fips[loc],
            *cells.stratum_tail[s],
        ]


def iter_demo_lines(rows: int = DEMO_ROWS, seed: int = DEMO_SEED) -> Iterator[str]:
    """Yield the demo CSV as text lines, header first, each ending in a newline.

    This is what the loader parses in memory for the default dataset, so it
    must be cheap.  Lines are byte-identical to ``csv.writer`` output (default
    QUOTE_MINIMAL, bare newline line ends): the metadata cells are quoted once by
    ``csv`` itself and the measure cells never need quoting, which saves the
    per-row writer cost (about half the total).
    """
    _check_rows(rows)
    return _lines(_records(_draws(rows, seed), _QUOTED))


def _lines(fragments: Iterator[list[str]]) -> Iterator[str]:
    """Yield the header line, then each record's fragments joined into a line."""
    yield _segment(HEADER) + "\n"
    for parts in fragments:
        yield ",".join(parts) + "\n"


def write_demo_csv(
    path: str | os.PathLike[str],
    rows: int = DEMO_ROWS,
    seed: int = DEMO_SEED,
) -> pathlib.Path:
    """Write the demo CSV to ``path`` and return it as a ``Path``.

    A name ending in ``.gz`` is gzip-compressed, with an empty embedded name
    and zero mtime so the bytes depend only on ``(rows, seed)``.  Data goes to
    a temporary file in the target directory that is then ``os.replace``-d
    over ``path``, so readers never see a partial file, even after a crash.
    """
    target = pathlib.Path(path)
    lines = iter_demo_lines(rows, seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        dir=target.parent,
        prefix=f".{target.name}.",
        suffix=".tmp",
    )
    os.close(handle)
    temp = pathlib.Path(temp_name)
    try:
        with contextlib.ExitStack() as stack:
            binary: BinaryIO | gzip.GzipFile = stack.enter_context(temp.open("wb"))
            if target.name.endswith(".gz"):
                binary = stack.enter_context(
                    gzip.GzipFile(
                        filename="",
                        mode="wb",
                        fileobj=binary,
                        compresslevel=_GZIP_LEVEL,
                        mtime=0,
                    ),
                )
            text = stack.enter_context(io.TextIOWrapper(binary, encoding="utf-8", newline=""))
            text.writelines(lines)
        temp.chmod(_FILE_MODE)
        temp.replace(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def _row_count(text: str) -> int:
    """Parse a non-negative row count for argparse, with a readable error."""
    try:
        rows = int(text)
    except ValueError:
        rows = -1
    if rows < 0:
        msg = f"expected a non-negative integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: write a demo CSV and report it on one line."""
    parser = argparse.ArgumentParser(
        prog="python -m lestats.data.demo",
        description="Write a synthetic CSV in the layout of the CDC BRFSS "
        "nutrition/obesity export (gzip-compressed if PATH ends in .gz).",
    )
    parser.add_argument("--rows", type=_row_count, default=DEMO_ROWS, help="data rows to write")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="random seed")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="output file path")
    args = parser.parse_args(argv)
    target = write_demo_csv(args.out, rows=args.rows, seed=args.seed)
    sys.stdout.write(f"wrote {args.rows} rows (seed {args.seed}) to {target}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
