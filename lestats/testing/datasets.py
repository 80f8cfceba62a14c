"""Small datasets built in memory, for tests that need known answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lestats.data.dataset import Dataset, Record
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

OBESITY = BEST_IS_MIN[1]
"""A lower-is-better question of `tiny_dataset`."""
MUSCLE = BEST_IS_MAX[3]
"""A higher-is-better question of `tiny_dataset`."""
TINY_STATES = ("Alaska", "Ohio", "Texas", "Wyoming")
"""The states of `tiny_dataset`, sorted."""


def tiny_dataset() -> Dataset:
    """Four states, two questions (one of each direction), with category/stratum breakdowns.

    Known answers: obesity means Ohio 32.0, Texas 27.5, Alaska 33.0, Wyoming 25.0 (global 29.5);
    muscle-strengthening Ohio 20.0, Texas 24.0, Alaska 31.0, Wyoming 22.5.
    """
    records = [
        Record(OBESITY, "Ohio", 30.0, "Age (years)", "18 - 24"),
        Record(OBESITY, "Ohio", 34.0, "Age (years)", "25 - 34"),
        Record(OBESITY, "Texas", 28.0, "Gender", "Male"),
        Record(OBESITY, "Texas", 27.0, "Gender", "Female"),
        Record(OBESITY, "Alaska", 33.0, "Total", "Total"),
        Record(OBESITY, "Wyoming", 25.0, "Income", "$75,000 or greater"),
        Record(MUSCLE, "Ohio", 20.0, "Age (years)", "18 - 24"),
        Record(MUSCLE, "Texas", 24.0, "Gender", "Male"),
        Record(MUSCLE, "Alaska", 31.0, "Total", "Total"),
        Record(MUSCLE, "Wyoming", 22.5, "Total", "Total"),
    ]
    return Dataset.from_records(records, source="tiny")


def build_dataset(
    values: Mapping[str, Mapping[str, float | Sequence[float]]], *, source: str = "<test>"
) -> Dataset:
    """A dataset from `{question: {state: value or values}}`, every row in the Total stratum.

    `build_dataset({OBESITY: {"Ohio": [30.0, 34.0], "Texas": 27.5}})` has three rows.
    """
    records = [
        Record(question, state, value, "Total", "Total")
        for question, by_state in values.items()
        for state, given in by_state.items()
        for value in ((given,) if isinstance(given, int | float) else given)
    ]
    return Dataset.from_records(records, source=source)
