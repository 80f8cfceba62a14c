"""What the built-in statistics answer, typed, and job ids that carry their answer's type.

Stable API. A job's `data` travels as JSON, so the by-category statistics keep the course's
string keys (`"('Ohio', 'Age (years)', '18 - 24')"`, spec §3) in `Engine.result`, over HTTP and
in the result files alike. Python code that wants the tuples decodes them with
`category_means` and `state_category_means`.

`Engine.submit` returns a `JobId`: a plain `str` (`job_id_N`) at run time, and for type checkers
the type of the job's data, so that `engine.result(engine.submit("best5", q))` is a
`StateMeans`, not an `object`.
"""

from __future__ import annotations

import ast
from typing import Generic, TypedDict, TypeVar

R_co = TypeVar("R_co", covariant=True)

StateMeans = dict[str, float]
"""`states_mean`, `state_mean`, `best5`, `worst5`, `diff_from_mean`, `state_diff_from_mean`:
a value by state name, in the contract's order."""


class GlobalMean(TypedDict, total=False):
    """`global_mean`: the mean over all rows (absent, `{}`, when the question has none)."""

    global_mean: float


CategoryMeans = dict[str, float]
"""`mean_by_category`: a mean by `"('<state>', '<category>', '<stratum>')"`, sorted by the tuple."""

StateCategoryMeans = dict[str, dict[str, float]]
"""`state_mean_by_category`: `{state: {"('<category>', '<stratum>')": mean}}`."""


class JobId(str, Generic[R_co]):
    """A job's public id (`job_id_N`); `R_co` is the type of its data, for type checkers only."""

    __slots__ = ()


def category_key(key: str, size: int) -> tuple[str, ...]:
    """The tuple a by-category key spells (`"('Ohio', 'Total', 'Total')"`), of `size` strings.

    Raises:
        ValueError: `key` is not the text of a tuple of `size` strings.
    """
    try:
        value = ast.literal_eval(key)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a category key: {key!r:.100}") from exc
    if (
        not isinstance(value, tuple)
        or len(value) != size
        or not all(isinstance(part, str) for part in value)
    ):
        raise ValueError(f"not a category key of {size} strings: {key!r:.100}")
    return value


def category_means(data: CategoryMeans) -> dict[tuple[str, str, str], float]:
    """`mean_by_category`'s data with real `(state, category, stratum)` keys, in its order."""
    decoded: dict[tuple[str, str, str], float] = {}
    for key, mean in data.items():
        state, category, stratum = category_key(key, 3)
        decoded[state, category, stratum] = mean
    return decoded


def state_category_means(data: StateCategoryMeans) -> dict[str, dict[tuple[str, str], float]]:
    """`state_mean_by_category`'s data with real `(category, stratum)` keys, in its order."""
    decoded: dict[str, dict[tuple[str, str], float]] = {}
    for state, means in data.items():
        inner: dict[tuple[str, str], float] = {}
        for key, mean in means.items():
            category, stratum = category_key(key, 2)
            inner[category, stratum] = mean
        decoded[state] = inner
    return decoded
