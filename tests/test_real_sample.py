"""340 real rows of the course copy, read in place from the shared data folder (never copied)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from reference import ENDPOINTS, STATE_ENDPOINTS, parse_rows, reference

from lestats.data.loader import load_dataset
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import compute

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "brfss-real-sample.csv"
OBESITY = "Percent of adults aged 18 years and older who have obesity"


@pytest.fixture(scope="module")
def rows():
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is not there")
    with SAMPLE.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def dataset(rows):
    assert rows
    return load_dataset(SAMPLE)


def test_loads_every_row(dataset, rows):
    assert len(rows) == 340
    assert dataset.rows_read == 340
    assert dataset.rows_skipped == 0
    assert len(dataset.states) == 55
    assert dataset.states == tuple(sorted({row["LocationDesc"] for row in rows}))
    for place in ("National", "District of Columbia", "Guam", "Puerto Rico", "Virgin Islands"):
        assert place in dataset.states


def test_ohio_obesity_by_hand(dataset, rows):
    ohio = [r for r in rows if r["Question"] == OBESITY and r["LocationDesc"] == "Ohio"]
    assert [(r["Data_Value"], r["Stratification1"]) for r in ohio] == [
        ("29.4", "$75,000 or greater"),
        ("30.8", "Data not reported"),
    ]
    assert compute(dataset, Query("state_mean", OBESITY, "Ohio")) == {"Ohio": (29.4 + 30.8) / 2}
    assert compute(dataset, Query("state_mean_by_category", OBESITY, "Ohio")) == {
        "Ohio": {
            "('Income', '$75,000 or greater')": 29.4,
            "('Income', 'Data not reported')": 30.8,
        }
    }


def test_single_row_states_by_hand(dataset, rows):
    """For every (question, state) with exactly one row, the state's mean is that row's value."""
    by_pair: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        by_pair.setdefault((row["Question"], row["LocationDesc"]), []).append(row)
    singles = {pair: group[0] for pair, group in by_pair.items() if len(group) == 1}
    assert len(singles) > 20
    for (question, state), row in singles.items():
        value = float(row["Data_Value"])
        assert compute(dataset, Query("state_mean", question, state)) == {state: value}
        key = str((row["StratificationCategory1"], row["Stratification1"]))
        by_category = compute(dataset, Query("state_mean_by_category", question, state))
        assert by_category == {state: {key: value}}


def test_global_mean_against_the_rows(dataset, rows):
    for question in (*BEST_IS_MIN, *BEST_IS_MAX):
        values = [float(r["Data_Value"]) for r in rows if r["Question"] == question]
        assert values
        expected = reference("global_mean", question, None, rows)
        assert expected["global_mean"] == pytest.approx(sum(values) / len(values))
        assert compute(dataset, Query("global_mean", question)) == expected


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_matches_the_reference(dataset, rows, endpoint):
    parsed = parse_rows(rows)
    states = [*dataset.states, "Atlantis"] if endpoint in STATE_ENDPOINTS else [None]
    for question in (*BEST_IS_MIN, *BEST_IS_MAX):
        for state in states:
            result = compute(dataset, Query(endpoint, question, state))
            expected = reference(endpoint, question, state, parsed)
            assert result == expected
            assert list(result) == list(expected)
