"""Reads the CDC BRFSS export (course copy or CDC download, plain or gzipped) into a `Dataset`.

Columns are found by name after stripping spaces, so the course copy's leading index column and
its `High_Confidence_Limit ` header load as they are. Loading is all or nothing: any problem with
the file raises one `DatasetError` naming the file and the problem.

Two parsers, one result. The `csv` module (`load_with_csv`, `load_lines`) is the reference and
always available, but it takes 5-7 s just to tokenise a 1,000,000-row file. When pyarrow is
installed (the `fast` extra), `load_dataset` hands files to `arrow_loader.load_with_arrow`, which
gives exactly the same `Dataset` several times faster and defers to the csv path whenever it
could not; `LESTATS_CSV_PARSER=csv` forces the csv path. In-memory lines (`load_lines`, the demo
dataset) always take the csv path.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import logging
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from lestats.data.dataset import Dataset
from lestats.data.row_columns import KEY_COLUMNS, VALUE_COLUMN, RowColumns
from lestats.data.table import KEPT_COLUMNS
from lestats.errors import DatasetError

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "Question",
    "LocationDesc",
    VALUE_COLUMN,
    "StratificationCategory1",
    "Stratification1",
)
"""Columns without which no statistic can be computed; the others may be absent."""
USED_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys((*REQUIRED_COLUMNS, *KEY_COLUMNS, *KEPT_COLUMNS))
)
"""Every column read; each may appear once at most (after stripping names)."""
PARSER_VARIABLE = "LESTATS_CSV_PARSER"
"""Environment variable: `csv` forces the csv module even where pyarrow is installed."""


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Load a CSV file (gzip-compressed or not: the content tells) into a Dataset.

    Raises:
        DatasetError: the file is missing, unreadable, empty, not CSV, not UTF-8, or lacks a
            required column.
    """
    source = str(path)
    file_path = Path(path)
    try:
        if _arrow_wanted():
            from lestats.data.arrow_loader import load_with_arrow  # noqa: PLC0415 - optional

            dataset = load_with_arrow(file_path, source=source)
        else:
            dataset = load_with_csv(file_path, source=source)
    except FileNotFoundError:
        raise DatasetError(source, "no such file") from None
    except IsADirectoryError:
        raise DatasetError(source, "is a directory, not a CSV file") from None
    except PermissionError:
        raise DatasetError(source, "permission denied") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(source, f"not a UTF-8 text file ({exc.reason})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DatasetError(source, f"not a valid gzip file ({exc})") from None
    except OSError as exc:
        raise DatasetError(source, f"cannot read: {exc.strerror or exc}") from None
    log.info(
        "loaded %s: %d rows read, %d skipped (no numeric Data_Value or malformed), %d states",
        source,
        dataset.rows_read,
        dataset.rows_skipped,
        len(dataset.states),
    )
    return dataset


def _arrow_wanted() -> bool:
    """Whether to parse with pyarrow: it is installed and `LESTATS_CSV_PARSER` is not `csv`."""
    if os.environ.get(PARSER_VARIABLE, "").strip().lower() == "csv":
        return False
    return importlib.util.find_spec("pyarrow") is not None


def load_with_csv(path: Path, *, source: str) -> Dataset:
    """Load `path` (gzip or not: the content tells) with the csv module: the reference parser.

    Raises `DatasetError` for bad content and lets `OSError`, `UnicodeDecodeError` and the gzip
    errors through for `load_dataset` to map.
    """
    if _is_gzip(path):
        with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as text:
            return load_lines(text, source=source)
    with path.open(encoding="utf-8-sig", newline="") as text:
        return load_lines(text, source=source)


def _is_gzip(path: Path) -> bool:
    """Whether the file starts with gzip's magic number (whatever its name says)."""
    with path.open("rb") as head:
        return head.read(2) == b"\x1f\x8b"


def load_lines(lines: Iterable[str], *, source: str) -> Dataset:
    """Parse CSV text lines (header first) into a Dataset; `source` names them in errors."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError(source, "empty file")
        width = len(header)
        rows = RowColumns(column_indexes(header, source), width)
        rows.read(reader)
    except csv.Error as exc:
        raise DatasetError(source, f"not valid CSV at line {reader.line_num}: {exc}") from None
    if not rows:
        malformed = rows.malformed
        problem = f"none of its {malformed} data rows has" if malformed else "no data rows after"
        raise DatasetError(source, f"{problem} the header's {width} columns")
    groups, dropped, table = rows.build()
    return Dataset(
        groups,
        source=source,
        rows_read=len(rows) + rows.malformed,
        rows_skipped=rows.malformed + dropped,
        table=table,
    )


def column_indexes(header: list[str], source: str) -> dict[str, int]:
    """Each column's position by its name after stripping spaces (both parsers use this).

    Raises:
        DatasetError: a required column is missing, or a column that is read appears twice
            (which of the two would be meant cannot be known).
    """
    names: dict[str, int] = {}
    for index, name in enumerate(header):
        stripped = name.strip()
        if stripped in names and stripped in USED_COLUMNS:
            raise DatasetError(
                source,
                f"column {stripped!r} appears twice (columns {names[stripped] + 1} and "
                f"{index + 1}): which one holds the data cannot be told",
            )
        names[stripped] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        plural = "s" if len(missing) > 1 else ""
        raise DatasetError(source, f"missing column{plural} {listed}")
    return names


def load_demo_dataset(rows: int | None = None, seed: int | None = None) -> Dataset:
    """The built-in demo dataset, generated in memory and parsed like any file (no download).

    `rows` and `seed` default to the generator's (18,650 rows, seed 2024).
    """
    # Imported here so that `python -m lestats.data.demo` runs a module not yet imported.
    from lestats.data import demo  # noqa: PLC0415

    rows = demo.DEMO_ROWS if rows is None else rows
    seed = demo.DEMO_SEED if seed is None else seed
    return load_lines(
        demo.iter_demo_lines(rows, seed), source=f"demo dataset ({rows} rows, seed {seed})"
    )
