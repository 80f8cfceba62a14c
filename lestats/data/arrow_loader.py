r"""The fast way to load a CSV file: pyarrow parses and sorts it in C++, exactly as the csv path.

Why this exists: the `csv` module alone takes 5-7 s to tokenise the 1,000,000-row file (402 MB)
that must load in <= 3 s and <= 400 MB, so `loader.load_dataset` comes here whenever pyarrow is
installed (the `fast` extra) and `LESTATS_CSV_PARSER` is not `csv`. It is an accelerator, not a
second definition of the format: it gives exactly the `Dataset` of `loader.load_with_csv` (the
same row table bit for bit, hence the same groups, which both paths read off it with
`groups.course_groups`, the same `rows_read` and `rows_skipped`), and what it cannot reproduce
exactly it leaves to the csv path. How:

- The header is read by the `csv` module itself and checked by the csv path's rules and words
  (empty file, missing columns). pyarrow then reads the data rows, skipping that header line,
  by position (columns named `c0`, `c1`, ...), so stray spaces, duplicate names and the course
  copy's unnamed index column count exactly as in the csv path.
- Only the columns used are converted: the text columns (the row table's, the group key's among
  them) as dictionaries (each distinct state or question stored once), which keeps the peak
  memory low, and the four number columns as numbers when every cell is one (see `_read_rows`),
  else as strings, empty cells kept as `""`. While loading, pyarrow allocates with malloc
  (`_system_allocator`), so that what is freed leaves the process. Rows of the wrong width are
  counted as malformed by an invalid-row handler; empty lines are ignored, as by the csv path.
  Quoted newlines are parsed (`newlines_in_values`: its cost on 1M rows is within the noise).
  pyarrow's tokeniser agrees with the csv module's default dialect on quotes inside unquoted
  fields, text after a closing quote, lone `\r` line ends, NUL bytes and unterminated quotes.
- pyarrow checks UTF-8 and sizes only in the columns it converts, whereas the csv path decodes
  the whole file and refuses any field longer than `csv.field_size_limit()`. So the bytes pass
  through `_CheckedStream`, which decodes them (the UTF-8 check) and looks for a physical line
  longer than that limit (a field is no longer than its line); the converted columns are
  measured exactly too. Not covered: a field of an unused column that is longer than the limit
  but spans lines that are each shorter. The csv path refuses such a file and this one loads
  it; counting lines exactly to find it would cost ~0.3 s per 1M rows.
- Numbers: a cell the reader or pyarrow's cast parses (fast_float: correctly rounded like
  Python's `float`) gives the very same double as `numbers.parse_number`; infinities and absurd
  values become NaN as there, and a column with cells the cast refuses (`1_000`, `0x10`) is read
  cell by cell (`_number_column`).
- A value holding a carriage return goes to the csv path: pyarrow drops the `\n` of a quoted
  `\r\n` that straddles two blocks.
- Anything else (a pyarrow parse error, invalid UTF-8, a broken gzip stream, an over-long line
  or field, a header spanning lines, a record longer than `BLOCK_SIZE`) is not mapped here: the
  file goes to the csv path, which is the reference and either loads it or raises its precise
  `DatasetError`. A bad file thus costs a second read; a good one never does.

Files that cannot be opened raise the usual `OSError`s, which `loader.load_dataset` turns into
`DatasetError` for both paths.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import logging
import math
import zlib
from array import array
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from lestats.data.dataset import Dataset, GroupKey
from lestats.data.groups import course_groups
from lestats.data.loader import column_indexes, load_with_csv
from lestats.data.numbers import MAX_MAGNITUDE
from lestats.data.row_columns import (
    TEXT_COLUMNS,
    collector_paused,
)
from lestats.data.table import (
    ENTITY_COLUMNS,
    NUMBER_COLUMNS,
    EstimateTable,
    Shape,
    canonical_order,
    code_type,
    number_or_nan,
)
from lestats.errors import DatasetError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

__all__ = ["BLOCK_SIZE", "PLAIN_DECIMAL", "load_with_arrow"]

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
PLAIN_DECIMAL = r"^-?[0-9]{1,15}(?:\.[0-9]{1,15})?$"
"""Values that pyarrow parses (RE2 syntax), into the same double as `float()`."""
BLOCK_SIZE = 1 << 20
"""Bytes pyarrow parses at a time: a record must end within the next block."""
_KEY_TYPE = pa.dictionary(pa.int32(), pa.string())
_MAX_COMPOSITE = 1 << 62


class _NeedsCsvModule(Exception):  # noqa: N818 - a signal, not an error
    """The file needs the csv path to be loaded (or refused) exactly as the csv path does."""


_DEFER_TO_CSV = (
    _NeedsCsvModule,
    pa.ArrowException,
    UnicodeDecodeError,
    csv.Error,
    gzip.BadGzipFile,
    EOFError,
    zlib.error,
)
"""What makes the arrow path hand the file to the csv path instead of deciding itself."""


def load_with_arrow(path: Path, *, source: str) -> Dataset:
    """Load `path` (gzip or not: the content tells) exactly as `loader.load_with_csv` would.

    Raises:
        DatasetError: the file is empty, lacks a required column or has no data row; other bad
            files are refused by the csv path, in its words.
        OSError: the file cannot be opened or read (`load_dataset` maps these).
    """
    try:
        with _system_allocator():
            return _load(path, source)
    except _DEFER_TO_CSV as exc:
        log.info("%s: pyarrow leaves this file to the csv module (%s)", source, exc)
        return load_with_csv(path, source=source)


def _load(path: Path, source: str) -> Dataset:
    limit = csv.field_size_limit()
    with _open_binary(path) as binary:
        header, header_lines = _read_header(binary, source)
        if header_lines != 1:  # a quoted newline: pyarrow's skip_rows skips lines, not records
            raise _NeedsCsvModule("the header spans lines")
        width = len(header)
        names = column_indexes(header, source)
        binary.seek(0)
        stream = _CheckedStream(binary, limit)
        try:
            table, malformed = _read_rows(stream, width, names, parse_numbers=True)
        except pa.ArrowInvalid:  # a cell of an interval or sample size column is no plain number
            binary.seek(0)
            stream = _CheckedStream(binary, limit)
            table, malformed = _read_rows(stream, width, names, parse_numbers=False)
    if stream.long_line:
        raise _NeedsCsvModule(f"a line longer than the csv module's field limit ({limit})")
    if _longest_cell(table) > limit:
        raise _NeedsCsvModule(f"a field longer than the csv module's field limit ({limit})")
    if _has_carriage_return(table):
        raise _NeedsCsvModule("a carriage return inside a value")
    rows = table.num_rows
    _release_unused()
    if rows == 0:
        problem = f"none of its {malformed} data rows has" if malformed else "no data rows after"
        raise DatasetError(source, f"{problem} the header's {width} columns")
    with collector_paused():
        # The estimate table drops each column once used (peak memory), which it can since it
        # pops the table from a list that no one else holds.
        handed = [table]
        del table
        estimates, groups, dropped = _estimate_table(handed, names)
        _release_unused()
        return Dataset(
            groups,
            source=source,
            rows_read=rows + malformed,
            rows_skipped=malformed + dropped,
            table=estimates,
        )


@contextmanager
def _open_binary(path: Path) -> Iterator[BinaryIO]:
    """The file's bytes, decompressed if it starts with gzip's magic number; seekable."""
    with path.open("rb") as file:
        magic = file.read(len(GZIP_MAGIC))
        file.seek(0)
        if magic != GZIP_MAGIC:
            yield file
            return
        with gzip.GzipFile(fileobj=file, mode="rb") as unzipped:
            yield cast("BinaryIO", unzipped)


def _read_header(binary: BinaryIO, source: str) -> tuple[list[str], int]:
    """The header cells, as the csv path reads them, and how many lines they took."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            raise DatasetError(source, "empty file")
        return header, reader.line_num
    finally:
        text.detach()


def _column(index: int) -> str:
    """The name pyarrow knows the column at `index` by (the header's own names may repeat)."""
    return f"c{index}"


def _read_rows(
    stream: _CheckedStream, width: int, names: dict[str, int], *, parse_numbers: bool
) -> tuple[pa.Table, int]:
    """The data rows' used columns (key columns dictionary-encoded) and how many were malformed.

    With `parse_numbers`, the reader parses the number columns itself (a `pa.ArrowInvalid` if
    a cell is none of a number, empty or one of pyarrow's null words such as `NA`, all of which
    `numbers.parse_number` also reads as no number): less time and memory on 1M rows than
    reading them as text and casting.
    """
    malformed = 0

    def skip_malformed(_row: object) -> str:
        nonlocal malformed
        malformed += 1
        return "skip"

    texts = {_column(names[name]) for name in TEXT_COLUMNS if name in names}
    numbers = {_column(names[name]) for name in NUMBER_COLUMNS if name in names}
    types = dict.fromkeys(texts, _KEY_TYPE) | dict.fromkeys(numbers, pa.string())
    if parse_numbers:
        types |= dict.fromkeys(numbers, pa.float64())
    reader = pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(
            column_names=[_column(index) for index in range(width)],
            skip_rows=1,
            block_size=BLOCK_SIZE,
        ),
        parse_options=pa_csv.ParseOptions(
            newlines_in_values=True,
            ignore_empty_lines=True,
            invalid_row_handler=skip_malformed,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=types,
            include_columns=sorted(texts | numbers),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,  # `_CheckedStream` has decoded every byte
        ),
    )
    table = pa.Table.from_batches(list(reader), schema=reader.schema).unify_dictionaries()
    return table, malformed


def _longest_cell(table: pa.Table) -> int:
    """The longest cell of `table` in UTF-8 bytes (at least its length in characters)."""
    longest = 0
    for cells in _distinct_cells(table):
        longest = max(longest, pc.max(pc.binary_length(cells)).as_py() or 0)
    return longest


def _has_carriage_return(table: pa.Table) -> bool:
    r"""Whether a cell holds a carriage return, which pyarrow may mangle.

    pyarrow 24 drops the `\n` of a quoted `\r\n` that straddles two blocks, which the csv path
    keeps; real files have none.
    """
    return any(pc.any(pc.match_substring(cells, "\r")).as_py() for cells in _distinct_cells(table))


def _distinct_cells(table: pa.Table) -> Iterator[pa.Array | pa.ChunkedArray]:
    """Every text column's texts: a string column whole, a dictionary column's dictionary once.

    `_read_rows` unified the dictionaries, so every chunk (one per block, ~400 for 1M rows) of a
    dictionary column has the same one: looking at each chunk's would cost ~0.4 s.
    """
    for column in table.columns:
        if pa.types.is_string(column.type):
            yield column
        elif pa.types.is_dictionary(column.type) and column.num_chunks:
            yield column.chunk(0).dictionary


@contextmanager
def _system_allocator() -> Iterator[None]:
    """Make pyarrow allocate with the C library's malloc while loading, then restore its own.

    pyarrow's default allocator (mimalloc) keeps most of what the load frees (~100 MB for 1M
    rows, even after `release_unused`), so the columns dropped as soon as used (`_load`,
    `_estimate_table`) would still count in the peak and stay resident. The system allocator
    returns large blocks to the system when freed: the peak of a 1M-row load goes from ~400 MB
    to ~300 MB, for a few tenths of a second more. Buffers remember their pool, so those made
    here are freed correctly whatever the default is later.
    """
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def _estimate_table(
    handed: list[pa.Table], names: dict[str, int]
) -> tuple[EstimateTable, dict[GroupKey, array[float]], int]:
    """The rows as `row_columns.RowColumns` makes them on the csv path, sorted in C++ here.

    Also the course groups read off it, and how many rows count in none (`groups`). `handed`
    holds the table of its columns, taken out so that each column is freed once used.
    """
    table = handed.pop()
    rows = table.num_rows
    words: dict[str, list[tuple[str, ...]]] = {}
    codes: dict[str, pa.Array] = {}
    for entity, columns in ENTITY_COLUMNS.items():
        distinct, encoded = _entity_codes(table, names, columns)
        words[entity], remap = canonical_order(distinct)
        codes[entity] = pc.take(pa.array(remap, pa.int32()), encoded)
        del encoded
        table = table.drop_columns([_column(names[name]) for name in columns if name in names])
    _release_unused()
    shape = Shape.of(words)
    footnote_count = len(words["footnote"])
    if (len(words["question"]) + 1) * shape.strata * shape.periods * shape.locations * (
        footnote_count
    ) >= _MAX_COMPOSITE:
        raise _NeedsCsvModule("too many distinct texts to pack a row's key in 64 bits")
    # One integer orders rows by cell, then footnote: the numbers only break the ties. It holds
    # the key and the footnote code, so that the codes are freed before the numbers are read.
    ordering = pc.add(pc.multiply(_packed(codes, shape), footnote_count), codes["footnote"])
    del codes
    _release_unused()
    numbers = []
    for name in NUMBER_COLUMNS:
        numbers.append(_number_column(table, names, name, rows))
        if name in names:
            table = table.drop_columns([_column(names[name])])
    del table
    _release_unused()
    order = pc.sort_indices(
        pa.table({"key": ordering, **{f"n{index}": c for index, c in enumerate(numbers)}}),
        sort_keys=[("key", "ascending"), *((f"n{i}", "ascending") for i in range(len(numbers)))],
    )
    ordering = pc.take(ordering, order)
    packed = pc.divide(ordering, footnote_count)  # integer division: the keys, sorted
    keys = array("q")
    keys.frombytes(_values(packed, 8))
    footnotes = array(code_type(footnote_count))
    sorted_footnotes = pc.subtract(ordering, pc.multiply(packed, footnote_count)).cast(
        pa.uint16() if footnotes.typecode == "H" else pa.uint32()
    )
    del ordering, packed
    footnotes.frombytes(_values(sorted_footnotes, footnotes.itemsize))
    del sorted_footnotes
    _release_unused()
    sorted_numbers: list[array[float]] = []
    while numbers:
        values = array("d")
        values.frombytes(_values(pc.take(numbers.pop(0), order), 8))
        sorted_numbers.append(values)
    del order
    _release_unused()
    groups, dropped = course_groups(words, keys, sorted_numbers[0])
    return EstimateTable(words, keys, footnotes, sorted_numbers), groups, dropped


def _packed(codes: dict[str, pa.Array], shape: Shape) -> pa.Array:
    """Each row's cell key, `Shape.pack` in pyarrow (int64: the checks above rule out overflow)."""
    question = codes["question"].cast(pa.int64())
    question_stratum = pc.add(pc.multiply(question, shape.strata), codes["stratum"])
    with_period = pc.add(pc.multiply(question_stratum, shape.periods), codes["period"])
    return pc.add(pc.multiply(with_period, shape.locations), codes["location"])


def _entity_codes(
    table: pa.Table, names: dict[str, int], columns: Sequence[str]
) -> tuple[list[tuple[str, ...]], pa.Array]:
    """The distinct combinations of `columns`' texts, and each row's index into them.

    Each row's combination is one integer, its columns' dictionary indices in mixed radix, in
    32 bits where they fit; a column with one text (often: an absent or empty one) adds nothing.
    """
    encoded_columns = {
        name: _single_chunk(table.column(_column(names[name]))) for name in columns if name in names
    }
    dictionaries = [
        encoded_columns[name].dictionary.to_pylist() if name in encoded_columns else [""]
        for name in columns
    ]
    total = 1
    for words in dictionaries:
        total *= max(1, len(words))
    if total >= _MAX_COMPOSITE:
        raise _NeedsCsvModule("too many distinct texts to combine an entity's columns")
    integer = pa.int32() if total < 1 << 31 else pa.int64()
    composite: pa.Array | None = None
    for name, words in zip(columns, dictionaries, strict=True):
        if len(words) <= 1:
            continue  # its index is 0 on every row
        indices = encoded_columns[name].indices.cast(integer)
        composite = (
            indices if composite is None else pc.add(pc.multiply(composite, len(words)), indices)
        )
    if composite is None:
        composite = pa.repeat(pa.scalar(0, integer), table.num_rows)
    encoded = pc.dictionary_encode(composite)
    distinct: list[tuple[str, ...]] = []
    for combined in encoded.dictionary.to_pylist():
        cells: list[str] = []
        value = combined
        for words in reversed(dictionaries):
            value, index = divmod(value, len(words))
            cells.append(words[index])
        distinct.append(tuple(reversed(cells)))
    return distinct, encoded.indices


def _number_column(table: pa.Table, names: dict[str, int], name: str, rows: int) -> pa.Array:
    """The column's numbers as `table.number_or_nan` reads them: NaN where none, no `-0`.

    Most columns are empty cells and plain numbers, which the reader (`_read_rows`) or
    pyarrow's cast reads (correctly rounded, like `float`): then infinities and absurd values
    (`inf`, `1e400`, which both also take) become NaN as in `numbers.parse_number`. A column
    the cast refuses goes cell by cell: plain decimals by pyarrow, the few others by
    `number_or_nan`.
    """
    if name not in names:
        return pa.array(array("d", [math.nan]) * rows, pa.float64())
    column = _single_chunk(table.column(_column(names[name])))
    if pa.types.is_floating(column.type):
        parsed = column
    else:
        empty = pc.equal(column, "")
        try:
            parsed = pc.cast(pc.if_else(empty, pa.scalar(None, pa.string()), column), pa.float64())
        except pa.ArrowInvalid:
            return pc.add(pc.fill_null(_odd_numbers(column, empty), math.nan), 0.0)
    sane = pc.less_equal(pc.abs(parsed), MAX_MAGNITUDE)  # false for NaN and infinities
    parsed = pc.if_else(sane, parsed, pa.scalar(None, pa.float64()))
    return pc.add(pc.fill_null(parsed, math.nan), 0.0)


def _odd_numbers(text: pa.Array, empty: pa.Array) -> pa.Array:
    """A column with cells the cast refuses: plain decimals by pyarrow, others in Python."""
    plain = pc.match_substring_regex(text, PLAIN_DECIMAL)
    parsed = pc.cast(pc.if_else(plain, text, pa.scalar(None, pa.string())), pa.float64())
    odd = pc.and_(pc.invert(plain), pc.invert(empty))
    replacements = [number_or_nan(cell) for cell in pc.filter(text, odd).to_pylist()]
    if replacements:
        parsed = pc.replace_with_mask(parsed, odd, pa.array(replacements, pa.float64()))
    return parsed


def _release_unused() -> None:
    """Give the memory pyarrow has freed back to the system, before Python allocates more.

    Called while pyarrow allocates with the C library's malloc (`_system_allocator`): what
    malloc keeps of the freed columns for reuse would add up with the Python objects built next.
    """
    pa.default_memory_pool().release_unused()


def _single_chunk(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _values(array_: pa.Array, size: int) -> memoryview:
    """The data buffer of a fixed-width array with `size`-byte values, as bytes, in place."""
    data = array_.buffers()[1]
    view = memoryview(data if data is not None else b"")
    return view[array_.offset * size : (array_.offset + len(array_)) * size]


class _CheckedStream(io.RawIOBase):
    r"""The file's bytes on their way to pyarrow, checked as the csv path would check them.

    Every byte is decoded as UTF-8 (a `UnicodeDecodeError` sends the file to the csv path), and
    `long_line` tells whether a physical line is longer than `limit` bytes. Lines end at `\n`,
    `\r` or `\r\n`, as `open(newline="")` splits them. Only the length of the current line is
    carried from one read to the next, and each read is searched backwards from `limit` bytes
    ahead, so the check costs a few searches per megabyte.
    """

    def __init__(self, binary: BinaryIO, limit: int) -> None:
        super().__init__()
        self._binary = binary
        self._limit = limit
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._line = 0
        """Length of the line being read, so far."""
        self.long_line = False

    def readable(self) -> bool:
        """Whether the stream can be read: yes."""
        return True

    def read(self, size: int = -1) -> bytes:
        """Read up to `size` bytes, and check them."""
        data = self._binary.read(size)
        self._decoder.decode(data, final=not data)
        if data and not self.long_line:
            self._measure(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Read into `buffer`, as `read` does."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _measure(self, data: bytes) -> None:
        if b"\r" in data:  # `\r\n` becomes two line breaks: the empty line between is harmless
            data = data.replace(b"\r", b"\n")
        end = len(data)
        last = -1 - self._line  # where the last line break was, relative to `data`
        while True:
            beyond = last + self._limit + 2  # too long a line if no break comes before this
            found = data.rfind(b"\n", max(0, last + 1), min(end, beyond))
            if found != -1:
                last = found
            elif beyond <= end:
                self.long_line = True
                return
            else:
                self._line = end - 1 - last
                return
