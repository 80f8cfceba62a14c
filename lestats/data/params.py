"""The one place that turns what a user sent into a canonical v2 `Query`, or says what is wrong.

Why this exists: the same query arrives as a JSON object (`POST /api/v2/jobs`, the journal, an
embedding program) or as URL parameters (`GET /api/v2/<kind>?location=OH&location=US`, lists
repeated or comma-separated). Both go through `parse_query`, which checks every parameter
against the loaded data, reports *every* bad one with the values allowed for it, and builds the
canonical query: names replaced by ids, defaults filled in, lists de-duplicated (sorted where
their order means nothing), so that equal questions are equal queries (cache and ETag keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lestats.data.query import Query
from lestats.data.registry import Parameter
from lestats.errors import InvalidQuery

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from lestats.data.catalog import Catalog
    from lestats.data.dataset import Dataset
    from lestats.data.query import ParamValue
    from lestats.data.registry import Registry


def _question_ids(_registry: Registry, dataset: Dataset) -> Sequence[str]:
    return list(dataset.catalog.questions)


def _location_ids(_registry: Registry, dataset: Dataset) -> Sequence[str]:
    return list(dataset.catalog.locations)


def _stratum_ids(_registry: Registry, dataset: Dataset) -> Sequence[str]:
    return list(dataset.catalog.strata)


def _category_ids(_registry: Registry, dataset: Dataset) -> Sequence[str]:
    return sorted({stratum.category_id for stratum in dataset.catalog.strata.values()})


def _years(_registry: Registry, dataset: Dataset) -> Sequence[int]:
    return list(dataset.catalog.period_codes)


QUESTION = Parameter(
    "question",
    required=True,
    description="QuestionID (Q036) or the question's text",
    choices=_question_ids,
)
_LOCATIONS = "location abbreviations (OH, US) or names (Ohio, National)"
_STRATUM = "a stratum id (OVERALL, INC75PLUS) or name; default: Total"
PARAMETERS: Mapping[str, tuple[Parameter, ...]] = {
    "estimates": (
        QUESTION,
        Parameter("location", "strings", description=_LOCATIONS, choices=_location_ids),
        Parameter("year", "integers", description="years", choices=_years),
        Parameter(
            "category",
            description="a stratification category id (INC) or name (Income)",
            choices=_category_ids,
        ),
        Parameter(
            "stratum",
            "strings",
            description="stratum ids (INC75PLUS) or names ($75,000 or greater)",
            choices=_stratum_ids,
        ),
    ),
    "trend": (
        QUESTION,
        Parameter(
            "location", "strings", required=True, description=_LOCATIONS, choices=_location_ids
        ),
        Parameter("stratum", description=_STRATUM, choices=_stratum_ids),
    ),
    "ranking": (
        QUESTION,
        Parameter(
            "year", "integer", description="a year; default: the question's latest", choices=_years
        ),
        Parameter("stratum", description=_STRATUM, choices=_stratum_ids),
    ),
    "compare": (
        QUESTION,
        Parameter(
            "location",
            "strings",
            description="one location, or two to compare",
            choices=_location_ids,
        ),
        Parameter(
            "year",
            "integers",
            description="one year (default: the latest), or two to compare",
            choices=_years,
        ),
        Parameter(
            "stratum",
            "strings",
            description="one stratum (default: Total), or two to compare",
            choices=_stratum_ids,
        ),
    ),
    "questions": (),
    "locations": (),
    "strata": (),
}
"""Every v2 kind and its parameters (the registry rows declare these; docs/queries.md)."""
KINDS: tuple[str, ...] = tuple(PARAMETERS)
COMPARED = ("location", "year", "stratum")
"""The parameters a `compare` query may give two values of (exactly one of them)."""


def _many(parameter: Parameter) -> bool:
    return parameter.type in {"strings", "integers"}


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one parameter, and the values that would be accepted."""

    parameter: str
    reason: str
    allowed: tuple[str, ...] | None = None


class InvalidParameters(InvalidQuery):
    """Several parameters may be wrong at once: `problems` names each, with its allowed values.

    As an `InvalidQuery`, `reason` lists them all and `allowed` is that of the first.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(
            "; ".join(f"{p.parameter}: {p.reason}" for p in problems), problems[0].allowed
        )
        self.problems = tuple(problems)


@dataclass(slots=True)
class _Parser:
    """Checks one request's parameters, collecting every problem before raising."""

    catalog: Catalog
    kind: str
    raw: Mapping[str, object]
    problems: list[Problem] = field(default_factory=list)

    def problem(self, parameter: str, reason: str, allowed: Sequence[object] | None) -> None:
        listed = None if allowed is None else tuple(map(str, allowed))
        self.problems.append(Problem(parameter, reason, listed))

    def items(self, name: str) -> list[object]:
        """The values given for `name`, as a list (absent: empty)."""
        value = self.raw.get(name)
        if value is None:
            return []
        if isinstance(value, list | tuple):
            return list(value)
        return [value]

    def names(self, name: str, known: Mapping[str, object], allowed: Sequence[str]) -> list[str]:
        """The values of `name` that are known names; unknown ones are reported.

        A string that is not a name is split on commas (`location=OH,US`). Order is kept,
        duplicates dropped.
        """
        found: list[str] = []
        for item in self.items(name):
            if not isinstance(item, str):
                self.problem(name, f"{item!r} is not a string", allowed)
                continue
            parts = [item] if item in known or "," not in item else item.split(",")
            for raw_part in parts:
                part = raw_part if raw_part in known else raw_part.strip()
                if part in known:
                    found.append(part)
                else:
                    self.problem(name, f"unknown value {part!r}", allowed)
        return list(dict.fromkeys(found))

    def years(self, name: str, allowed: Sequence[int]) -> list[int]:
        """The years given for `name` (integers or their digits), checked against `allowed`."""
        found: list[int] = []
        for item in self.items(name):
            texts = item.split(",") if isinstance(item, str) else [item]
            for text in texts:
                year = _year(text)
                if year is None:
                    self.problem(name, f"{text!r} is not a year", allowed)
                elif year not in allowed:
                    self.problem(name, f"no data for year {year}", allowed)
                else:
                    found.append(year)
        return list(dict.fromkeys(found))


def _year(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_query(dataset: Dataset, kind: object, raw: Mapping[str, object]) -> Query:
    """The canonical query of `kind` with the parameters `raw` (JSON values or URL strings).

    Raises:
        InvalidQuery: unknown kind.
        InvalidParameters: one or more bad parameters, each named with its allowed values.
    """
    if not isinstance(kind, str) or kind not in PARAMETERS:
        raise InvalidQuery(f"unknown kind {kind!r}", KINDS)
    catalog = dataset.catalog
    parser = _Parser(catalog, kind, raw)
    accepted = {parameter.name for parameter in PARAMETERS[kind]}
    for name in raw:
        if name not in accepted:
            allowed = sorted(accepted)
            parser.problem(name, f"not a parameter of {kind}", allowed)
    for parameter in PARAMETERS[kind]:
        given = parser.items(parameter.name)
        if parameter.required and not given:
            parser.problem(parameter.name, f"required by {kind}", None)
        elif not _many(parameter) and len(given) > 1:
            parser.problem(parameter.name, "takes one value", None)
    question = _question(parser) if accepted else None
    params = _PARAMS[kind](parser, question)
    if parser.problems:
        raise InvalidParameters(parser.problems)
    return Query(kind, question, None, tuple(sorted(params.items())))


def _question(parser: _Parser) -> str | None:
    catalog = parser.catalog
    allowed = list(catalog.questions)
    names = parser.names("question", catalog.question_codes, allowed)
    if len(names) != 1:
        return None
    return _id_of(catalog.questions, catalog.question_codes, names[0])


def _asked(catalog: Catalog, question: str | None) -> tuple[int, ...]:
    """The years a parameter may name: the question's, or every year when it is unknown."""
    if question is None:
        return tuple(catalog.period_codes)
    return catalog.years.get(question, ())


def _locations_given(parser: _Parser, name: str) -> list[str]:
    catalog = parser.catalog
    names = parser.names(name, catalog.location_codes, list(catalog.locations))
    return list(dict.fromkeys(_id_of(catalog.locations, catalog.location_codes, n) for n in names))


def _strata_given(parser: _Parser, name: str) -> list[str]:
    catalog = parser.catalog
    names = parser.names(name, catalog.stratum_codes, list(catalog.strata))
    return list(dict.fromkeys(_id_of(catalog.strata, catalog.stratum_codes, n) for n in names))


def _id_of(by_id: Mapping[str, object], codes: Mapping[str, tuple[int, ...]], name: str) -> str:
    """The id that `name` (an id or a name) stands for: the first id sharing its codes."""
    if name in by_id:
        return name
    wanted = set(codes[name])
    return next(i for i in by_id if set(codes.get(i, ())) & wanted)


def _default_stratum(parser: _Parser, name: str) -> str | None:
    given = _strata_given(parser, name)
    if given:
        return given[0]
    if parser.items(name):
        return None
    total = parser.catalog.default_stratum()
    if total is None:
        parser.problem(name, "required: the data has no Total stratum", list(parser.catalog.strata))
    return total


def _estimates(parser: _Parser, question: str | None) -> dict[str, ParamValue]:
    catalog = parser.catalog
    params: dict[str, ParamValue] = {}
    locations = _locations_given(parser, "location")
    if locations:
        params["location"] = tuple(sorted(locations))
    years = parser.years("year", _asked(catalog, question))
    if years:
        params["year"] = tuple(sorted(years))
    categories = parser.names("category", catalog.category_codes, _category_list(catalog))
    category = None
    if categories:
        category = _category_id(catalog, categories[0])
        params["category"] = category
    strata = _strata_given(parser, "stratum")
    if category is not None:
        inside = set(catalog.category_codes[category])
        allowed = [s for s in catalog.strata if set(catalog.stratum_codes[s]) & inside]
        for stratum in strata:
            if stratum not in allowed:
                parser.problem("stratum", f"{stratum!r} is not in category {category!r}", allowed)
    if strata:
        params["stratum"] = tuple(sorted(strata))
    return params


def _category_list(catalog: Catalog) -> list[str]:
    return sorted({stratum.category_id for stratum in catalog.strata.values()})


def _category_id(catalog: Catalog, name: str) -> str:
    ids = _category_list(catalog)
    if name in ids:
        return name
    wanted = set(catalog.category_codes[name])
    return next(i for i in ids if set(catalog.category_codes[i]) & wanted)


def _trend(parser: _Parser, _question: str | None) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {"location": tuple(_locations_given(parser, "location"))}
    stratum = _default_stratum(parser, "stratum")
    if stratum is not None:
        params["stratum"] = stratum
    return params


def _ranking(parser: _Parser, question: str | None) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    asked = _asked(parser.catalog, question)
    years = parser.years("year", asked)
    if years:
        params["year"] = years[0]
    elif not parser.items("year") and asked and question is not None:
        params["year"] = asked[-1]
    stratum = _default_stratum(parser, "stratum")
    if stratum is not None:
        params["stratum"] = stratum
    return params


def _compare(parser: _Parser, question: str | None) -> dict[str, ParamValue]:
    asked = _asked(parser.catalog, question)
    locations = _locations_given(parser, "location")
    years = parser.years("year", asked)
    strata = _strata_given(parser, "stratum")
    pair = _compared(parser, {"location": locations, "year": years, "stratum": strata})
    if pair is None:
        return {}
    if not years and not parser.items("year") and asked:
        years = [asked[-1]]
    if not strata and not parser.items("stratum"):
        total = parser.catalog.default_stratum()
        strata = [total] if total is not None else []
    if not locations and not parser.items("location"):
        parser.problem("location", "required by compare", list(parser.catalog.locations))
    params: dict[str, ParamValue] = {}
    if locations:
        params["location"] = tuple(locations) if pair == "location" else locations[0]
    if years:
        params["year"] = tuple(years) if pair == "year" else years[0]
    if strata:
        params["stratum"] = tuple(strata) if pair == "stratum" else strata[0]
    return params


def _compared(parser: _Parser, given: Mapping[str, Sequence[object]]) -> str | None:
    """The one parameter given two values, or None (and the problem reported)."""
    pairs = [name for name in COMPARED if len(given[name]) == 2]  # noqa: PLR2004 - a pair
    crowded = [name for name in COMPARED if len(given[name]) > 2]  # noqa: PLR2004
    for name in crowded:
        parser.problem(name, "compare takes one or two values", None)
    if len(pairs) == 1 and not crowded:
        return pairs[0]
    if not crowded:
        parser.problem(
            ", ".join(COMPARED),
            "give two values for exactly one of location, year, stratum",
            list(COMPARED),
        )
    return None


def _none(_parser: _Parser, _question: str | None) -> dict[str, ParamValue]:
    return {}


_PARAMS = {
    "estimates": _estimates,
    "trend": _trend,
    "ranking": _ranking,
    "compare": _compare,
    "questions": _none,
    "locations": _none,
    "strata": _none,
}
