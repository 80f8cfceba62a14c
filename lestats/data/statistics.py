"""The nine statistics of spec §3 as pure functions of (dataset, query).

Each returns a fresh JSON-ready dict in contract order built from the dataset's precomputed
aggregates, so a job costs a lookup and a dict build, never a scan. A question without numeric
rows answers `{}` everywhere; values are always floats.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Any

from lestats.data.questions import best_is_min

if TYPE_CHECKING:
    from collections.abc import Callable

    from lestats.data.dataset import Dataset, Ranking
    from lestats.data.query import Query

Result = dict[str, Any]


def states_mean(dataset: Dataset, query: Query) -> Result:
    """Mean per state, lowest first, ties by state name."""
    stats = dataset.stats(query.question)
    return stats.ascending.copy() if stats else {}


def state_mean(dataset: Dataset, query: Query) -> Result:
    """Mean of one state; `{}` if it has no rows for the question."""
    stats = dataset.stats(query.question)
    if stats is None or query.state not in stats.state_means:
        return {}
    return {query.state: stats.state_means[query.state]}


def _first5(ranking: Ranking) -> Result:
    return dict(islice(ranking.items(), 5))


def best5(dataset: Dataset, query: Query) -> Result:
    """The five best states: lowest first for lower-is-better questions, else highest first."""
    stats = dataset.stats(query.question)
    if stats is None:
        return {}
    return _first5(stats.ascending if best_is_min(query.question) else stats.descending)


def worst5(dataset: Dataset, query: Query) -> Result:
    """The five worst states, worst first."""
    stats = dataset.stats(query.question)
    if stats is None:
        return {}
    return _first5(stats.descending if best_is_min(query.question) else stats.ascending)


def global_mean(dataset: Dataset, query: Query) -> Result:
    """Mean over all rows of the question (not the mean of state means)."""
    stats = dataset.stats(query.question)
    return {"global_mean": stats.global_mean} if stats else {}


def diff_from_mean(dataset: Dataset, query: Query) -> Result:
    """`global_mean - state_mean` for every state, in `states_mean` order."""
    stats = dataset.stats(query.question)
    if stats is None:
        return {}
    overall = stats.global_mean
    return {state: overall - mean for state, mean in stats.ascending.items()}


def state_diff_from_mean(dataset: Dataset, query: Query) -> Result:
    """`global_mean - state_mean` for one state; `{}` if it has no rows for the question."""
    stats = dataset.stats(query.question)
    if stats is None or query.state not in stats.state_means:
        return {}
    return {query.state: stats.global_mean - stats.state_means[query.state]}


def mean_by_category(dataset: Dataset, query: Query) -> Result:
    """Mean per (state, category, stratum), keys as tuple strings sorted by the tuple."""
    stats = dataset.stats(query.question)
    return stats.by_category.copy() if stats else {}


def state_mean_by_category(dataset: Dataset, query: Query) -> Result:
    """Mean per (category, stratum) of one state, under the state's name."""
    stats = dataset.stats(query.question)
    if stats is None:
        return {}
    state = query.state or ""
    return {state: stats.state_by_category.get(state, {}).copy()}


STATISTICS: dict[str, Callable[[Dataset, Query], Result]] = {
    "states_mean": states_mean,
    "state_mean": state_mean,
    "best5": best5,
    "worst5": worst5,
    "global_mean": global_mean,
    "diff_from_mean": diff_from_mean,
    "state_diff_from_mean": state_diff_from_mean,
    "mean_by_category": mean_by_category,
    "state_mean_by_category": state_mean_by_category,
}
"""Endpoint name to its function; the same names as `query.NEEDS_STATE`."""


def compute(dataset: Dataset, query: Query) -> Result:
    """Answer `query` from `dataset`: the `data` of a done job."""
    return STATISTICS[query.kind](dataset, query)
