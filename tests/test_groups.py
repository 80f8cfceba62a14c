"""The course groups read off the row table: each group's numbers, in any order, by both parsers.

The reference is written here from the csv module and a regular expression, sharing no code with
the loader: a group is the rows of one (question, location, category, stratum, years,
abbreviation), its values the cells that are finite numbers. Groups and values no longer come
in file order (no statistic depends on it), so they are compared as multisets.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections import defaultdict

import pytest
from test_arrow_loader import csv_text
from test_queries import CDC

from lestats.data import demo, row_columns
from lestats.data.loader import PARSER_VARIABLE, load_dataset

PARSERS = ["csv", "arrow"]
KEY = (
    "Question",
    "LocationDesc",
    "StratificationCategory1",
    "Stratification1",
    "YearStart",
    "YearEnd",
    "LocationAbbr",
)
NUMBERS = ("Data_Value", "Low_Confidence_Limit", "High_Confidence_Limit", "Sample_Size")
A_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)




def reference(text):
    """Group key -> sorted finite values, and how many rows count in no group."""
    rows = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(rows)]
    where = {name: header.index(name) for name in header if name}
    groups = defaultdict(list)
    uncounted = 0
    for row in rows:
        if len(row) != len(header):
            uncounted += bool(row)
            continue
        key = tuple(row[where[name]] if name in where else "" for name in KEY)
        cell = row[where["Data_Value"]]
        number = float(cell) if A_NUMBER.fullmatch(cell) else math.nan
        if math.isfinite(number) and abs(number) <= 1e300:
            groups[key].append(number)
        else:
            groups.setdefault(key, [])  # the group exists, without this row's value
            uncounted += 1
    return {key: sorted(values) for key, values in groups.items()}, uncounted


def loaded(path, parser, monkeypatch):
    monkeypatch.setenv(PARSER_VARIABLE, parser)
    if parser == "arrow":
        pytest.importorskip("pyarrow")
    dataset = load_dataset(path)
    return {key: sorted(values) for key, values in dataset.groups.items()}, dataset


@pytest.mark.skipif(CDC is None, reason="the CDC export is not in ../shared/data")
@pytest.mark.parametrize("parser", PARSERS)
def test_cdc_groups_hold_every_finite_value_once(monkeypatch, parser):
    expected, uncounted = reference(gzip.decompress(CDC.read_bytes()).decode("utf-8-sig"))
    groups, dataset = loaded(CDC, parser, monkeypatch)
    assert groups == expected
    assert (dataset.rows_read, dataset.rows_skipped) == (88_629, uncounted)
    assert uncounted > 0  # the suppressed rows: counted, never averaged


@pytest.mark.parametrize("parser", PARSERS)
def test_a_question_under_two_ids_is_one_group(tmp_path, monkeypatch, parser):
    """Two cells of the table (the ids differ) make one group: their values are joined."""
    header = list(demo.HEADER)
    rows = [list(record) for record in demo.iter_demo_records(300, 5)]
    qid = header.index("QuestionID")
    for row in rows[::3]:
        row[qid] = "Q999"  # same question text, another id
    path = tmp_path / "two-ids.csv"
    path.write_text(csv_text(header, rows))
    expected, uncounted = reference(path.read_text())
    groups, dataset = loaded(path, parser, monkeypatch)
    assert groups == expected
    assert dataset.rows_skipped == uncounted
    assert len(dataset.table.questions) > len({q.text for q in dataset.table.questions})


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("batch", [1, 2, 5, 512])
def test_malformed_and_empty_lines_across_batches(tmp_path, monkeypatch, parser, batch):
    """Rows of another width are counted, empty lines are not, wherever the batches end."""
    monkeypatch.setattr(row_columns, "ROW_BATCH", batch)
    header = list(demo.HEADER)
    rows = [list(record) for record in demo.iter_demo_records(60, 9)]
    rows[7] = rows[7][:-1]
    rows[20] = [*rows[20], "extra"]
    rows[21] = []
    rows[40] = ["lonely"]
    path = tmp_path / "bad-rows.csv"
    path.write_text(csv_text(header, rows))
    expected, uncounted = reference(path.read_text())
    groups, dataset = loaded(path, parser, monkeypatch)
    assert groups == expected
    assert (dataset.rows_read, dataset.rows_skipped) == (59, uncounted)
    assert len(dataset.table) == 56


@pytest.mark.parametrize("parser", PARSERS)
def test_absent_number_columns_read_as_nan_and_equal_numbers_sort_alike(
    tmp_path, monkeypatch, parser
):
    """No interval or sample size columns: NaN there; `30`, `30.0` and `3e1` are one number."""
    header = [
        "Question",
        "LocationDesc",
        "Data_Value",
        "StratificationCategory1",
        "Stratification1",
    ]
    rows = [
        ["Q", "Ohio", value, "Total", "Total"] for value in ["30.0", "3e1", "", "29.5", "30", "x"]
    ]
    path = tmp_path / "narrow.csv"
    path.write_text(csv_text(header, rows))
    groups, dataset = loaded(path, parser, monkeypatch)
    table = dataset.table
    assert list(table.value[:4]) == [29.5, 30.0, 30.0, 30.0]
    assert all(map(math.isnan, table.value[4:]))
    for column in (table.low, table.high, table.sample_size):
        assert all(map(math.isnan, column))
    assert groups == {("Q", "Ohio", "Total", "Total", "", "", ""): [29.5, 30.0, 30.0, 30.0]}
    assert dataset.rows_skipped == 2


@pytest.mark.parametrize("distinct", [1_000, 70_000])
def test_the_csv_path_table_is_the_arrow_paths_with_many_distinct_numbers(
    tmp_path, monkeypatch, distinct
):
    """Over 65,536 distinct number texts the csv path sorts by wider ranks: the same table."""
    pytest.importorskip("pyarrow")
    header = list(demo.HEADER)
    rows = [list(record) for record in demo.iter_demo_records(20_000, 3)]
    columns = [index for index, name in enumerate(header) if name.strip() in NUMBERS]
    assert len(columns) == len(NUMBERS)
    for index, row in enumerate(rows):
        for offset, column in enumerate(columns):
            row[column] = f"{(index * 4 + offset) % distinct / 7:.4f}"
    path = tmp_path / "many.csv"
    path.write_text(csv_text(header, rows))
    expected, uncounted = reference(path.read_text())
    tables = []
    for parser in PARSERS:
        groups, dataset = loaded(path, parser, monkeypatch)
        assert groups == expected
        assert dataset.rows_skipped == uncounted
        tables.append(dataset.table)
    by_csv, by_arrow = tables
    for column in ("keys", "footnote_codes", "value", "low", "high", "sample_size"):
        assert getattr(by_csv, column).tobytes() == getattr(by_arrow, column).tobytes(), column
    assert by_csv.fingerprint == by_arrow.fingerprint
