"""Reads the CDC BRFSS export (course copy or CDC download, plain or gzipped) into a `Dataset`.

Columns are found by name after stripping spaces, so the course copy's leading index column and
its `High_Confidence_Limit ` header load as they are. Loading is all or nothing: any problem with
the file raises one `DatasetError` naming the file and the problem.
"""

from __future__ import annotations

import csv
import gzip
import logging
import zlib
from collections import defaultdict
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

from lestats.data.dataset import Dataset, GroupKey
from lestats.data.demo import DEMO_ROWS, DEMO_SEED, iter_demo_lines
from lestats.errors import DatasetError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

log = logging.getLogger(__name__)

VALUE_COLUMN = "Data_Value"
KEY_COLUMNS: tuple[str, ...] = (
    "Question",
    "LocationDesc",
    "StratificationCategory1",
    "Stratification1",
    "YearStart",
    "YearEnd",
    "LocationAbbr",
)
"""The group key's columns, in `GroupKey` order."""
REQUIRED_COLUMNS: tuple[str, ...] = (
    "Question",
    "LocationDesc",
    VALUE_COLUMN,
    "StratificationCategory1",
    "Stratification1",
)
"""Columns without which no statistic can be computed; the others may be absent."""


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Load a CSV file (gzip-compressed or not: the content tells) into a Dataset.

    Raises:
        DatasetError: the file is missing, unreadable, empty, not CSV, not UTF-8, or lacks a
            required column.
    """
    source = str(path)
    file_path = Path(path)
    try:
        if _is_gzip(file_path):
            with gzip.open(file_path, "rt", encoding="utf-8-sig", newline="") as text:
                dataset = load_lines(text, source=source)
        else:
            with file_path.open(encoding="utf-8-sig", newline="") as text:
                dataset = load_lines(text, source=source)
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
        names = {name.strip(): index for index, name in enumerate(header)}
        missing = [name for name in REQUIRED_COLUMNS if name not in names]
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            plural = "s" if len(missing) > 1 else ""
            raise DatasetError(source, f"missing column{plural} {listed}")
        # Optional key columns that are absent read as an empty cell appended to each row.
        width = len(header)
        pad = any(name not in names for name in KEY_COLUMNS)
        key_of = itemgetter(*(names.get(name, width) for name in KEY_COLUMNS))
        value_index = names[VALUE_COLUMN]
        raw: defaultdict[GroupKey, list[str]] = defaultdict(list)
        malformed = 0
        for row in reader:
            if len(row) != width:
                if row:
                    malformed += 1
                continue
            if pad:
                row.append("")
            raw[key_of(row)].append(row[value_index])
    except csv.Error as exc:
        raise DatasetError(source, f"not valid CSV at line {reader.line_num}: {exc}") from None
    if not raw:
        problem = f"none of its {malformed} data rows has" if malformed else "no data rows after"
        raise DatasetError(source, f"{problem} the header's {width} columns")
    rows_read = sum(map(len, raw.values())) + malformed
    return Dataset.from_raw_groups(raw, source=source, rows_read=rows_read, rows_skipped=malformed)


def load_demo_dataset(rows: int = DEMO_ROWS, seed: int = DEMO_SEED) -> Dataset:
    """The built-in demo dataset, generated in memory and parsed like any file (no download)."""
    return load_lines(
        iter_demo_lines(rows, seed), source=f"demo dataset ({rows} rows, seed {seed})"
    )
