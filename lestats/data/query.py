"""What a job asks for, and the one place that decides whether a request is answerable.

The HTTP front end and the embedding facade both build queries here, so an unknown question or
state is refused the same way, with the same list of allowed values, whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN, QUESTIONS
from lestats.errors import InvalidQuery

if TYPE_CHECKING:
    from collections.abc import Collection

NEEDS_STATE = MappingProxyType(
    {
        "states_mean": False,
        "state_mean": True,
        "best5": False,
        "worst5": False,
        "global_mean": False,
        "diff_from_mean": False,
        "state_diff_from_mean": True,
        "mean_by_category": False,
        "state_mean_by_category": True,
    }
)
"""Every endpoint of spec §3, and whether it takes a `state` besides the `question`."""

ENDPOINTS: tuple[str, ...] = tuple(NEEDS_STATE)
ALLOWED_QUESTIONS: tuple[str, ...] = BEST_IS_MIN + BEST_IS_MAX


@dataclass(frozen=True, slots=True)
class Query:
    """One statistics request: an endpoint, a question, and a state for the `state_*` endpoints.

    Built through `make_query`, a Query is known to be answerable; built directly (in tests), it
    is taken as it is.
    """

    endpoint: str
    question: str
    state: str | None = None


def make_query(
    endpoint: str, question: object, state: object = None, *, states: Collection[str]
) -> Query:
    """Validate a request against the nine questions and the loaded `states`.

    `state` is ignored by endpoints that take none, as extra JSON keys are.

    Raises:
        InvalidQuery: with the reason and, where there is one, the list of allowed values.
    """
    if endpoint not in NEEDS_STATE:
        raise InvalidQuery(f"unknown endpoint {endpoint!r}", ENDPOINTS)
    if question is None:
        raise InvalidQuery("missing 'question'")
    if not isinstance(question, str):
        raise InvalidQuery("'question' must be a string")
    if question not in QUESTIONS:
        raise InvalidQuery(f"unknown question {question!r}", ALLOWED_QUESTIONS)
    if not NEEDS_STATE[endpoint]:
        return Query(endpoint, question)
    if state is None:
        raise InvalidQuery(f"missing 'state' (required by {endpoint})")
    if not isinstance(state, str):
        raise InvalidQuery("'state' must be a string")
    if state not in states:
        raise InvalidQuery(f"unknown state {state!r}", tuple(sorted(states)))
    return Query(endpoint, question, state)
