"""Loading CSV files: both layouts and their quirks, row counts, and every way a file can be bad."""

from __future__ import annotations

import csv
import errno
import gzip
import io
import os
import random
import re
from pathlib import Path

import pytest
from reference import ENDPOINTS, STATE_ENDPOINTS

from lestats.data.loader import PARSER_VARIABLE, REQUIRED_COLUMNS, load_dataset
from lestats.data.query import Query
from lestats.data.statistics import compute
from lestats.errors import DatasetError

OBESITY = "Percent of adults aged 18 years and older who have obesity"
MUSCLE = "Percent of adults who engage in muscle-strengthening activities on 2 or more days a week"
FOOTNOTE = "Data not available because sample size is insufficient."

# The course copy's 34 columns: an unnamed index column first, `High_Confidence_Limit ` padded.
COURSE_HEADER = [
    "",
    "YearStart",
    "YearEnd",
    "LocationAbbr",
    "LocationDesc",
    "Datasource",
    "Class",
    "Topic",
    "Question",
    "Data_Value_Unit",
    "Data_Value_Type",
    "Data_Value",
    "Data_Value_Alt",
    "Data_Value_Footnote_Symbol",
    "Data_Value_Footnote",
    "Low_Confidence_Limit",
    "High_Confidence_Limit ",
    "Sample_Size",
    "Total",
    "Age(years)",
    "Education",
    "Gender",
    "Income",
    "Race/Ethnicity",
    "GeoLocation",
    "ClassID",
    "TopicID",
    "QuestionID",
    "DataValueTypeID",
    "LocationID",
    "StratificationCategory1",
    "Stratification1",
    "StratificationCategoryId1",
    "StratificationID1",
]
# The CDC download: no index column, no stray spaces.
CDC_HEADER = [name.strip() for name in COURSE_HEADER[1:]]
MINIMAL_HEADER = list(REQUIRED_COLUMNS)

# (year, abbr, state, question, value, footnote symbol, category, stratum)
SAMPLE = [
    ("2017", "OH", "Ohio", OBESITY, "29.4", "", "Income", "$75,000 or greater"),
    ("2017", "OH", "Ohio", OBESITY, "30.8", "", "Income", "Data not reported"),
    ("2019", "OH", "Ohio", OBESITY, "35.0", "~", "Total", "Total"),
    ("2013", "GU", "Guam", OBESITY, "31.5", "", "Age (years)", "18 - 24"),
    ("2013", "US", "National", MUSCLE, "31.4", "", "Age (years)", "35 - 44"),
    ("2014", "US", "National", MUSCLE, "32.6", "", "Gender", "Female"),
]


def cells(index, sample):
    """One full row as a dict keyed by the stripped column names."""
    year, abbr, state, question, value, symbol, category, stratum = sample
    return {
        "": str(index),
        "YearStart": year,
        "YearEnd": year,
        "LocationAbbr": abbr,
        "LocationDesc": state,
        "Datasource": "Behavioral Risk Factor Surveillance System",
        "Class": "Obesity / Weight Status",
        "Topic": "Obesity / Weight Status",
        "Question": question,
        "Data_Value_Unit": "",
        "Data_Value_Type": "Value",
        "Data_Value": value,
        "Data_Value_Alt": value,
        "Data_Value_Footnote_Symbol": symbol,
        "Data_Value_Footnote": FOOTNOTE if symbol else "",
        "Low_Confidence_Limit": "27.1",
        "High_Confidence_Limit": "31.8",
        "Sample_Size": "2599.0",
        "Total": stratum if category == "Total" else "",
        "Age(years)": stratum if category == "Age (years)" else "",
        "Education": "",
        "Gender": stratum if category == "Gender" else "",
        "Income": stratum if category == "Income" else "",
        "Race/Ethnicity": "",
        "GeoLocation": "(40.060210141, -82.404260056)",
        "ClassID": "OWS",
        "TopicID": "OWS1",
        "QuestionID": "Q036",
        "DataValueTypeID": "VALUE",
        "LocationID": "39",
        "StratificationCategory1": category,
        "Stratification1": stratum,
        "StratificationCategoryId1": "INC",
        "StratificationID1": "INC75PLUS",
    }


def csv_text(header, samples=SAMPLE, *, newline="\n"):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    for index, sample in enumerate(samples):
        row = cells(index, sample)
        writer.writerow([row[name.strip()] for name in header])
    return out.getvalue()


def write(path, text, *, bom=False):
    data = (("\ufeff" if bom else "") + text).encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def answers(dataset):
    """Every endpoint's answer for both questions and every state, for comparing loads."""
    result = {}
    for endpoint in ENDPOINTS:
        for question in (OBESITY, MUSCLE):
            for state in ("Ohio", "Guam", "National") if endpoint in STATE_ENDPOINTS else [None]:
                data = compute(dataset, Query(endpoint, question, state))
                result[endpoint, question, state] = (data, list(data))
    return result


@pytest.fixture
def course_file(tmp_path):
    return write(tmp_path / "course.csv", csv_text(COURSE_HEADER))


# --- layouts ---------------------------------------------------------------------------------


def test_course_copy_layout(course_file):
    text = course_file.read_text()
    assert text.startswith(",YearStart,")
    assert "High_Confidence_Limit ," in text
    assert '"$75,000 or greater"' in text  # quoted fields with commas
    assert '"(40.060210141, -82.404260056)"' in text

    dataset = load_dataset(course_file)
    assert dataset.rows_read == len(SAMPLE)
    assert dataset.rows_skipped == 0
    assert dataset.states == ("Guam", "National", "Ohio")
    assert dataset.source == str(course_file)
    assert compute(dataset, Query("state_mean", OBESITY, "Ohio")) == {
        "Ohio": (29.4 + 30.8 + 35.0) / 3
    }
    assert compute(dataset, Query("state_mean_by_category", OBESITY, "Ohio")) == {
        "Ohio": {
            "('Income', '$75,000 or greater')": 29.4,
            "('Income', 'Data not reported')": 30.8,
            "('Total', 'Total')": 35.0,
        }
    }


def test_years_and_abbreviations_are_kept(course_file):
    dataset = load_dataset(course_file)
    kept = {key[1:2] + key[4:] for key in dataset.groups}
    assert kept == {
        ("Ohio", "2017", "2017", "OH"),
        ("Ohio", "2019", "2019", "OH"),
        ("Guam", "2013", "2013", "GU"),
        ("National", "2013", "2013", "US"),
        ("National", "2014", "2014", "US"),
    }


def test_footnoted_rows_count(course_file):
    dataset = load_dataset(course_file)
    by_category = compute(dataset, Query("mean_by_category", OBESITY))
    assert by_category["('Ohio', 'Total', 'Total')"] == 35.0


def test_cdc_download_layout_gives_the_same_answers(tmp_path, course_file):
    text = csv_text(CDC_HEADER)
    assert text.startswith("YearStart,")
    dataset = load_dataset(write(tmp_path / "cdc.csv", text))
    assert dataset.rows_read == len(SAMPLE)
    assert dataset.rows_skipped == 0
    assert answers(dataset) == answers(load_dataset(course_file))


@pytest.mark.parametrize("header", [COURSE_HEADER, CDC_HEADER], ids=["course", "cdc"])
def test_gzip(tmp_path, course_file, header):
    dataset = load_dataset(write(tmp_path / "data.csv.gz", csv_text(header)))
    assert dataset.rows_read == len(SAMPLE)
    assert answers(dataset) == answers(load_dataset(course_file))


@pytest.mark.parametrize("name", ["bom.csv", "bom.csv.gz"])
def test_utf8_bom_before_a_required_column(tmp_path, course_file, name):
    # Question first, so a BOM left in the header would hide a required column.
    header = ["Question", *(name for name in CDC_HEADER if name != "Question")]
    dataset = load_dataset(write(tmp_path / name, csv_text(header), bom=True))
    assert answers(dataset) == answers(load_dataset(course_file))


def test_utf8_bom_in_course_copy(tmp_path, course_file):
    dataset = load_dataset(write(tmp_path / "bom.csv", csv_text(COURSE_HEADER), bom=True))
    assert answers(dataset) == answers(load_dataset(course_file))


def test_optional_columns_absent(tmp_path, course_file):
    dataset = load_dataset(write(tmp_path / "minimal.csv", csv_text(MINIMAL_HEADER)))
    assert dataset.rows_read == len(SAMPLE)
    assert dataset.rows_skipped == 0
    assert {key[4:] for key in dataset.groups} == {("", "", "")}
    assert answers(dataset) == answers(load_dataset(course_file))


def test_columns_in_any_order_with_stray_spaces(tmp_path, course_file):
    header = [f" {name}  " for name in reversed(CDC_HEADER)]
    dataset = load_dataset(write(tmp_path / "shuffled.csv", csv_text(header)))
    assert answers(dataset) == answers(load_dataset(course_file))


def test_crlf_line_endings(tmp_path, course_file):
    text = csv_text(COURSE_HEADER, newline="\r\n")
    dataset = load_dataset(write(tmp_path / "crlf.csv", text))
    assert dataset.rows_read == len(SAMPLE)
    assert answers(dataset) == answers(load_dataset(course_file))


def test_accepts_str_and_path(course_file):
    assert answers(load_dataset(str(course_file))) == answers(load_dataset(Path(course_file)))


# --- row counts ------------------------------------------------------------------------------


def test_skipped_rows_are_counted(tmp_path):
    samples = [
        ("2017", "OH", "Ohio", OBESITY, "30", "", "Total", "Total"),
        ("2017", "OH", "Ohio", OBESITY, "", "~", "Total", "Total"),  # empty value
        ("2017", "OH", "Ohio", OBESITY, "n/a", "", "Total", "Total"),  # not a number
        ("2017", "IA", "Iowa", OBESITY, "20", "", "Total", "Total"),
    ]
    text = csv_text(COURSE_HEADER, samples) + "99,2017,2017,OH,Ohio,short row\n"
    dataset = load_dataset(write(tmp_path / "counts.csv", text))
    assert dataset.rows_read == 5
    assert dataset.rows_skipped == 3
    assert dataset.rows == 2
    assert compute(dataset, Query("states_mean", OBESITY)) == {"Iowa": 20.0, "Ohio": 30.0}


def test_non_finite_values_are_skipped(tmp_path):
    samples = [
        ("2017", "OH", "Ohio", OBESITY, value, "", "Total", "Total")
        for value in ("30", "nan", "inf", "-inf", "NaN", "1e999")
    ]
    dataset = load_dataset(write(tmp_path / "nonfinite.csv", csv_text(COURSE_HEADER, samples)))
    assert dataset.rows_read == 6
    assert dataset.rows_skipped == 5
    assert compute(dataset, Query("global_mean", OBESITY)) == {"global_mean": 30.0}


def test_blank_lines_are_not_rows(tmp_path):
    text = csv_text(COURSE_HEADER) + "\n\n"
    dataset = load_dataset(write(tmp_path / "blank.csv", text))
    assert dataset.rows_read == len(SAMPLE)
    assert dataset.rows_skipped == 0


# --- errors ----------------------------------------------------------------------------------


def load_error(path) -> DatasetError:
    """Load `path`, expecting a DatasetError that starts with the path; return it."""
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    error = caught.value
    assert str(error).startswith(str(path))
    assert error.source == str(path)
    assert error.problem
    assert error.problem in str(error)
    return error


def assert_names(error, pattern):
    assert re.search(pattern, error.problem, re.IGNORECASE), error.problem


def test_missing_file(tmp_path):
    assert_names(load_error(tmp_path / "absent.csv"), r"no such file|not found|does not exist")


def test_missing_gz_file(tmp_path):
    assert_names(load_error(tmp_path / "absent.csv.gz"), r"no such file|not found|does not exist")


def test_directory(tmp_path):
    directory = tmp_path / "data.csv"
    directory.mkdir()
    assert_names(load_error(directory), r"directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert_names(load_error(path), r"empty")


def test_empty_gz_file(tmp_path):
    path = tmp_path / "empty.csv.gz"
    path.write_bytes(gzip.compress(b""))
    assert_names(load_error(path), r"empty")


@pytest.mark.parametrize("header", [COURSE_HEADER, CDC_HEADER], ids=["course", "cdc"])
def test_header_only(tmp_path, header):
    path = write(tmp_path / "header.csv", csv_text(header, []))
    assert_names(load_error(path), r"no data|no rows")


@pytest.mark.parametrize("column", REQUIRED_COLUMNS)
def test_missing_one_required_column(tmp_path, column):
    header = [name for name in COURSE_HEADER if name != column]
    error = load_error(write(tmp_path / "missing.csv", csv_text(header)))
    assert f"missing column '{column}'" in error.problem
    for other in REQUIRED_COLUMNS:
        if other != column:
            assert f"'{other}'" not in error.problem


def test_missing_several_required_columns(tmp_path):
    absent = ("Data_Value", "Stratification1")
    header = [name for name in COURSE_HEADER if name not in absent]
    error = load_error(write(tmp_path / "missing.csv", csv_text(header)))
    assert_names(error, r"missing")
    for name in absent:
        assert f"'{name}'" in error.problem
    assert "'Question'" not in error.problem


def test_not_csv_json(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('{"Question": "x", "LocationDesc": "y"}\n')
    assert_names(load_error(path), r"missing")


@pytest.mark.parametrize("seed", range(8))
def test_not_csv_random_bytes(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "random.csv"
    path.write_bytes(rng.randbytes(rng.randrange(1, 20_000)))
    load_error(path)


@pytest.mark.parametrize("seed", range(4))
def test_not_csv_random_ascii(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "ascii.csv"
    path.write_bytes(bytes(rng.randrange(128) for _ in range(5000)))
    load_error(path)


def test_not_csv_binary_with_a_valid_header(tmp_path):
    # The header is fine; what follows is binary.
    path = tmp_path / "binary.csv"
    path.write_bytes(csv_text(COURSE_HEADER, []).encode() + random.Random(1).randbytes(50_000))
    load_error(path)


def test_not_csv_huge_field(tmp_path):
    text = csv_text(MINIMAL_HEADER, []) + f'{OBESITY},"{"x" * 200_000}",1,Total,Total\n'
    assert_names(load_error(write(tmp_path / "huge.csv", text)), r"csv")


@pytest.mark.parametrize("name", ["latin1.csv", "latin1.csv.gz"])
def test_not_utf8(tmp_path, name):
    text = csv_text(COURSE_HEADER).replace("Ohio", "Ohi\xf6")
    data = text.encode("latin-1")
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert_names(load_error(path), r"utf-?8")


def test_gz_that_is_plain_text_loads_by_its_content(tmp_path):
    path = tmp_path / "plain.csv.gz"
    path.write_text(
        csv_text(COURSE_HEADER, [("2017", "OH", "Ohio", OBESITY, "30.5", "", "Total", "Total")])
    )
    assert load_dataset(path).states == ("Ohio",)


def test_gzip_named_in_upper_case_or_without_suffix(tmp_path):
    body = gzip.compress(
        csv_text(
            COURSE_HEADER, [("2017", "OH", "Ohio", OBESITY, "30.5", "", "Total", "Total")]
        ).encode()
    )
    for name in ("DATA.CSV.GZ", "data.csv"):
        (tmp_path / name).write_bytes(body)
        assert load_dataset(tmp_path / name).states == ("Ohio",)


def test_every_row_malformed_is_refused(tmp_path):
    path = write(tmp_path / "short.csv", csv_text(COURSE_HEADER, []) + "1,2,3\n4,5,6\n")
    assert_names(load_error(path), r"none of its 2 data rows")


def test_absurd_values_are_skipped_not_served(tmp_path):
    samples = [
        ("2017", "OH", "Ohio", OBESITY, value, "", "Total", "Total")
        for value in ("1e301", "-2e305", "30.0")
    ]
    dataset = load_dataset(write(tmp_path / "absurd.csv", csv_text(COURSE_HEADER, samples)))
    assert (dataset.rows_read, dataset.rows_skipped) == (3, 2)


def big_gzip():
    samples = [
        ("2017", "OH", f"State {i}", OBESITY, f"{i / 7:.3f}", "", "Total", "Total")
        for i in range(2_000)
    ]
    return gzip.compress(csv_text(COURSE_HEADER, samples).encode())


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_gz_truncated(tmp_path, keep):
    data = big_gzip()
    path = tmp_path / "truncated.csv.gz"
    path.write_bytes(data[: int(len(data) * keep)])
    assert_names(load_error(path), r"gzip")


@pytest.mark.parametrize("where", [0.3, -6])
def test_gz_corrupt(tmp_path, where):
    data = bytearray(big_gzip())
    data[int(len(data) * where) if isinstance(where, float) else where] ^= 0xFF
    path = tmp_path / "corrupt.csv.gz"
    path.write_bytes(bytes(data))
    assert_names(load_error(path), r"gzip")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads chmod 000 files")
def test_unreadable_file(course_file):
    course_file.chmod(0)
    try:
        assert_names(load_error(course_file), r"permission")
    finally:
        course_file.chmod(0o644)


def test_permission_denied_even_as_root(course_file, monkeypatch):
    def deny(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "open", deny)
    assert_names(load_error(course_file), r"permission")


def test_other_os_error(course_file, monkeypatch):
    def fail(*_args, **_kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "open", fail)
    assert_names(load_error(course_file), r"input/output")


def test_values_whose_sum_overflows(tmp_path):
    samples = [("2017", "OH", "Ohio", OBESITY, "1e308", "", "Total", "Total")] * 2
    path = write(tmp_path / "huge.csv", csv_text(COURSE_HEADER, samples))
    try:
        dataset = load_dataset(path)
    except DatasetError as error:  # refusing the file is acceptable
        refused = error
    else:
        refused = None
    if refused is not None:
        assert str(refused).startswith(str(path))
        return
    for endpoint in ENDPOINTS:
        data = compute(dataset, Query(endpoint, OBESITY, "Ohio"))
        assert "inf" not in repr(data)
        assert "nan" not in repr(data)


# --- what float() takes but a CSV number is not; repeated columns; the kept columns ----------


@pytest.fixture
def csv_parser(monkeypatch):
    """Load with the csv module (the reference parser) even where pyarrow is installed."""
    monkeypatch.setenv(PARSER_VARIABLE, "csv")


@pytest.mark.usefixtures("csv_parser")
@pytest.mark.parametrize(
    "text", ["1_000", "\u0661\u0662", "\uff15", "\uff11\uff12.\uff15", "\u00a012", "12\u2003"]
)
def test_what_float_takes_is_not_a_number(tmp_path, text):
    assert float(text)  # Python takes it ...
    samples = [(*sample[:4], text, *sample[5:]) for sample in SAMPLE]
    dataset = load_dataset(write(tmp_path / "odd.csv", csv_text(CDC_HEADER, samples)))
    assert dataset.rows_read == len(SAMPLE)
    assert dataset.rows_skipped == len(SAMPLE)  # ... but no statistic counts it
    assert dataset.questions == ()
    table = dataset.table
    assert len(table) == len(SAMPLE)
    assert all(table.suppressed(row) for row in range(len(table)))


@pytest.mark.usefixtures("csv_parser")
@pytest.mark.parametrize("twice", ["Data_Value", " Data_Value", "Data_Value "])
def test_two_data_value_columns_are_refused(tmp_path, twice):
    header = [*CDC_HEADER, twice]
    text = csv_text(CDC_HEADER).splitlines()
    lines = [",".join([*map(repr, header)]).replace("'", ""), *(line + ",1.0" for line in text[1:])]
    path = write(tmp_path / "twice.csv", "\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as error:
        load_dataset(path)
    assert error.value.source == str(path)
    assert "'Data_Value' appears twice" in error.value.problem
    assert f"columns {CDC_HEADER.index('Data_Value') + 1} and {len(header)}" in error.value.problem


@pytest.mark.usefixtures("csv_parser")
def test_a_repeated_unused_column_still_loads(tmp_path, course_file):
    header = [*COURSE_HEADER, "GeoLocation"]
    text = csv_text(COURSE_HEADER).splitlines()
    lines = [",".join(header), *(line + ",x" for line in text[1:])]
    dataset = load_dataset(write(tmp_path / "twice.csv", "\n".join(lines) + "\n"))
    assert answers(dataset) == answers(load_dataset(course_file))


def kept_rows(dataset):
    """The table's rows as plain tuples, for comparing loads."""
    table = dataset.table
    shape = table.shape
    result = []
    for row in range(len(table)):
        question, stratum, period, location = shape.unpack(table.keys[row])
        footnote = table.footnotes[table.footnote_codes[row]]
        result.append(
            (
                table.questions[question],
                table.locations[location],
                table.strata[stratum],
                table.periods[period],
                footnote,
                table.value[row],
                table.low[row],
                table.high[row],
                table.sample_size[row],
            )
        )
    return sorted(result, key=repr)


@pytest.mark.parametrize("parser", ["csv", "arrow"])
@pytest.mark.parametrize("header", [COURSE_HEADER, CDC_HEADER], ids=["course", "cdc"])
def test_the_table_keeps_intervals_sizes_footnotes_and_ids(tmp_path, monkeypatch, parser, header):
    monkeypatch.setenv(PARSER_VARIABLE, parser)
    dataset = load_dataset(write(tmp_path / "kept.csv", csv_text(header)))
    rows = kept_rows(dataset)
    assert len(rows) == len(SAMPLE)
    by_value = {row[5]: row for row in rows}
    question, location, stratum, period, footnote, value, low, high, size = by_value[35.0]
    assert (question.id, question.text, question.class_, question.topic) == (
        "Q036",
        OBESITY,
        "Obesity / Weight Status",
        "Obesity / Weight Status",
    )
    assert (location.abbr, location.name, location.kind) == ("OH", "Ohio", "state")
    assert (stratum.category, stratum.category_id, stratum.name, stratum.id) == (
        "Total",
        "INC",
        "Total",
        "INC75PLUS",
    )
    assert period.year == 2019
    assert (footnote.symbol, footnote.text) == ("~", FOOTNOTE)
    assert (value, low, high, size) == (35.0, 27.1, 31.8, 2599.0)
    assert dataset.table.suppressed(dataset.table.value.index(35.0))  # the CDC withheld it
    kinds = {row[1].abbr: row[1].kind for row in rows}
    assert kinds == {"OH": "state", "GU": "territory", "US": "national"}


def test_the_fingerprint_ignores_row_order_and_parser_and_sees_any_change(tmp_path, monkeypatch):
    forward = write(tmp_path / "forward.csv", csv_text(CDC_HEADER))
    backward = write(tmp_path / "backward.csv", csv_text(COURSE_HEADER, SAMPLE[::-1]))
    changed = write(
        tmp_path / "changed.csv",
        csv_text(CDC_HEADER, [*SAMPLE[:-1], (*SAMPLE[-1][:4], "32.7", *SAMPLE[-1][5:])]),
    )
    fingerprints = set()
    for parser in ("csv", "arrow"):
        monkeypatch.setenv(PARSER_VARIABLE, parser)
        fingerprints.add(load_dataset(forward).fingerprint)
        fingerprints.add(load_dataset(backward).fingerprint)
    assert len(fingerprints) == 1
    (same,) = fingerprints
    assert re.fullmatch("[0-9a-f]{64}", same)
    assert load_dataset(changed).fingerprint != same
