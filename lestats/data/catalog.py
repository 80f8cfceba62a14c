"""What the loaded rows contain, by the names users give: the vocabulary of docs/queries.md.

Why this exists: a query names a question by its id or text, a location by its abbreviation or
name, a stratum by its id or name; the table knows them by integer codes. The catalog maps each
name to its codes once per dataset (a few hundred entries), lists the allowed values for error
messages, and knows which years each question was asked. Lists are sorted by id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN

if TYPE_CHECKING:
    from collections.abc import Iterable

    from lestats.data.table import EstimateTable, Location, Question, Stratum

TOTAL_STRATUM_IDS = ("OVERALL", "Total")
"""The default stratum, by id (CDC files) or by name (files without ids)."""
_BEST_IS_MIN = frozenset(BEST_IS_MIN)
_BEST_IS_MAX = frozenset(BEST_IS_MAX)


def _codes_by_name(
    names_of_codes: Iterable[tuple[int, tuple[str, ...]]],
) -> dict[str, tuple[int, ...]]:
    found: defaultdict[str, list[int]] = defaultdict(list)
    for code, names in names_of_codes:
        for name in dict.fromkeys(names):
            if name:
                found[name].append(code)
    return {name: tuple(codes) for name, codes in found.items()}


_T = TypeVar("_T")


def _first_by_id(items: Iterable[tuple[str, _T]]) -> dict[str, _T]:
    result: dict[str, _T] = {}
    for key, item in items:
        result.setdefault(key, item)
    return dict(sorted(result.items()))


@dataclass(frozen=True, slots=True)
class Catalog:
    """Names to codes, and the allowed values, of one table. Build with `Catalog.of`."""

    question_codes: dict[str, tuple[int, ...]]
    """By id and by text."""
    questions: dict[str, Question]
    """By id, sorted: the first question of each id."""
    location_codes: dict[str, tuple[int, ...]]
    """By abbreviation and by name."""
    locations: dict[str, Location]
    """By abbreviation, sorted."""
    stratum_codes: dict[str, tuple[int, ...]]
    """By id and by name (the empty stratum has neither)."""
    strata: dict[str, Stratum]
    """By id, sorted."""
    category_codes: dict[str, tuple[int, ...]]
    """The strata of a category, by its id and by its name."""
    period_codes: dict[int, tuple[int, ...]]
    """The periods of each year."""
    years: dict[str, tuple[int, ...]]
    """The years with at least one row of each question id, sorted."""
    places: tuple[tuple[str, str, str, tuple[int, ...]], ...]
    """(abbreviation, name, kind, codes) of every location, by abbreviation: for rankings."""

    @classmethod
    def of(cls, table: EstimateTable) -> Catalog:
        """The catalog of `table`: a few bisections per (question, stratum, period)."""
        question_codes = _codes_by_name(
            (code, (question.id, question.text)) for code, question in enumerate(table.questions)
        )
        location_codes = _codes_by_name(
            (code, (location.abbr, location.name)) for code, location in enumerate(table.locations)
        )
        stratum_codes = _codes_by_name(
            (code, (stratum.id, stratum.name))
            for code, stratum in enumerate(table.strata)
            if not stratum.empty
        )
        category_codes = _codes_by_name(
            (code, (stratum.category_id, stratum.category))
            for code, stratum in enumerate(table.strata)
            if not stratum.empty
        )
        period_codes: defaultdict[int, list[int]] = defaultdict(list)
        for code, period in enumerate(table.periods):
            if period.year is not None:
                period_codes[period.year].append(code)
        shape = table.shape
        years: defaultdict[str, set[int]] = defaultdict(set)
        for q, question in enumerate(table.questions):
            for p, period in enumerate(table.periods):
                if period.year is None or period.year in years[question.id]:
                    continue
                if any(
                    table.span(shape.pack(q, s, p, 0), shape.pack(q, s, p + 1, 0))
                    for s in range(shape.strata)
                ):
                    years[question.id].add(period.year)
        locations = _first_by_id((loc.abbr, loc) for loc in table.locations)
        return cls(
            question_codes=question_codes,
            questions=_first_by_id((q.id, q) for q in table.questions),
            location_codes=location_codes,
            locations=locations,
            stratum_codes=stratum_codes,
            strata=_first_by_id((s.id, s) for s in table.strata if not s.empty),
            category_codes=category_codes,
            period_codes={year: tuple(codes) for year, codes in sorted(period_codes.items())},
            years={qid: tuple(sorted(found)) for qid, found in sorted(years.items())},
            places=tuple(
                (abbr, location.name, location.kind, location_codes.get(abbr, ()))
                for abbr, location in locations.items()
            ),
        )

    def default_stratum(self) -> str | None:
        """The id of the Total stratum, if the data has one."""
        for name in TOTAL_STRATUM_IDS:
            codes = self.stratum_codes.get(name)
            if codes:
                return next(s for s, stratum in self.strata.items() if name in {s, stratum.name})
        return None


def direction(question: Question) -> str | None:
    """`min` when lower is better (spec §2), `max` when higher is, else None."""
    if question.text in _BEST_IS_MIN:
        return "min"
    if question.text in _BEST_IS_MAX:
        return "max"
    return None


def unit(question: Question) -> str | None:
    """The file's `Data_Value_Unit`; `%` when it is empty and the question is a percentage."""
    if question.unit.strip():
        return question.unit.strip()
    return "%" if question.text.startswith("Percent") else None
