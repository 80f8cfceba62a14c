"""The v2 query kinds as rows of the statistics registry (docs/queries.md).

Why this exists: the registry is the one table that feeds validation, the Workers, the journal,
the routes and OpenAPI; `register_queries` adds the seven kinds to it, each with its function,
its parameters (as OpenAPI and the index page show them) and `params.parse_query` as its
validation, which checks parameters that depend on each other and makes the query canonical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lestats.data import discovery, estimates
from lestats.data.params import PARAMETERS, parse_query
from lestats.data.registry import Statistic

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from lestats.data.dataset import Dataset
    from lestats.data.query import Query
    from lestats.data.registry import Registry, StatisticEncoder, StatisticFunction

SUMMARIES: Mapping[str, tuple[StatisticFunction, str]] = {
    "estimates": (
        estimates.estimates,
        "rows of one question by location, year and stratum, with CIs and sample sizes",
    ),
    "trend": (estimates.trend, "one stratum of a question by year, for one or more locations"),
    "ranking": (
        estimates.ranking,
        "every state's value for one year and stratum, ranked, with CI overlaps",
    ),
    "compare": (
        estimates.compare,
        "two locations, years or strata: the difference and an approximate z-test",
    ),
    "questions": (discovery.questions, "the questions: ids, class, topic, unit, years asked"),
    "locations": (discovery.locations, "the locations: abbreviation, name, kind"),
    "strata": (discovery.strata, "the strata by category"),
}
"""Each kind's function and one-line summary, in the order of `params.PARAMETERS`."""

ENCODERS: Mapping[str, StatisticEncoder] = {
    "estimates": estimates.estimates_json,
    "ranking": estimates.ranking_json,
    "compare": estimates.compare_json,
    "trend": estimates.trend_json,
}
"""The kinds that write their JSON themselves (the Workers' path; the others use `jsonio`)."""


def _parser(kind: str) -> Callable[[Registry, Dataset, Mapping[str, object]], Query]:
    def parse(_registry: Registry, dataset: Dataset, arguments: Mapping[str, object]) -> Query:
        return parse_query(dataset, kind, arguments)

    return parse


def register_queries(registry: Registry) -> None:
    """Add the v2 query kinds to `registry` (all pure: answers never change for a dataset)."""
    for kind, parameters in PARAMETERS.items():
        function, summary = SUMMARIES[kind]
        registry.add(
            Statistic(
                kind,
                function,
                summary,
                parameters,
                parse=_parser(kind),
                encode=ENCODERS.get(kind),
            )
        )
