"""The pyarrow loader gives exactly what the csv loader gives: groups, counts, answers and errors.

Each file is loaded by both paths and compared: the same group keys in the same order, the same
values bit for bit, the same rows read and skipped, the same answer (as JSON text, so key order
and float formatting count) from every endpoint for every question and state. Good files must be
loaded by pyarrow itself (the `no_deferral` fixture fails a test whose file goes to the csv path);
bad files must be refused by both paths with the same message.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import random
import struct
from pathlib import Path

import pytest

from lestats.data import demo, loader, row_columns
from lestats.data.loader import PARSER_VARIABLE, REQUIRED_COLUMNS, load_dataset
from lestats.data.query import Query
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import COURSE_STATISTICS as ENDPOINTS
from lestats.data.statistics import compute, default_registry
from lestats.errors import DatasetError

pa = pytest.importorskip("pyarrow")
pc = pytest.importorskip("pyarrow.compute")

from lestats.data import arrow_loader  # noqa: E402 - needs pyarrow

REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "brfss-real-sample.csv"
QUESTIONS = BEST_IS_MIN + BEST_IS_MAX
HEADER = list(demo.HEADER)  # the course copy's: unnamed index column, `High_Confidence_Limit `
COLUMN = {name.strip(): index for index, name in enumerate(HEADER)}
VALUE = COLUMN["Data_Value"]
FOOTNOTE = COLUMN["Data_Value_Footnote"]  # a column no statistic uses

ODD_VALUES = [
    "",
    "n/a",
    "NA",
    "N/A",
    "NULL",
    "null",
    "#N/A",
    "None",
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "1e999",
    "1e301",
    "-2e305",
    " 30 ",
    "30\n",
    "\t7.5",
    "1_000",
    "+5",
    ".5",
    "5.",
    "1e5",
    "1E-3",
    "0x10",
    "\u0663\u0660",  # Arabic-Indic digits: float() takes them
    "-0",
    "-0.0",
    "0",
    "00012.50",
    "0.1000000000000000055511151231257827",
    "123456789012345.123456789012345",
    "1234567890123456",
    "9007199254740993",
    "2.2250738585072011e-308",
    "~",
    "30%",
    "3,5",
    '"quoted"',
]


# --- building files ----------------------------------------------------------------------------


def demo_rows(rows=600, seed=11):
    return [list(record) for record in demo.iter_demo_records(rows, seed)]


def csv_text(header, rows, *, newline="\n"):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write(path, text, *, bom=False):
    data = text if isinstance(text, bytes) else text.encode()
    if bom:
        data = b"\xef\xbb\xbf" + data
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def select(columns, rows):
    """Keep the columns at `columns` (indices into HEADER), in that order."""
    return [HEADER[index] for index in columns], [[row[i] for i in columns] for row in rows]


def with_values(rows, values):
    """Rows whose Data_Value cycles through `values`."""
    changed = []
    for index, row in enumerate(rows):
        copy = list(row)
        copy[VALUE] = values[index % len(values)]
        changed.append(copy)
    return changed


# --- comparing ---------------------------------------------------------------------------------


@pytest.fixture
def no_deferral(monkeypatch):
    """Fail if the arrow path hands a file to the csv path (it must load good files itself)."""

    def deferred(_path, *, source):
        pytest.fail(f"the arrow path deferred {source} to the csv path")

    monkeypatch.setattr(arrow_loader, "load_with_csv", deferred)


@pytest.fixture
def deferrals(monkeypatch):
    """Record the files the arrow path hands to the csv path."""
    calls = []
    real = arrow_loader.load_with_csv

    def deferred(path, *, source):
        calls.append(source)
        return real(path, source=source)

    monkeypatch.setattr(arrow_loader, "load_with_csv", deferred)
    return calls


def answers(dataset):
    """Every endpoint's answer for every question and state, as JSON text."""
    states = [*dataset.states, "Nowhere"]
    result = {}
    for endpoint in ENDPOINTS:
        for question in QUESTIONS:
            for state in states if default_registry()[endpoint].needs_state else [None]:
                data = compute(dataset, Query(endpoint, question, state))
                result[endpoint, question, state] = json.dumps(data)
    return result


def assert_same(path):
    """Load `path` by both paths and compare everything; return the arrow path's dataset."""
    expected = loader.load_with_csv(path, source=str(path))
    actual = arrow_loader.load_with_arrow(path, source=str(path))
    assert list(actual.groups) == list(expected.groups)
    for key, values in expected.groups.items():
        assert actual.groups[key].tobytes() == values.tobytes(), key  # -0.0 and NaN bits too
    assert (actual.rows_read, actual.rows_skipped) == (expected.rows_read, expected.rows_skipped)
    assert actual.source == expected.source == str(path)
    assert actual.states == expected.states
    assert actual.questions == expected.questions
    assert answers(actual) == answers(expected)
    assert_same_table(actual.table, expected.table)
    return actual


def assert_same_table(actual, expected):
    """The v2 row tables: the same entities, rows and numbers, bit for bit; the same fingerprint."""
    for entity in ("questions", "locations", "strata", "periods", "footnotes"):
        assert getattr(actual, entity) == getattr(expected, entity), entity
    for column in ("keys", "footnote_codes", "value", "low", "high", "sample_size"):
        assert getattr(actual, column).tobytes() == getattr(expected, column).tobytes(), column
    assert actual.fingerprint == expected.fingerprint


# --- parity on good files ----------------------------------------------------------------------


@pytest.mark.usefixtures("no_deferral")
@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_tied_rows_sorted_in_small_batches_give_the_same_table(tmp_path, monkeypatch, batch):
    """The csv path reads rows a batch at a time (`ROW_BATCH`); any batch size, one table.

    The demo file repeats rows (same place, several numbers), so runs of ties cross every
    small batch boundary; the arrow path, which does not batch, is the reference.
    """
    rows = demo_rows(1_000)
    falling = [f"{80 - n}.5" for n in range(8)]
    for first in range(0, 200, 20):  # runs of 8 rows at one place, numbers falling
        rows[first + 1 : first + 9] = with_values([rows[first]] * 8, falling)
    path = write(tmp_path / "ties.csv", csv_text(HEADER, rows))
    monkeypatch.setattr(row_columns, "ROW_BATCH", batch)
    assert_same(path)


@pytest.mark.usefixtures("no_deferral")
def test_course_copy_layout(tmp_path):
    path = write(tmp_path / "course.csv", csv_text(HEADER, demo_rows()))
    dataset = assert_same(path)
    assert dataset.rows_read == 600


@pytest.mark.usefixtures("no_deferral")
def test_cdc_layout(tmp_path):
    header, rows = select(range(1, len(HEADER)), demo_rows())
    assert_same(write(tmp_path / "cdc.csv", csv_text(header, rows)))


@pytest.mark.parametrize("header", ["course", "cdc"])
@pytest.mark.parametrize("bom", [False, True], ids=["plain", "bom"])
@pytest.mark.usefixtures("no_deferral")
def test_gzip(tmp_path, header, bom):
    columns = range(len(HEADER)) if header == "course" else range(1, len(HEADER))
    names, rows = select(columns, demo_rows())
    assert_same(write(tmp_path / "data.csv.gz", csv_text(names, rows), bom=bom))


@pytest.mark.usefixtures("no_deferral")
def test_gzip_whatever_the_name(tmp_path):
    data = gzip.compress(csv_text(HEADER, demo_rows(50)).encode())
    (tmp_path / "data.csv").write_bytes(data)
    assert_same(tmp_path / "data.csv")


@pytest.mark.usefixtures("no_deferral")
def test_utf8_bom_before_a_required_column(tmp_path):
    columns = [COLUMN["Question"], *(i for i in range(1, len(HEADER)) if i != COLUMN["Question"])]
    header, rows = select(columns, demo_rows())
    assert_same(write(tmp_path / "bom.csv", csv_text(header, rows), bom=True))


@pytest.mark.usefixtures("no_deferral")
def test_optional_key_columns_absent(tmp_path):
    header, rows = select([COLUMN[name] for name in REQUIRED_COLUMNS], demo_rows())
    dataset = assert_same(write(tmp_path / "minimal.csv", csv_text(header, rows)))
    assert {key[4:] for key in dataset.groups} == {("", "", "")}


@pytest.mark.usefixtures("no_deferral")
def test_some_optional_key_columns_absent(tmp_path):
    columns = [i for i in range(len(HEADER)) if HEADER[i] not in ("YearEnd", "LocationAbbr")]
    header, rows = select(columns, demo_rows())
    assert_same(write(tmp_path / "partial.csv", csv_text(header, rows)))


@pytest.mark.usefixtures("no_deferral")
def test_columns_in_any_order_with_stray_spaces(tmp_path):
    header, rows = select(list(reversed(range(1, len(HEADER)))), demo_rows())
    header = [f"  {name.strip()} " for name in header]
    assert_same(write(tmp_path / "shuffled.csv", csv_text(header, rows)))


@pytest.mark.usefixtures("no_deferral")
def test_repeated_unused_column_name_loads(tmp_path):
    header = [*HEADER, "GeoLocation "]  # no statistic and no query reads GeoLocation
    rows = [[*row, "(1, 2)"] for row in demo_rows(300)]
    assert_same(write(tmp_path / "twice.csv", csv_text(header, rows)))


@pytest.mark.parametrize("name", ["Data_Value", " Data_Value ", "Question ", "Sample_Size"])
def test_repeated_used_column_name_is_refused_by_both(tmp_path, monkeypatch, name):
    header = [*HEADER, name]  # which of the two holds the data cannot be told
    rows = [[*row, "12.5"] for row in demo_rows(50)]
    path = write(tmp_path / "twice.csv", csv_text(header, rows))
    message = str(refusal(path, monkeypatch))
    assert str(path) in message
    assert f"column {name.strip()!r} appears twice" in message


@pytest.mark.usefixtures("no_deferral")
@pytest.mark.parametrize(
    "text", ["1_000", "\u0661\u0662", "\uff15", "\uff11\uff12.\uff15", "1\u00a0", "\u00a012"]
)
def test_what_float_takes_but_is_no_number_counts_in_no_statistic(tmp_path, text):
    # float() takes underscores, Arabic-Indic and full-width digits, Unicode spaces; CSV does not.
    rows = with_values(demo_rows(200), [text, "30.5"])
    dataset = assert_same(write(tmp_path / "odd.csv", csv_text(HEADER, rows)))
    assert dataset.rows_skipped >= 100
    assert all(value == 30.5 for values in dataset.groups.values() for value in values)
    table = dataset.table
    assert sorted({v for v in table.value if not math.isnan(v)}) == [30.5]


@pytest.mark.usefixtures("no_deferral")
def test_quoted_commas_quotes_and_newlines(tmp_path):
    rows = demo_rows(300)
    for index, row in enumerate(rows):
        if index % 3 == 0:
            row[COLUMN["Stratification1"]] = f'Income, "band"\n{index % 4}'
        if index % 5 == 0:
            row[FOOTNOTE] = "line one\nline two\n\nline three, with a comma"
    text = csv_text(HEADER, rows)
    assert '"Income, ""band""\n' in text
    dataset = assert_same(write(tmp_path / "quoted.csv", text))
    assert any("\n" in key[3] for key in dataset.groups)


@pytest.mark.usefixtures("no_deferral")
def test_quoted_newlines_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(arrow_loader, "BLOCK_SIZE", 4096)  # ~10 records a block
    rows = demo_rows(1_000)
    for index, row in enumerate(rows):
        row[FOOTNOTE if index % 2 else COLUMN["Stratification1"]] = "one\ntwo\nthree\n\nfour"
    assert_same(write(tmp_path / "newlines.csv", csv_text(HEADER, rows)))


def test_quoted_carriage_returns_go_to_the_csv_path(tmp_path, monkeypatch, deferrals):
    # pyarrow drops the \n of a quoted \r\n that straddles two blocks: the csv path reads these.
    monkeypatch.setattr(arrow_loader, "BLOCK_SIZE", 4096)
    rows = demo_rows(1_000)
    for index, row in enumerate(rows):
        row[FOOTNOTE if index % 2 else COLUMN["Stratification1"]] = "one\ntwo\r\nthree\rfour"
    path = write(tmp_path / "newlines.csv", csv_text(HEADER, rows))
    assert_same(path)
    assert deferrals == [str(path)]


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
@pytest.mark.usefixtures("no_deferral")
def test_line_endings(tmp_path, newline):
    assert_same(write(tmp_path / "endings.csv", csv_text(HEADER, demo_rows(), newline=newline)))


@pytest.mark.usefixtures("no_deferral")
def test_no_newline_at_the_end(tmp_path):
    text = csv_text(HEADER, demo_rows(100)).rstrip("\n")
    assert_same(write(tmp_path / "open-end.csv", text))


@pytest.mark.usefixtures("no_deferral")
def test_odd_values(tmp_path):
    rows = with_values(demo_rows(2_000), ODD_VALUES + ["30.5", "12"] * 10)
    dataset = assert_same(write(tmp_path / "odd.csv", csv_text(HEADER, rows)))
    assert dataset.rows_skipped > 0


@pytest.mark.usefixtures("no_deferral")
def test_every_value_odd(tmp_path):
    rows = with_values(demo_rows(400), ODD_VALUES)
    assert_same(write(tmp_path / "all-odd.csv", csv_text(HEADER, rows)))


@pytest.mark.usefixtures("no_deferral")
def test_plain_decimals_of_every_length(tmp_path):
    rng = random.Random(5)
    values = []
    for _ in range(3_000):
        whole = "".join(rng.choices("0123456789", k=rng.randint(1, 17)))
        fraction = "".join(rng.choices("0123456789", k=rng.randint(0, 17)))
        sign = rng.choice(["", "", "-"])
        values.append(f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}")
    rows = with_values(demo_rows(3_000), values)
    assert_same(write(tmp_path / "digits.csv", csv_text(HEADER, rows)))


@pytest.mark.usefixtures("no_deferral")
def test_malformed_rows_and_blank_lines(tmp_path):
    rows = demo_rows(400)
    lines = csv_text(HEADER, rows).splitlines(keepends=True)
    short = "1,2017,2017,OH,Ohio,a short row\n"
    long = lines[5].rstrip("\n") + ",one,too,many\n"
    extra = ["\n", "\n\n\n", short, long, " \n", '""\n', "\r\n", ",\n", '"\n']
    text = lines[0] + "".join(line + extra[i % len(extra)] for i, line in enumerate(lines[1:]))
    dataset = assert_same(write(tmp_path / "messy.csv", text))
    assert dataset.rows_read > 400


@pytest.mark.usefixtures("no_deferral")
def test_quotes_the_csv_module_tolerates(tmp_path):
    rows = demo_rows(200)
    lines = csv_text(HEADER, rows).splitlines(keepends=True)
    odd = [
        line.replace(",Value,", ',Val"ue,', 1).replace(",VALUE,", ',"VAL"UE,', 1)
        for line in lines[1:]
    ]
    text = lines[0] + "".join(odd) + lines[1].rstrip("\n") + ',"unterminated'
    assert_same(write(tmp_path / "quotes.csv", text))


@pytest.mark.usefixtures("no_deferral")
def test_nul_bytes(tmp_path):
    rows = demo_rows(200)
    for row in rows[::7]:
        row[FOOTNOTE] = "nul\x00here"
    assert_same(write(tmp_path / "nul.csv", csv_text(HEADER, rows)))


@pytest.mark.usefixtures("no_deferral")
def test_generated_demo_file(tmp_path):
    path = demo.write_demo_csv(tmp_path / "demo.csv", 20_000, 2024)
    dataset = assert_same(path)
    assert dataset.rows_read == 20_000
    assert 0 < dataset.rows_skipped < 1_000  # the demo has some empty Data_Value


@pytest.mark.usefixtures("no_deferral")
def test_generated_demo_file_gzipped(tmp_path):
    assert_same(demo.write_demo_csv(tmp_path / "demo.csv.gz", 5_000, 7))


@pytest.mark.usefixtures("no_deferral")
def test_real_sample():
    if not REAL_SAMPLE.is_file():
        pytest.skip(f"{REAL_SAMPLE} is not there")
    dataset = assert_same(REAL_SAMPLE)
    assert dataset.rows_read == 340


@pytest.mark.usefixtures("no_deferral")
def test_plain_decimal_parsing_is_floats():
    # Everything PLAIN_DECIMAL admits, pyarrow must parse to the very double float() gives.
    rng = random.Random(3)
    texts = [
        "0",
        "-0",
        "0.1",
        "0.3",
        "2.675",
        "1.000000000000002",
        "999999999999999.999999999999999",
    ]
    for _ in range(100_000):
        whole = "".join(rng.choices("0123456789", k=rng.randint(1, 15)))
        fraction = "".join(rng.choices("0123456789", k=rng.randint(0, 15)))
        texts.append(f"{rng.choice(['', '-'])}{whole}" + (f".{fraction}" if fraction else ""))
    array = pa.array(texts)
    assert pc.all(pc.match_substring_regex(array, arrow_loader.PLAIN_DECIMAL)).as_py()
    parsed = pc.cast(array, pa.float64()).to_pylist()
    for text, number in zip(texts, parsed, strict=True):
        assert struct.pack("<d", number) == struct.pack("<d", float(text)), text


def test_plain_decimal_pattern():
    admitted = pc.match_substring_regex(pa.array(ODD_VALUES), arrow_loader.PLAIN_DECIMAL)
    plain = {text for text, ok in zip(ODD_VALUES, admitted.to_pylist(), strict=True) if ok}
    assert plain == {"-0", "-0.0", "0", "00012.50", "123456789012345.123456789012345"}


# --- the csv path decides what pyarrow cannot ---------------------------------------------------


@pytest.fixture
def field_limit(request):
    """Set the csv module's field size limit for one test (`@pytest.mark.parametrize`d)."""
    old = csv.field_size_limit()
    csv.field_size_limit(request.param)
    yield request.param
    csv.field_size_limit(old)


@pytest.mark.parametrize("field_limit", [300], indirect=True)
def test_long_lines_of_short_fields_go_to_the_csv_path(tmp_path, field_limit, deferrals):
    rows = demo_rows(100)
    assert max(len(cell) for row in rows for cell in row) <= field_limit
    path = write(tmp_path / "long-lines.csv", csv_text(HEADER, rows))
    assert max(map(len, path.read_text().splitlines())) > field_limit
    assert_same(path)
    assert deferrals == [str(path)]


@pytest.mark.parametrize("field_limit", [300], indirect=True)
def test_long_field_under_a_lower_limit(tmp_path, field_limit, monkeypatch):
    rows = demo_rows(100)
    rows[50][FOOTNOTE] = "x" * (field_limit + 1)
    path = write(tmp_path / "long-field.csv", csv_text(HEADER, rows))
    assert "field larger than field limit (300)" in refusal(path, monkeypatch).problem


def test_header_spanning_lines_goes_to_the_csv_path(tmp_path, deferrals):
    header = [*HEADER[:-1], "Stratification\nID1"]
    path = write(tmp_path / "header.csv", csv_text(header, demo_rows(100)))
    assert_same(path)
    assert deferrals == [str(path)]


def test_record_longer_than_a_block_goes_to_the_csv_path(tmp_path, monkeypatch, deferrals):
    monkeypatch.setattr(arrow_loader, "BLOCK_SIZE", 4096)
    rows = demo_rows(300)
    rows[150][FOOTNOTE] = "x" * 10_000
    path = write(tmp_path / "long-record.csv", csv_text(HEADER, rows))
    assert_same(path)
    assert deferrals == [str(path)]


@pytest.mark.xfail(
    strict=True,
    reason="documented gap: an over-long field of an unused column on lines each shorter than "
    "the csv field limit is refused by the csv path and loaded by the arrow path",
)
@pytest.mark.parametrize("field_limit", [1_000], indirect=True)
def test_over_long_field_spanning_short_lines(tmp_path, field_limit, monkeypatch):
    unused = COLUMN["GeoLocation"]
    header, rows = select([*(COLUMN[name] for name in REQUIRED_COLUMNS), unused], demo_rows(20))
    rows[10][-1] = "\n".join(["x" * 50] * 24)  # 1,223 characters on lines of 50
    path = write(tmp_path / "spanning.csv", csv_text(header, rows))
    assert max(map(len, path.read_text().splitlines())) < field_limit
    refusal(path, monkeypatch)


# --- parity on bad files -----------------------------------------------------------------------


def refusal(path, monkeypatch):
    """Load `path` through `load_dataset` by both paths: both must refuse it in the same words."""
    monkeypatch.setenv(PARSER_VARIABLE, "csv")
    with pytest.raises(DatasetError) as by_csv:
        load_dataset(path)
    monkeypatch.setenv(PARSER_VARIABLE, "arrow")
    tried = []
    real = arrow_loader.load_with_arrow

    def spy(path, *, source):
        tried.append(source)
        return real(path, source=source)

    monkeypatch.setattr(arrow_loader, "load_with_arrow", spy)
    with pytest.raises(DatasetError) as by_arrow:
        load_dataset(path)
    assert tried == [str(path)]
    assert by_arrow.value.source == by_csv.value.source == str(path)
    assert str(by_arrow.value).startswith(str(path))
    assert by_arrow.value.problem == by_csv.value.problem
    return by_arrow.value


@pytest.mark.parametrize("name", ["empty.csv", "empty.csv.gz"])
def test_empty_file(tmp_path, monkeypatch, name):
    assert "empty" in refusal(write(tmp_path / name, b""), monkeypatch).problem


def test_bom_only(tmp_path, monkeypatch):
    assert "empty" in refusal(write(tmp_path / "bom.csv", b"", bom=True), monkeypatch).problem


@pytest.mark.parametrize("ending", ["\n", "", "\r\n\n\n"])
def test_header_only(tmp_path, monkeypatch, ending):
    path = write(tmp_path / "header.csv", csv_text(HEADER, []).rstrip("\n") + ending)
    assert "no data rows" in refusal(path, monkeypatch).problem


def test_blank_first_line(tmp_path, monkeypatch):
    path = write(tmp_path / "blank.csv", "\n" + csv_text(HEADER, demo_rows(10)))
    assert "missing" in refusal(path, monkeypatch).problem


@pytest.mark.parametrize("missing", [["Question"], ["Data_Value", "Stratification1"]])
def test_missing_columns(tmp_path, monkeypatch, missing):
    columns = [i for i, name in enumerate(HEADER) if name.strip() not in missing]
    header, rows = select(columns, demo_rows(20))
    assert (
        "missing column"
        in refusal(write(tmp_path / "m.csv", csv_text(header, rows)), monkeypatch).problem
    )


def test_every_row_malformed(tmp_path, monkeypatch):
    path = write(tmp_path / "short.csv", csv_text(HEADER, []) + "1,2,3\n\n4,5,6\n")
    assert "none of its 2 data rows" in refusal(path, monkeypatch).problem


def test_json_is_not_csv(tmp_path, monkeypatch):
    refusal(write(tmp_path / "data.csv", '{"Question": "x", "LocationDesc": "y"}\n'), monkeypatch)


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    refusal(write(tmp_path / "random.csv", rng.randbytes(rng.randrange(1, 20_000))), monkeypatch)


@pytest.mark.parametrize("seed", range(3))
def test_random_ascii(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    text = bytes(rng.randrange(128) for _ in range(5_000))
    refusal(write(tmp_path / "ascii.csv", text), monkeypatch)


def test_binary_after_a_valid_header(tmp_path, monkeypatch):
    data = csv_text(HEADER, []).encode() + random.Random(1).randbytes(50_000)
    refusal(write(tmp_path / "binary.csv", data), monkeypatch)


@pytest.mark.parametrize("name", ["latin1.csv", "latin1.csv.gz"])
def test_not_utf8(tmp_path, monkeypatch, name):
    text = csv_text(HEADER, demo_rows(50)).replace("Ohio", "Ohi\xf6")
    path = write(tmp_path / name, text.encode("latin-1"))
    assert "UTF-8" in refusal(path, monkeypatch).problem


@pytest.mark.parametrize("where", ["unused column", "malformed row", "last byte"])
def test_not_utf8_where_pyarrow_would_not_look(tmp_path, monkeypatch, where):
    data = bytearray(csv_text(HEADER, demo_rows(3_000)).encode())  # ~1.2 MB: past the first block
    if where == "unused column":
        at = data.index(b"Behavioral Risk Factor", len(data) - 5_000)
        data[at] = 0xE9
    elif where == "malformed row":
        data += b"1,2,\xff\n"
    else:
        data += b"\xc3"
    assert "UTF-8" in refusal(write(tmp_path / "bad.csv", bytes(data)), monkeypatch).problem


@pytest.mark.parametrize("column", ["LocationDesc", "Data_Value_Footnote"])
def test_field_over_the_csv_limit(tmp_path, monkeypatch, column):
    rows = demo_rows(50)
    rows[25][COLUMN[column]] = "x" * 200_000
    path = write(tmp_path / "huge.csv", csv_text(HEADER, rows))
    assert "field larger than field limit" in refusal(path, monkeypatch).problem


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_gzip_truncated(tmp_path, monkeypatch, keep):
    data = gzip.compress(csv_text(HEADER, demo_rows(2_000)).encode())
    path = tmp_path / "truncated.csv.gz"
    path.write_bytes(data[: int(len(data) * keep)])
    assert "gzip" in refusal(path, monkeypatch).problem


@pytest.mark.parametrize("where", [0.3, -6])
def test_gzip_corrupt(tmp_path, monkeypatch, where):
    data = bytearray(gzip.compress(csv_text(HEADER, demo_rows(2_000)).encode()))
    data[int(len(data) * where) if isinstance(where, float) else where] ^= 0xFF
    path = tmp_path / "corrupt.csv.gz"
    path.write_bytes(bytes(data))
    assert "gzip" in refusal(path, monkeypatch).problem


def test_missing_file(tmp_path, monkeypatch):
    assert "no such file" in refusal(tmp_path / "absent.csv", monkeypatch).problem


def test_directory(tmp_path, monkeypatch):
    (tmp_path / "data.csv").mkdir()
    assert "directory" in refusal(tmp_path / "data.csv", monkeypatch).problem


# --- the stream check --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, 64])
@pytest.mark.parametrize(
    ("data", "long"),
    [
        (b"0123456789\n0123456789\n", False),
        (b"0123456789A\n", True),
        (b"0123456789\n0123456789A", True),
        (b"0123456789\r\n0123456789\r0123456789", False),
        (b"0123456789\r0123456789A\r\n", True),
        (b"\n\n\r\r\n" * 5, False),
        ("\u00e9" * 5 + "\n" + "\u00e9" * 6, True),
    ],
)
def test_checked_stream_finds_lines_over_the_limit(data, long, size):
    raw = data.encode() if isinstance(data, str) else data
    stream = arrow_loader._CheckedStream(io.BytesIO(raw), 10)
    read = b""
    while chunk := stream.read(size):
        read += chunk
    assert read == raw
    assert stream.long_line is long


@pytest.mark.parametrize("size", [1, 2, 4096])
def test_checked_stream_decodes_utf8_across_reads(size):
    good = arrow_loader._CheckedStream(io.BytesIO("\u00e9\u20ac\U0001f600\n".encode() * 3), 100)
    while good.read(size):
        pass
    bad = arrow_loader._CheckedStream(io.BytesIO("\u20ac".encode()[:2]), 100)
    with pytest.raises(UnicodeDecodeError):  # noqa: PT012 - reading to the end is the statement
        while bad.read(size):
            pass


# --- choosing the parser -----------------------------------------------------------------------


@pytest.fixture
def spies(monkeypatch):
    """Count the calls of each path's loader through `load_dataset`."""
    calls = {"arrow": 0, "csv": 0}
    real_arrow = arrow_loader.load_with_arrow
    real_csv = loader.load_with_csv

    def arrow(path, *, source):
        calls["arrow"] += 1
        return real_arrow(path, source=source)

    def csv_path(path, *, source):
        calls["csv"] += 1
        return real_csv(path, source=source)

    monkeypatch.setattr(arrow_loader, "load_with_arrow", arrow)
    monkeypatch.setattr(loader, "load_with_csv", csv_path)
    return calls


@pytest.fixture
def good_file(tmp_path):
    return write(tmp_path / "good.csv", csv_text(HEADER, demo_rows(100)))


@pytest.mark.usefixtures("no_deferral")
def test_pyarrow_by_default(good_file, spies, monkeypatch):
    monkeypatch.delenv(PARSER_VARIABLE, raising=False)
    load_dataset(good_file)
    assert spies == {"arrow": 1, "csv": 0}


@pytest.mark.parametrize("setting", ["csv", "CSV", " csv "])
def test_variable_forces_the_csv_module(good_file, spies, monkeypatch, setting):
    monkeypatch.setenv(PARSER_VARIABLE, setting)
    dataset = load_dataset(good_file)
    assert spies == {"arrow": 0, "csv": 1}
    assert dataset.rows_read == 100


@pytest.mark.parametrize("setting", ["arrow", "pyarrow", ""])
@pytest.mark.usefixtures("no_deferral")
def test_other_settings_keep_pyarrow(good_file, spies, monkeypatch, setting):
    monkeypatch.setenv(PARSER_VARIABLE, setting)
    load_dataset(good_file)
    assert spies == {"arrow": 1, "csv": 0}


def test_csv_module_when_pyarrow_is_absent(good_file, spies, monkeypatch):
    real = loader.importlib.util.find_spec
    monkeypatch.delenv(PARSER_VARIABLE, raising=False)
    monkeypatch.setattr(
        loader.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyarrow" else real(name, *a),
    )
    load_dataset(good_file)
    assert spies == {"arrow": 0, "csv": 1}


def test_demo_dataset_stays_on_the_csv_module(spies):
    loader.load_demo_dataset(200)
    assert spies == {"arrow": 0, "csv": 0}


@pytest.mark.usefixtures("no_deferral")
@pytest.mark.parametrize(
    "values",
    [
        ["30.5", "nan", "inf", "-inf", "Infinity", "1e400", "-0", "1e5", "2.5E-3", ""],
        ["12", "-0.0", "1e301", "0.1000000000000000055511151231257827", "9007199254740993"],
    ],
)
def test_interval_columns_the_cast_reads_whole_match_the_csv_path(tmp_path, values):
    # Columns pyarrow's cast takes in one go (no cell it refuses): non-finite and absurd values
    # must still be no number, and -0 must be 0, exactly as in the csv path.
    rows = demo_rows(400)
    for index, row in enumerate(rows):
        for name in ("Low_Confidence_Limit", "High_Confidence_Limit", "Sample_Size"):
            row[COLUMN[name]] = values[(index + len(name)) % len(values)]
    table = assert_same(write(tmp_path / "intervals.csv", csv_text(HEADER, rows))).table
    assert all(math.isnan(x) or abs(x) <= 1e300 for x in table.low)
    assert not any(math.copysign(1.0, x) < 0 and x == 0 for x in table.high)
