"""Tests for the synthetic demo dataset generator (``lestats.data.demo``).

Files are read back with the stdlib ``csv`` module only, so these tests pin
the layout independently of the project's own loader.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from typing import TYPE_CHECKING

import pytest

from lestats.data.demo import (
    DEMO_ROWS,
    DEMO_SEED,
    HEADER,
    iter_demo_lines,
    iter_demo_records,
    main,
    write_demo_csv,
)

if TYPE_CHECKING:
    import pathlib

N_COLUMNS = 34
N_QUESTIONS = 9
N_LOCATIONS = 55
N_STRATA = 28
FIRST_YEAR = 2011
LAST_YEAR = 2022
SMALL_ROWS = 200
FOOTNOTE_TEXT = "Data not available because sample size is insufficient."
DATASOURCE = "Behavioral Risk Factor Surveillance System"
DEMOGRAPHIC_COLUMNS = {
    "Total": "Total",
    "Age (years)": "Age(years)",
    "Education": "Education",
    "Gender": "Gender",
    "Income": "Income",
    "Race/Ethnicity": "Race/Ethnicity",
}
COL = {name: index for index, name in enumerate(HEADER)}


def _parse(lines: list[str]) -> list[list[str]]:
    """Parse CSV text lines with the stdlib reader."""
    return list(csv.reader(lines))


@pytest.fixture(scope="module")
def demo_rows() -> list[list[str]]:
    """The default demo dataset, parsed from its lines (header excluded)."""
    table = _parse(list(iter_demo_lines()))
    assert tuple(table[0]) == HEADER
    return table[1:]


def test_same_seed_same_lines_and_other_seed_differs() -> None:
    """Output is a pure function of (rows, seed)."""
    first = list(iter_demo_lines(SMALL_ROWS, 7))
    assert first == list(iter_demo_lines(SMALL_ROWS, 7))
    assert first != list(iter_demo_lines(SMALL_ROWS, 8))


def test_independent_of_global_random_state() -> None:
    """The generator must not read or advance the global RNG."""
    import random  # noqa: PLC0415 - only this test touches the global RNG

    random.seed(1)
    first = list(iter_demo_lines(SMALL_ROWS))
    state = random.getstate()
    random.seed(2)
    second = list(iter_demo_lines(SMALL_ROWS))
    random.setstate(state)
    assert first == second


def test_header_layout() -> None:
    """Header quirks (empty first cell, trailing space) are kept byte for byte."""
    assert len(HEADER) == N_COLUMNS
    assert HEADER[0] == ""
    assert "High_Confidence_Limit " in HEADER
    header_line = next(iter_demo_lines(0))
    assert header_line == ",".join(HEADER) + "\n"
    assert header_line.startswith(",YearStart,YearEnd,")


def test_lines_match_csv_writer_rendering_of_records() -> None:
    """Lines are exactly what ``csv.writer`` makes of the records."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(iter_demo_records())
    lines = list(iter_demo_lines())
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert "".join(lines) == buffer.getvalue()


def test_records_shape_and_index(demo_rows: list[list[str]]) -> None:
    """Every record has 34 cells and the index column counts from 0."""
    assert len(demo_rows) == DEMO_ROWS
    assert all(len(row) == N_COLUMNS for row in demo_rows)
    assert [row[0] for row in demo_rows] == [str(i) for i in range(DEMO_ROWS)]


def test_quoting_matches_export() -> None:
    """Cells with commas are quoted like the export (income, GeoLocation)."""
    text = "".join(iter_demo_lines())
    assert ',"$75,000 or greater",' in text
    assert ',"(' in text


def test_fixed_columns(demo_rows: list[list[str]]) -> None:
    """Constant columns and year bounds hold on every record."""
    for row in demo_rows:
        assert row[COL["YearStart"]] == row[COL["YearEnd"]]
        assert FIRST_YEAR <= int(row[COL["YearStart"]]) <= LAST_YEAR
        assert row[COL["Datasource"]] == DATASOURCE
        assert row[COL["Data_Value_Unit"]] == ""
        assert row[COL["Data_Value_Type"]] == "Value"
        assert row[COL["DataValueTypeID"]] == "VALUE"
    years = {row[COL["YearStart"]] for row in demo_rows}
    assert len(years) == LAST_YEAR - FIRST_YEAR + 1


def test_question_metadata(demo_rows: list[list[str]]) -> None:
    """Nine questions, each with one consistent class/topic/id tuple."""
    meta = {
        row[COL["Question"]]: (
            row[COL["Class"]],
            row[COL["Topic"]],
            row[COL["ClassID"]],
            row[COL["TopicID"]],
            row[COL["QuestionID"]],
        )
        for row in demo_rows
    }
    assert len(meta) == N_QUESTIONS
    by_id = {ids[4]: ids for ids in meta.values()}
    assert sorted(by_id) == [
        "Q018",
        "Q019",
        "Q036",
        "Q037",
        "Q043",
        "Q044",
        "Q045",
        "Q046",
        "Q047",
    ]
    assert by_id["Q036"][:4] == (
        "Obesity / Weight Status",
        "Obesity / Weight Status",
        "OWS",
        "OWS1",
    )
    assert by_id["Q018"][:4] == (
        "Fruits and Vegetables",
        "Fruits and Vegetables - Behavior",
        "FV",
        "FV1",
    )
    assert by_id["Q047"][:4] == ("Physical Activity", "Physical Activity - Behavior", "PA", "PA1")
    assert meta["Percent of adults aged 18 years and older who have obesity"][4] == "Q036"
    consistent = {
        (row[COL["Question"]], row[COL["QuestionID"]], row[COL["ClassID"]]) for row in demo_rows
    }
    assert len(consistent) == N_QUESTIONS


def test_locations(demo_rows: list[list[str]]) -> None:
    """55 locations with one abbreviation, FIPS id and GeoLocation each."""
    locations = {
        (
            row[COL["LocationDesc"]],
            row[COL["LocationAbbr"]],
            row[COL["LocationID"]],
            row[COL["GeoLocation"]],
        )
        for row in demo_rows
    }
    assert len(locations) == N_LOCATIONS
    by_abbr = {abbr: (desc, fips, geo) for desc, abbr, fips, geo in locations}
    assert len(by_abbr) == N_LOCATIONS
    assert by_abbr["US"] == ("National", "59", "")
    assert by_abbr["DC"][:2] == ("District of Columbia", "11")
    assert by_abbr["GU"][:2] == ("Guam", "66")
    assert by_abbr["PR"][:2] == ("Puerto Rico", "72")
    assert by_abbr["VI"][:2] == ("Virgin Islands", "78")
    assert by_abbr["OH"][:2] == ("Ohio", "39")
    for abbr, (_desc, _fips, geo) in by_abbr.items():
        if abbr == "US":
            continue
        assert geo.startswith("(")
        assert geo.endswith(")")
        lat, lon = (float(part) for part in geo[1:-1].split(", "))
        assert -90.0 <= lat <= 90.0
        assert -180.0 <= lon <= 180.0


def test_stratifications_fill_their_column(demo_rows: list[list[str]]) -> None:
    """28 pairs; only the pair's demographic column repeats Stratification1."""
    pairs = {
        (
            row[COL["StratificationCategory1"]],
            row[COL["Stratification1"]],
            row[COL["StratificationCategoryId1"]],
            row[COL["StratificationID1"]],
        )
        for row in demo_rows
    }
    assert len(pairs) == N_STRATA
    assert ("Total", "Total", "OVR", "OVERALL") in pairs
    assert ("Age (years)", "65 or older", "AGEYR", "AGEYR65PLUS") in pairs
    assert ("Income", "$75,000 or greater", "INC", "INC75PLUS") in pairs
    assert ("Race/Ethnicity", "American Indian/Alaska Native", "RACE", "RACENAA") in pairs
    assert {pair[0] for pair in pairs} == set(DEMOGRAPHIC_COLUMNS)
    for row in demo_rows:
        filled = DEMOGRAPHIC_COLUMNS[row[COL["StratificationCategory1"]]]
        for column in DEMOGRAPHIC_COLUMNS.values():
            expected = row[COL["Stratification1"]] if column == filled else ""
            assert row[COL[column]] == expected


def test_every_combo_present(demo_rows: list[list[str]]) -> None:
    """Each (question, location, stratification) combo appears at least once."""
    combos = {
        (row[COL["QuestionID"]], row[COL["LocationAbbr"]], row[COL["StratificationID1"]])
        for row in demo_rows
    }
    assert len(combos) == N_QUESTIONS * N_LOCATIONS * N_STRATA


def test_question_location_pairs_covered_for_small_counts() -> None:
    """Even with few rows, all (question, location) pairs appear once possible."""
    rows = N_QUESTIONS * N_LOCATIONS
    pairs = {
        (record[COL["QuestionID"]], record[COL["LocationAbbr"]])
        for record in iter_demo_records(rows, 3)
    }
    assert len(pairs) == rows


def test_measure_shapes(demo_rows: list[list[str]]) -> None:
    """Normal, footnoted and empty rows are shaped as in the export."""
    footnoted = 0
    empty = 0
    for row in demo_rows:
        value = row[COL["Data_Value"]]
        alt = row[COL["Data_Value_Alt"]]
        symbol = row[COL["Data_Value_Footnote_Symbol"]]
        note = row[COL["Data_Value_Footnote"]]
        low = row[COL["Low_Confidence_Limit"]]
        high = row[COL["High_Confidence_Limit "]]
        size = row[COL["Sample_Size"]]
        if not value:
            empty += 1
            assert (alt, low, high, size) == ("", "", "", "")
            continue
        number = float(value)
        assert 0.0 <= number <= 100.0
        assert value == f"{number:.1f}"
        if symbol:
            footnoted += 1
            assert (symbol, note) == ("~", FOOTNOTE_TEXT)
            assert (alt, low, high, size) == ("", "", "", "")
        else:
            assert (note, alt) == ("", value)
            assert float(low) <= number <= float(high)
            assert low == f"{float(low):.1f}"
            assert high == f"{float(high):.1f}"
            assert size.endswith(".0")
            assert int(float(size)) > 0
    assert 0.03 * DEMO_ROWS <= footnoted <= 0.10 * DEMO_ROWS
    assert 0.003 * DEMO_ROWS <= empty <= 0.02 * DEMO_ROWS


def test_means_look_plausible(demo_rows: list[list[str]]) -> None:
    """Per-question means fall in a believable percentage range."""
    values: dict[str, list[float]] = {}
    for row in demo_rows:
        if row[COL["Data_Value"]]:
            values.setdefault(row[COL["QuestionID"]], []).append(float(row[COL["Data_Value"]]))
    for numbers in values.values():
        mean = sum(numbers) / len(numbers)
        assert 15.0 <= mean <= 75.0


def test_rows_argument_and_validation() -> None:
    """Small counts work (including zero) and negative counts are rejected."""
    assert list(iter_demo_records(0)) == []
    assert len(list(iter_demo_records(1))) == 1
    assert len(list(iter_demo_lines(10))) == 11
    with pytest.raises(ValueError, match="rows"):
        iter_demo_records(-1)


def test_large_counts_are_a_superset_of_combos() -> None:
    """Above the default size every combo still appears."""
    rows = DEMO_ROWS + 1_000
    records = iter_demo_records(rows, DEMO_SEED + 1)
    seen = [
        (record[COL["QuestionID"]], record[COL["LocationAbbr"]], record[COL["StratificationID1"]])
        for record in records
    ]
    assert len(seen) == rows
    combos = set(seen)
    assert len(combos) == N_QUESTIONS * N_LOCATIONS * N_STRATA


@pytest.mark.parametrize("name", ["demo.csv", "demo.csv.gz"])
@pytest.mark.parametrize("rows", [1, 10, 500])
def test_write_round_trip(tmp_path: pathlib.Path, name: str, rows: int) -> None:
    """Written files (plain or gzip) read back to the generated records."""
    target = tmp_path / "sub" / name
    result = write_demo_csv(target, rows=rows, seed=11)
    assert result == target
    opener = gzip.open if name.endswith(".gz") else open
    with opener(target, "rt", encoding="utf-8", newline="") as stream:
        table = list(csv.reader(stream))
    assert tuple(table[0]) == HEADER
    assert table[1:] == list(iter_demo_records(rows, 11))
    assert [path.name for path in target.parent.iterdir()] == [name]


def test_gzip_output_is_deterministic(tmp_path: pathlib.Path) -> None:
    """Compressed bytes depend only on (rows, seed), not on name or time."""
    first = write_demo_csv(tmp_path / "a.csv.gz", rows=50)
    second = write_demo_csv(tmp_path / "b.csv.gz", rows=50)
    assert first.read_bytes() == second.read_bytes()


def test_write_replaces_existing_file(tmp_path: pathlib.Path) -> None:
    """An existing file is atomically replaced, leaving no temporary behind."""
    target = tmp_path / "demo.csv"
    target.write_text("old\n", encoding="utf-8")
    write_demo_csv(target, rows=3)
    assert target.read_text(encoding="utf-8") == "".join(iter_demo_lines(3))
    assert list(tmp_path.iterdir()) == [target]


def test_cli_writes_file(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``main`` writes the requested file and reports one line."""
    target = tmp_path / "cli.csv"
    assert main(["--rows", "25", "--seed", "5", "--out", str(target)]) == 0
    with target.open(encoding="utf-8", newline="") as stream:
        table = list(csv.reader(stream))
    assert len(table) == 1 + 25
    assert table[1:] == list(iter_demo_records(25, 5))
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert str(target) in out


def test_cli_defaults_and_errors(tmp_path: pathlib.Path) -> None:
    """Defaults match the module constants; bad arguments exit with an error."""
    target = tmp_path / "default.csv"
    assert main(["--out", str(target)]) == 0
    with target.open(encoding="utf-8", newline="") as stream:
        head = list(itertools.islice(csv.reader(stream), 3))
    assert head[1:] == list(itertools.islice(iter_demo_records(DEMO_ROWS, DEMO_SEED), 2))
    with pytest.raises(SystemExit):
        main(["--rows", "-3", "--out", str(target)])
    with pytest.raises(SystemExit):
        main([])
