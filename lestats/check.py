"""`lestats check FILE`: whether a CSV can be served, and what is in it.

The verdict is the server's own: the file is loaded by the same loader `run.py --data` uses, so
"usable" means exactly that the server would start on it. The report then says what the loaded
data holds (rows, questions with their row counts, states, years) and what a user may not
expect (rows skipped, course questions absent, questions no course endpoint serves).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lestats.data.loader import load_dataset
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.errors import DatasetError
from lestats.question_names import label

if TYPE_CHECKING:
    import os

    from lestats.data.dataset import Dataset

COURSE_QUESTIONS = frozenset(BEST_IS_MIN + BEST_IS_MAX)
_YEAR_START = 4
"""The index of `YearStart` in a group key (`lestats.data.dataset.GroupKey`)."""


@dataclass(frozen=True, slots=True)
class Report:
    """What `check` found; `usable` is the verdict."""

    source: str
    usable: bool
    rows_read: int = 0
    rows_skipped: int = 0
    questions: dict[str, int] = field(default_factory=dict)
    """Rows counted in the statistics, by question, for every question of the file."""
    states: tuple[str, ...] = ()
    years: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The report as a JSON object (for `--json`)."""
        return {
            "source": self.source,
            "usable": self.usable,
            "rows_read": self.rows_read,
            "rows_skipped": self.rows_skipped,
            "questions": self.questions,
            "states": list(self.states),
            "years": list(self.years),
            "problems": list(self.problems),
        }


def check(path: str | os.PathLike[str]) -> Report:
    """Load `path` as the server would, and report on it."""
    try:
        dataset = load_dataset(path)
    except DatasetError as exc:
        return Report(str(path), usable=False, problems=(str(exc),))
    return report(dataset)


def report(dataset: Dataset) -> Report:
    """The report on a loaded dataset."""
    rows: Counter[str] = Counter()
    years: set[int] = set()
    for key, values in dataset.groups.items():
        rows[key[0]] += len(values)
        if values and key[_YEAR_START].isdigit():
            years.add(int(key[_YEAR_START]))
    problems: list[str] = []
    if dataset.rows_skipped:
        problems.append(
            f"{dataset.rows_skipped} of {dataset.rows_read} rows skipped "
            "(no numeric Data_Value, or not as many cells as the header)"
        )
    missing = sorted(COURSE_QUESTIONS - rows.keys(), key=label)
    if missing:
        problems.append(
            f"{len(missing)} of the nine course questions have no row: "
            + "; ".join(label(q) for q in missing)
        )
    other = sorted(rows.keys() - COURSE_QUESTIONS)
    if other:
        problems.append(
            f"{len(other)} questions are not among the course's nine (best5 and worst5 refuse "
            "them: which way is better is not declared): " + "; ".join(other)
        )
    if not years:
        problems.append("no year: the YearStart column is absent or empty")
    return Report(
        dataset.source,
        usable=True,
        rows_read=dataset.rows_read,
        rows_skipped=dataset.rows_skipped,
        questions={q: rows[q] for q in sorted(rows, key=label)},
        states=dataset.states,
        years=tuple(sorted(years)),
        problems=tuple(problems),
    )


def format_report(found: Report) -> str:
    """The report for people (no trailing newline)."""
    if not found.usable:
        return f"{found.source}: NOT USABLE\n  " + "\n  ".join(found.problems)
    years = f"{found.years[0]}-{found.years[-1]}" if found.years else "none"
    lines = [
        f"{found.source}: usable",
        (
            f"  rows       {found.rows_read} read, {found.rows_read - found.rows_skipped} "
            f"counted, {found.rows_skipped} skipped"
        ),
        f"  years      {years} ({len(found.years)})",
        textwrap.fill(
            f"  states     {len(found.states)}: {', '.join(found.states)}",
            width=100,
            subsequent_indent=" " * 13,
            break_on_hyphens=False,
        ),
        f"  questions  {len(found.questions)}:",
        *(f"    {rows:>8} rows  {label(q)}" for q, rows in found.questions.items()),
    ]
    if found.problems:
        lines.append("  problems:")
        lines.extend(f"    - {problem}" for problem in found.problems)
    else:
        lines.append("  problems:  none")
    return "\n".join(lines)
