"""The nine statistics of spec §3: hand-computed answers on tiny datasets, then a property test
against the naive reference on many random ones."""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import ENDPOINTS, STATE_ENDPOINTS, parse_value, reference

from lestats.data.dataset import Dataset, Record
from lestats.data.loader import load_dataset
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import COURSE_STATISTICS, compute, default_registry

OBESITY = "Percent of adults aged 18 years and older who have obesity"
MUSCLE = "Percent of adults who engage in muscle-strengthening activities on 2 or more days a week"
FRUIT = "Percent of adults who report consuming fruit less than one time daily"
VEGETABLES = "Percent of adults who report consuming vegetables less than one time daily"
AGE = "Age (years)"
RICH = "$75,000 or greater"

# (question, state, Data_Value text, category, stratum)
ROWS: list[tuple[str, str, str, str, str]] = [
    # Obesity, lower is better: ten states with a numeric mean, ties at 5th/6th and 8th/9th.
    (OBESITY, "Wyoming", "25", "Income", RICH),
    (OBESITY, "Texas", "27", AGE, "18 - 24"),
    (OBESITY, "Texas", "28", AGE, "18 - 24"),
    (OBESITY, "National", "nan", "Total", "Total"),
    (OBESITY, "National", "28", "Total", "Total"),
    (OBESITY, "Guam", "29", "Gender", "Male"),
    (OBESITY, "Guam", "inf", "Gender", "Female"),
    (OBESITY, "Alaska", "33", "Total", "Total"),
    (OBESITY, "Alaska", "28", "", ""),  # counts for Alaska, not by category
    (OBESITY, "Puerto Rico", "30.5", "Gender", "Male"),
    (OBESITY, "Virgin Islands", "31", "Race/Ethnicity", "Hispanic"),
    (OBESITY, "Virgin Islands", "", "Race/Ethnicity", "Asian"),
    (OBESITY, "Alabama", "30", AGE, "18 - 24"),
    (OBESITY, "Alabama", "34", AGE, "25 - 34"),
    (OBESITY, "Alabama", "", "Total", "Total"),
    (OBESITY, "District of Columbia", "32", "Total", ""),  # counts, not by category
    (OBESITY, "Ohio", "40", "Total", "Total"),
    (OBESITY, "Ohio", "-inf", "Total", "Total"),
    (OBESITY, "Ohio", "NaN", AGE, "18 - 24"),
    (OBESITY, "Maine", "abc", "Total", "Total"),  # a row, but no numeric one
    (OBESITY, "Maine", "~", "Total", "Total"),
    # Muscle strengthening, higher is better: ten states, tie at 5th/6th (Oregon, Utah).
    (MUSCLE, "Nevada", "20", "Total", "Total"),
    (MUSCLE, "Iowa", "22", "Total", "Total"),
    (MUSCLE, "Kansas", "24", "Total", "Total"),
    (MUSCLE, "Idaho", "26", "Total", "Total"),
    (MUSCLE, "Utah", "30", "Total", "Total"),
    (MUSCLE, "Oregon", "30", "Total", "Total"),
    (MUSCLE, "Maine", "33", "Total", "Total"),
    (MUSCLE, "Hawaii", "35", "Total", "Total"),
    (MUSCLE, "Vermont", "38", "Total", "Total"),
    (MUSCLE, "Colorado", "41", "Total", "Total"),
    # Fruit: rows, none numeric. Vegetables: no rows at all.
    (FRUIT, "Ohio", "", "Total", "Total"),
    (FRUIT, "Ohio", "n/a", AGE, "18 - 24"),
]

OBESITY_ASCENDING = {
    "Wyoming": 25.0,
    "Texas": 27.5,
    "National": 28.0,
    "Guam": 29.0,
    "Alaska": 30.5,
    "Puerto Rico": 30.5,
    "Virgin Islands": 31.0,
    "Alabama": 32.0,
    "District of Columbia": 32.0,
    "Ohio": 40.0,
}
OBESITY_GLOBAL = 395.5 / 13  # 13 numeric rows; the mean of the state means would be 30.55
MUSCLE_ASCENDING = {
    "Nevada": 20.0,
    "Iowa": 22.0,
    "Kansas": 24.0,
    "Idaho": 26.0,
    "Oregon": 30.0,
    "Utah": 30.0,
    "Maine": 33.0,
    "Hawaii": 35.0,
    "Vermont": 38.0,
    "Colorado": 41.0,
}
MUSCLE_GLOBAL = 299.0 / 10

HEADER = (
    "",
    "YearStart",
    "YearEnd",
    "LocationAbbr",
    "LocationDesc",
    "Datasource",
    "Question",
    "Data_Value",
    "Data_Value_Footnote_Symbol",
    "High_Confidence_Limit ",
    "GeoLocation",
    "StratificationCategory1",
    "Stratification1",
)
GEO = "(40.06, -82.40)"


def write_course_csv(path, rows, *, gz=False):
    """Write rows in the course copy's quirks: index column, padded header, quoted commas."""
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for index, (question, state, value, category, stratum) in enumerate(rows):
            cells = [index, 2020, 2020, "XX", state, "BRFSS", question, value, "", "1.0", GEO]
            writer.writerow([*cells, category, stratum])
    return path


@pytest.fixture(scope="module", params=["records", "csv", "csv.gz"])
def dataset(request, tmp_path_factory):
    if request.param == "records":
        return Dataset.from_records(Record(*row) for row in ROWS)
    path = tmp_path_factory.mktemp("stats") / f"tiny.{request.param}"
    return load_dataset(write_course_csv(path, ROWS, gz=request.param.endswith(".gz")))


def run(dataset, endpoint, question, state=None):
    result = compute(dataset, Query(endpoint, question, state))
    assert_floats(result)
    return result


def assert_floats(result):
    """Every leaf value is a float (never an int, never NaN or infinity)."""
    for value in result.values():
        if isinstance(value, dict):
            assert_floats(value)
        else:
            assert type(value) is float, value
            assert math.isfinite(value)


def assert_same(result, expected):
    """Equal as dicts and in key order, nested dicts included."""
    assert result == expected
    assert list(result) == list(expected)
    for key, value in expected.items():
        if isinstance(value, dict):
            assert list(result[key]) == list(value)


# --- hand-computed answers ---------------------------------------------------------------------


def test_row_counts(dataset):
    assert dataset.rows_read == len(ROWS)
    # Eight obesity rows (nan, inf, empty twice, -inf, NaN, abc, ~) and both fruit rows.
    assert dataset.rows_skipped == 10
    assert dataset.rows == len(ROWS) - 10


def test_states_mean_ties_by_name(dataset):
    assert_same(run(dataset, "states_mean", OBESITY), OBESITY_ASCENDING)
    assert_same(run(dataset, "states_mean", MUSCLE), MUSCLE_ASCENDING)


def test_state_mean(dataset):
    assert_same(run(dataset, "state_mean", OBESITY, "Alabama"), {"Alabama": 32.0})
    assert_same(run(dataset, "state_mean", OBESITY, "Alaska"), {"Alaska": 30.5})
    assert_same(run(dataset, "state_mean", OBESITY, "National"), {"National": 28.0})
    assert_same(run(dataset, "state_mean", OBESITY, "Ohio"), {"Ohio": 40.0})
    assert_same(run(dataset, "state_mean", MUSCLE, "Maine"), {"Maine": 33.0})


def test_best5_worst5_lower_is_better_tie_at_fifth(dataset):
    assert OBESITY in BEST_IS_MIN
    assert_same(
        run(dataset, "best5", OBESITY),
        {"Wyoming": 25.0, "Texas": 27.5, "National": 28.0, "Guam": 29.0, "Alaska": 30.5},
    )
    assert_same(
        run(dataset, "worst5", OBESITY),
        {
            "Ohio": 40.0,
            "Alabama": 32.0,
            "District of Columbia": 32.0,
            "Virgin Islands": 31.0,
            "Alaska": 30.5,
        },
    )


def test_best5_worst5_higher_is_better_tie_at_fifth(dataset):
    assert MUSCLE in BEST_IS_MAX
    assert_same(
        run(dataset, "best5", MUSCLE),
        {"Colorado": 41.0, "Vermont": 38.0, "Hawaii": 35.0, "Maine": 33.0, "Oregon": 30.0},
    )
    assert_same(
        run(dataset, "worst5", MUSCLE),
        {"Nevada": 20.0, "Iowa": 22.0, "Kansas": 24.0, "Idaho": 26.0, "Oregon": 30.0},
    )


def test_global_mean_is_over_rows_not_states(dataset):
    result = run(dataset, "global_mean", OBESITY)
    assert_same(result, {"global_mean": OBESITY_GLOBAL})
    state_means = OBESITY_ASCENDING.values()
    assert result["global_mean"] != pytest.approx(sum(state_means) / len(state_means))
    assert_same(run(dataset, "global_mean", MUSCLE), {"global_mean": MUSCLE_GLOBAL})


def test_diff_from_mean(dataset):
    expected = {state: OBESITY_GLOBAL - mean for state, mean in OBESITY_ASCENDING.items()}
    assert_same(run(dataset, "diff_from_mean", OBESITY), expected)
    expected = {state: MUSCLE_GLOBAL - mean for state, mean in MUSCLE_ASCENDING.items()}
    assert_same(run(dataset, "diff_from_mean", MUSCLE), expected)


def test_state_diff_from_mean(dataset):
    assert_same(
        run(dataset, "state_diff_from_mean", OBESITY, "Puerto Rico"),
        {"Puerto Rico": OBESITY_GLOBAL - 30.5},
    )
    assert_same(
        run(dataset, "state_diff_from_mean", OBESITY, "District of Columbia"),
        {"District of Columbia": OBESITY_GLOBAL - 32.0},
    )
    assert_same(
        run(dataset, "state_diff_from_mean", MUSCLE, "Colorado"),
        {"Colorado": MUSCLE_GLOBAL - 41.0},
    )


def test_mean_by_category_skips_empty_category_or_stratum(dataset):
    assert_same(
        run(dataset, "mean_by_category", OBESITY),
        {
            "('Alabama', 'Age (years)', '18 - 24')": 30.0,
            "('Alabama', 'Age (years)', '25 - 34')": 34.0,
            "('Alaska', 'Total', 'Total')": 33.0,
            "('Guam', 'Gender', 'Male')": 29.0,
            "('National', 'Total', 'Total')": 28.0,
            "('Ohio', 'Total', 'Total')": 40.0,
            "('Puerto Rico', 'Gender', 'Male')": 30.5,
            "('Texas', 'Age (years)', '18 - 24')": 27.5,
            "('Virgin Islands', 'Race/Ethnicity', 'Hispanic')": 31.0,
            "('Wyoming', 'Income', '$75,000 or greater')": 25.0,
        },
    )


def test_state_mean_by_category(dataset):
    assert_same(
        run(dataset, "state_mean_by_category", OBESITY, "Alabama"),
        {"Alabama": {"('Age (years)', '18 - 24')": 30.0, "('Age (years)', '25 - 34')": 34.0}},
    )
    assert_same(
        run(dataset, "state_mean_by_category", OBESITY, "Alaska"),
        {"Alaska": {"('Total', 'Total')": 33.0}},
    )
    assert_same(
        run(dataset, "state_mean_by_category", OBESITY, "Wyoming"),
        {"Wyoming": {"('Income', '$75,000 or greater')": 25.0}},
    )
    # Rows for the question, but only with an empty stratum.
    assert_same(
        run(dataset, "state_mean_by_category", OBESITY, "District of Columbia"),
        {"District of Columbia": {}},
    )


@pytest.mark.parametrize("state", ["Maine", "Iowa", "Atlantis"])
def test_state_without_numeric_rows_for_the_question(dataset, state):
    # Maine: only non-numeric rows; Iowa: rows for another question; Atlantis: no rows at all.
    assert run(dataset, "state_mean", OBESITY, state) == {}
    assert run(dataset, "state_diff_from_mean", OBESITY, state) == {}
    assert run(dataset, "state_mean_by_category", OBESITY, state) == {state: {}}
    assert state not in run(dataset, "states_mean", OBESITY)
    assert state not in run(dataset, "diff_from_mean", OBESITY)
    assert not any(state in key for key in run(dataset, "mean_by_category", OBESITY))


@pytest.mark.parametrize("question", [FRUIT, VEGETABLES, "not a question"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_question_without_numeric_rows_is_empty_everywhere(dataset, endpoint, question):
    state = "Ohio" if endpoint in STATE_ENDPOINTS else None
    assert run(dataset, endpoint, question, state) == {}


def test_national_and_territories_are_states(dataset):
    ranked = run(dataset, "states_mean", OBESITY)
    for place in ("National", "Guam", "Puerto Rico", "Virgin Islands", "District of Columbia"):
        assert place in ranked
        assert run(dataset, "state_mean", OBESITY, place) == {place: ranked[place]}


def test_every_endpoint_is_registered():
    assert set(COURSE_STATISTICS) == set(ENDPOINTS)
    assert {s.name for s in default_registry().course_statistics()} == set(ENDPOINTS)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_integer_values_give_floats(endpoint):
    values = [33, "33", 34.0, "35"]
    records = [Record(MUSCLE, "Ohio", value, "Total", "Total") for value in values]
    records.append(Record(MUSCLE, "Iowa", 1, "Age", "18 - 24"))
    dataset = Dataset.from_records(records)
    state = "Ohio" if endpoint in STATE_ENDPOINTS else None
    result = run(dataset, endpoint, MUSCLE, state)
    assert result
    assert_same(result, reference(endpoint, MUSCLE, state, records))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_whole_tiny_dataset_matches_the_reference(dataset, endpoint):
    states = [*sorted({row[1] for row in ROWS}), "Atlantis"]
    for question in (*BEST_IS_MIN, *BEST_IS_MAX):
        for state in states if endpoint in STATE_ENDPOINTS else [None]:
            expected = reference(endpoint, question, state, ROWS)
            assert_same(run(dataset, endpoint, question, state), expected)


# --- exact, order-independent sums -------------------------------------------------------------


def test_fsum_one_tenth():
    rows = [(OBESITY, "Ohio", "0.1")] * 10
    assert sum([0.1] * 10) / 10 != 0.1  # what a naive sum would answer
    dataset = Dataset.from_records(Record(*row) for row in rows)
    assert_same(run(dataset, "state_mean", OBESITY, "Ohio"), {"Ohio": 0.1})
    assert_same(run(dataset, "global_mean", OBESITY), {"global_mean": 0.1})


def test_fsum_cancellation_in_any_order():
    values = ["1e16", "1.0", "-1e16", "1e100", "3.0", "-1e100"]
    assert sum(map(float, values)) != 4.0  # a left-to-right sum loses the small terms
    expected_mean = 4.0 / 6
    for order in itertools.permutations(values):
        records = [Record(OBESITY, "Ohio", value, "Total", "Total") for value in order]
        dataset = Dataset.from_records(records)
        assert_same(run(dataset, "state_mean", OBESITY, "Ohio"), {"Ohio": expected_mean})
        assert_same(run(dataset, "global_mean", OBESITY), {"global_mean": expected_mean})
        assert_same(
            run(dataset, "mean_by_category", OBESITY),
            {"('Ohio', 'Total', 'Total')": expected_mean},
        )


def test_results_do_not_depend_on_row_order():
    rng = random.Random(7)
    rows = [
        Record(
            rng.choice((OBESITY, MUSCLE)),
            rng.choice(("Ohio", "Iowa", "Utah", "Guam")),
            rng.choice(("0.1", "0.2", "0.3", "1e15", "-1e15", "33.3", "", "x")),
            rng.choice(("Total", AGE, "")),
            rng.choice(("Total", "18 - 24", "")),
            str(rng.choice((2011, 2020))),
        )
        for _ in range(300)
    ]
    baseline = Dataset.from_records(rows)
    for _ in range(5):
        rng.shuffle(rows)
        shuffled = Dataset.from_records(rows)
        for endpoint, question, state in itertools.product(
            ENDPOINTS, (OBESITY, MUSCLE), ("Ohio", "Guam")
        ):
            query = Query(endpoint, question, state)
            assert_same(compute(shuffled, query), compute(baseline, query))


def test_results_are_fresh_dicts():
    dataset = Dataset.from_records(Record(*row) for row in ROWS)
    for endpoint in ENDPOINTS:
        first = run(dataset, endpoint, OBESITY, "Alabama")
        first.clear()
        assert run(dataset, endpoint, OBESITY, "Alabama")
    nested = run(dataset, "state_mean_by_category", OBESITY, "Alabama")
    nested["Alabama"].clear()
    assert run(dataset, "state_mean_by_category", OBESITY, "Alabama")["Alabama"]


# --- property test against the naive reference -------------------------------------------------

QUESTIONS = (*BEST_IS_MIN, *BEST_IS_MAX)
STATE_POOL = (
    "Alabama",
    "District of Columbia",
    "Guam",
    "National",
    "Virgin Islands",
    "Virginia",
    "West Virginia",
)
PAIRS = (
    ("Total", "Total"),
    (AGE, "18 - 24"),
    (AGE, "25 - 34"),
    ("Age", "18 - 24"),  # sorts before "Age (years)" as a tuple, after it as a string
    ("Income", RICH),
    ("Race/Ethnicity", "Hispanic"),
    ("", ""),
    ("Gender", ""),
    ("", "Male"),
)
BAD_VALUES = ("", "abc", "nan", "inf", "-inf", "~", " ")


@st.composite
def datasets(draw):
    questions = draw(st.lists(st.sampled_from(QUESTIONS), min_size=1, max_size=3, unique=True))
    states = draw(st.lists(st.sampled_from(STATE_POOL), min_size=1, max_size=5, unique=True))
    value = st.one_of(
        st.integers(0, 80).map(lambda n: f"{n / 10:.1f}"),
        st.integers(0, 80).map(lambda n: f"{n / 10:.1f}"),
        st.sampled_from(BAD_VALUES),
    )
    row = st.tuples(
        st.sampled_from(questions), st.sampled_from(states), value, st.sampled_from(PAIRS)
    ).map(lambda t: (t[0], t[1], t[2], *t[3]))
    return questions, draw(st.lists(row, max_size=40))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_every_endpoint_matches_the_reference(drawn):
    questions, rows = drawn
    dataset = Dataset.from_records(Record(*row) for row in rows)
    assert dataset.rows_read == len(rows)
    assert dataset.rows_skipped == sum(parse_value(row[2]) is None for row in rows)
    absent_question = next(q for q in QUESTIONS if q not in questions)
    states = [*STATE_POOL, "Nowhere"]
    for question in (*questions, absent_question):
        for endpoint in ENDPOINTS:
            for state in states if endpoint in STATE_ENDPOINTS else [None]:
                result = compute(dataset, Query(endpoint, question, state))
                assert_floats(result)
                assert_same(result, reference(endpoint, question, state, rows))


def test_diff_never_infinite_for_huge_values():
    values = {"Alabama": "1.7e308", "Iowa": "-1.7e308", "Ohio": "1e308"}
    dataset = Dataset.from_records(Record(MUSCLE, state, v) for state, v in values.items())
    for state in values:
        run(dataset, "diff_from_mean", MUSCLE)  # run() asserts finite floats
        run(dataset, "state_diff_from_mean", MUSCLE, state)
