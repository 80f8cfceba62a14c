"""The registry's validation of the course statistics: whether a request is answerable (spec §2,
§4 errors)."""

from __future__ import annotations

import pytest
from reference import ENDPOINTS, STATE_ENDPOINTS

from lestats.data.dataset import Dataset, Record
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import COURSE_STATISTICS, default_registry
from lestats.errors import InvalidQuery, LeStatsError

OBESITY = "Percent of adults aged 18 years and older who have obesity"
STATES = frozenset({"Ohio", "Guam", "National", "Alabama", "District of Columbia"})
NOT_STRINGS = [1, 1.5, True, ["Ohio"], {"state": "Ohio"}, b"Ohio"]

SPEC_BEST_IS_MIN = (
    "Percent of adults aged 18 years and older who have an overweight classification",
    "Percent of adults aged 18 years and older who have obesity",
    "Percent of adults who engage in no leisure-time physical activity",
    "Percent of adults who report consuming fruit less than one time daily",
    "Percent of adults who report consuming vegetables less than one time daily",
)
SPEC_BEST_IS_MAX = (
    (
        "Percent of adults who achieve at least 150 minutes a week of moderate-intensity aerobic "
        "physical activity or 75 minutes a week of vigorous-intensity aerobic activity (or an "
        "equivalent combination)"
    ),
    (
        "Percent of adults who achieve at least 150 minutes a week of moderate-intensity aerobic "
        "physical activity or 75 minutes a week of vigorous-intensity aerobic physical activity "
        "and engage in muscle-strengthening activities on 2 or more days a week"
    ),
    (
        "Percent of adults who achieve at least 300 minutes a week of moderate-intensity aerobic "
        "physical activity or 150 minutes a week of vigorous-intensity aerobic activity (or an "
        "equivalent combination)"
    ),
    "Percent of adults who engage in muscle-strengthening activities on 2 or more days a week",
)


REGISTRY = default_registry()


def make_query(endpoint, question, state=None, *, states):
    """Validate as the engine does, over a dataset holding `states` (for the obesity question)."""
    dataset = Dataset.from_records(Record(OBESITY, state, "30.0") for state in states)
    given = {k: v for k, v in (("question", question), ("state", state)) if v is not None}
    return REGISTRY.validate(endpoint, given, dataset)


def invalid(endpoint, question, state=None, states=STATES) -> InvalidQuery:
    with pytest.raises(InvalidQuery) as caught:
        make_query(endpoint, question, state, states=states)
    error = caught.value
    assert isinstance(error, LeStatsError)
    assert error.reason
    assert str(error) == error.reason
    return error


def test_the_nine_questions_match_the_spec():
    assert BEST_IS_MIN == SPEC_BEST_IS_MIN
    assert BEST_IS_MAX == SPEC_BEST_IS_MAX
    assert REGISTRY.questions(Dataset.from_records([])) == SPEC_BEST_IS_MIN + SPEC_BEST_IS_MAX
    assert all(REGISTRY.direction(question) == "min" for question in SPEC_BEST_IS_MIN)
    assert all(REGISTRY.direction(question) == "max" for question in SPEC_BEST_IS_MAX)


def test_the_nine_endpoints():
    assert COURSE_STATISTICS == ENDPOINTS
    assert tuple(s.name for s in REGISTRY.course_statistics()) == ENDPOINTS
    assert {s.name for s in REGISTRY.course_statistics() if s.needs_state} == STATE_ENDPOINTS


@pytest.mark.parametrize("question", SPEC_BEST_IS_MIN + SPEC_BEST_IS_MAX)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_valid_query_for_every_endpoint_and_question(endpoint, question):
    query = make_query(endpoint, question, "Ohio", states=STATES)
    assert query == Query(endpoint, question, "Ohio" if endpoint in STATE_ENDPOINTS else None)


@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("endpoint", sorted(STATE_ENDPOINTS))
def test_every_known_state(endpoint, state):
    assert make_query(endpoint, OBESITY, state, states=STATES).state == state


@pytest.mark.parametrize("states", [STATES, sorted(STATES), tuple(STATES), set(STATES)])
def test_states_may_be_any_collection(states):
    assert make_query("state_mean", OBESITY, "Guam", states=states).state == "Guam"
    error = invalid("state_mean", OBESITY, "Atlantis", states=states)
    assert error.allowed == tuple(sorted(STATES))


@pytest.mark.parametrize("endpoint", ["", "state", "states_means", "Best5", "get_results", "jobs"])
def test_unknown_endpoint(endpoint):
    error = invalid(endpoint, OBESITY, "Ohio")
    assert repr(endpoint) in error.reason
    assert error.allowed == REGISTRY.names
    assert error.allowed[:9] == ENDPOINTS  # the course's nine first, then the v2 query kinds


@pytest.mark.parametrize(
    "question",
    [
        "",
        OBESITY.lower(),
        OBESITY.upper(),
        OBESITY + " ",
        " " + OBESITY,
        OBESITY.replace(" ", "  ", 1),
        "Percent of adults who have obesity",
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unknown_question_lists_the_nine(endpoint, question):
    error = invalid(endpoint, question, "Ohio")
    assert "question" in error.reason
    assert error.allowed is not None
    assert len(error.allowed) == 9
    assert set(error.allowed) == set(SPEC_BEST_IS_MIN + SPEC_BEST_IS_MAX)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_missing_question(endpoint):
    error = invalid(endpoint, None, "Ohio")
    assert "missing" in error.reason
    assert "question" in error.reason


@pytest.mark.parametrize("question", NOT_STRINGS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_question_not_a_string(endpoint, question):
    error = invalid(endpoint, question, "Ohio")
    assert "question" in error.reason
    assert "string" in error.reason


@pytest.mark.parametrize("state", ["", "ohio", "Ohio ", "Atlantis", "OH"])
@pytest.mark.parametrize("endpoint", sorted(STATE_ENDPOINTS))
def test_unknown_state_lists_the_loaded_states(endpoint, state):
    error = invalid(endpoint, OBESITY, state)
    assert "state" in error.reason
    assert error.allowed == tuple(sorted(STATES))


@pytest.mark.parametrize("endpoint", sorted(STATE_ENDPOINTS))
def test_missing_state(endpoint):
    error = invalid(endpoint, OBESITY, None)
    assert "missing" in error.reason
    assert "state" in error.reason


@pytest.mark.parametrize("state", NOT_STRINGS)
@pytest.mark.parametrize("endpoint", sorted(STATE_ENDPOINTS))
def test_state_not_a_string(endpoint, state):
    error = invalid(endpoint, OBESITY, state)
    assert "state" in error.reason
    assert "string" in error.reason


@pytest.mark.parametrize("state", [None, "Atlantis", 42, ["Ohio"], {"x": 1}])
@pytest.mark.parametrize("endpoint", sorted(set(ENDPOINTS) - STATE_ENDPOINTS))
def test_state_is_ignored_without_a_state_endpoint(endpoint, state):
    assert make_query(endpoint, OBESITY, state, states=STATES) == Query(endpoint, OBESITY)


def test_question_is_checked_before_state():
    error = invalid("state_mean", "nope", "Atlantis")
    assert "question" in error.reason
    assert len(error.allowed or ()) == 9


def test_no_states_loaded():
    error = invalid("state_mean", OBESITY, "Ohio", states=frozenset())
    assert error.allowed == ()


def test_query_is_frozen():
    query = make_query("best5", OBESITY, states=STATES)
    with pytest.raises(AttributeError):
        query.question = "x"
