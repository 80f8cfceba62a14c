"""The nine statistics of spec §3 as pure functions of (dataset, query), and their registry rows.

Each returns a fresh JSON-ready dict in contract order built from the dataset's precomputed
aggregates, so a job costs a lookup and a dict build, never a scan. A question without numeric
rows answers `{}` everywhere; values are always floats.

`default_registry()` is the table the server and `Engine` start from: these nine, the v2 query
kinds (lestats/data/kinds.py), and the directions of the nine course questions.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Literal, get_args

from lestats.data.kinds import register_queries
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.registry import Parameter, Registry, Statistic

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from lestats.data.dataset import Dataset, Ranking
    from lestats.data.query import Query
    from lestats.data.registry import Direction
    from lestats.results import CategoryMeans, GlobalMean, StateCategoryMeans, StateMeans

CourseStatistic = Literal[
    "states_mean",
    "state_mean",
    "best5",
    "worst5",
    "global_mean",
    "diff_from_mean",
    "state_diff_from_mean",
    "mean_by_category",
    "state_mean_by_category",
]
"""The names of the course's nine statistics, for type checkers (`Engine.submit`)."""

RankingStatistic = Literal["states_mean", "best5", "worst5", "diff_from_mean"]
"""The course statistics of a question answering a `StateMeans` (a value by state)."""
OneStateStatistic = Literal["state_mean", "state_diff_from_mean"]
"""The course statistics of a question and a state answering a `StateMeans`."""


def states_mean(dataset: Dataset, query: Query) -> StateMeans:
    """Mean per state, lowest first, ties by state name."""
    stats = dataset.stats(query.question or "")
    return stats.ascending.copy() if stats else {}


def state_mean(dataset: Dataset, query: Query) -> StateMeans:
    """Mean of one state; `{}` if it has no rows for the question."""
    stats = dataset.stats(query.question or "")
    if stats is None or query.state not in stats.state_means:
        return {}
    return {query.state: stats.state_means[query.state]}


def _first5(ranking: Ranking) -> StateMeans:
    return dict(islice(ranking.items(), 5))


def best5(dataset: Dataset, query: Query, direction: Direction | None) -> StateMeans:
    """The five best states: lowest first for lower-is-better questions, else highest first."""
    stats = dataset.stats(query.question or "")
    if stats is None:
        return {}
    return _first5(stats.ascending if _best_is_min(query, direction) else stats.descending)


def worst5(dataset: Dataset, query: Query, direction: Direction | None) -> StateMeans:
    """The five worst states, worst first."""
    stats = dataset.stats(query.question or "")
    if stats is None:
        return {}
    return _first5(stats.descending if _best_is_min(query, direction) else stats.ascending)


def _best_is_min(query: Query, direction: Direction | None) -> bool:
    if direction is None:
        raise ValueError(f"no direction is known for question {query.question!r}")
    return direction == "min"


def global_mean(dataset: Dataset, query: Query) -> GlobalMean:
    """Mean over all rows of the question (not the mean of state means)."""
    stats = dataset.stats(query.question or "")
    return {"global_mean": stats.global_mean} if stats else {}


def diff_from_mean(dataset: Dataset, query: Query) -> StateMeans:
    """`global_mean - state_mean` for every state, in `states_mean` order."""
    stats = dataset.stats(query.question or "")
    if stats is None:
        return {}
    overall = stats.global_mean
    return {state: overall - mean for state, mean in stats.ascending.items()}


def state_diff_from_mean(dataset: Dataset, query: Query) -> StateMeans:
    """`global_mean - state_mean` for one state; `{}` if it has no rows for the question."""
    stats = dataset.stats(query.question or "")
    if stats is None or query.state not in stats.state_means:
        return {}
    return {query.state: stats.global_mean - stats.state_means[query.state]}


def mean_by_category(dataset: Dataset, query: Query) -> CategoryMeans:
    """Mean per (state, category, stratum), keys as tuple strings sorted by the tuple."""
    stats = dataset.stats(query.question or "")
    return stats.by_category.copy() if stats else {}


def state_mean_by_category(dataset: Dataset, query: Query) -> StateCategoryMeans:
    """Mean per (category, stratum) of one state, under the state's name."""
    stats = dataset.stats(query.question or "")
    if stats is None:
        return {}
    state = query.state or ""
    return {state: stats.state_by_category.get(state, {}).copy()}


# --- the rows ---------------------------------------------------------------------------------


def _questions(registry: Registry, dataset: Dataset) -> Sequence[str]:
    return registry.questions(dataset)


def _states(_: Registry, dataset: Dataset) -> Sequence[str]:
    return dataset.states


QUESTION = Parameter(
    "question",
    required=True,
    description="the question, exactly as in the data (see /api/questions)",
    choices=_questions,
)
"""The `question` parameter of the course statistics (reusable by other statistics)."""

STATE = Parameter(
    "state",
    required=True,
    description="the state (LocationDesc), exactly as in the data (see /api/states)",
    choices=_states,
)
"""The `state` parameter of the course's `state_*` statistics (reusable by other statistics)."""


def _ranked_by(
    registry: Registry, ranking: Callable[[Dataset, Query, Direction | None], StateMeans]
) -> Callable[[Dataset, Query], StateMeans]:
    """`best5` or `worst5` reading the question's direction from `registry` (frozen by then)."""

    def run(dataset: Dataset, query: Query) -> StateMeans:
        return ranking(dataset, query, registry.direction(query.question or ""))

    return run


def _course_rows(registry: Registry) -> dict[CourseStatistic, Statistic]:
    def row(
        name: CourseStatistic,
        function: Callable[[Dataset, Query], object],
        summary: str,
        *,
        by_state: bool = False,
        directional: bool = False,
    ) -> tuple[CourseStatistic, Statistic]:
        parameters = (QUESTION, STATE) if by_state else (QUESTION,)
        return name, Statistic(
            name, function, summary, parameters, course=True, directional=directional
        )

    rows = (
        row("states_mean", states_mean, "mean per state, lowest first"),
        row("state_mean", state_mean, "mean of one state", by_state=True),
        row("best5", _ranked_by(registry, best5), "the five best states", directional=True),
        row("worst5", _ranked_by(registry, worst5), "the five worst states", directional=True),
        row("global_mean", global_mean, "mean over all rows"),
        row("diff_from_mean", diff_from_mean, "global mean minus each state's mean"),
        row(
            "state_diff_from_mean",
            state_diff_from_mean,
            "global mean minus one state's mean",
            by_state=True,
        ),
        row("mean_by_category", mean_by_category, "mean per (state, category, stratum)"),
        row(
            "state_mean_by_category",
            state_mean_by_category,
            "mean per (category, stratum) of one state",
            by_state=True,
        ),
    )
    by_name = dict(rows)
    typed = {*get_args(RankingStatistic), *get_args(OneStateStatistic)}
    typed |= {"global_mean", "mean_by_category", "state_mean_by_category"}
    if tuple(by_name) != get_args(CourseStatistic) or typed != set(by_name):
        raise RuntimeError("the course rows and the CourseStatistic names disagree")
    return by_name


def default_registry() -> Registry:
    """A new registry: the nine course statistics, the v2 query kinds, the nine directions.

    Each call makes a fresh one: add statistics or directions to it freely. The server and an
    embedded engine start from the same table, so both accept the same jobs.
    """
    registry = Registry()
    for statistic in _course_rows(registry).values():
        registry.add(statistic)
    register_queries(registry)
    for question in BEST_IS_MIN:
        registry.set_direction(question, "min")
    for question in BEST_IS_MAX:
        registry.set_direction(question, "max")
    return registry


_BUILT_IN = default_registry()
_BUILT_IN.freeze()

COURSE_STATISTICS: tuple[CourseStatistic, ...] = get_args(CourseStatistic)
"""The nine course statistics' names, in the contract's order."""


def compute(dataset: Dataset, query: Query) -> object:
    """Answer `query` from `dataset` with the built-in statistics: the `data` of a done job."""
    return _BUILT_IN.run(dataset, query)
