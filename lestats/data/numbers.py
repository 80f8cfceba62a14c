"""What counts as a number in a CSV cell: one definition for both parsers and every column.

Why not `float()`: it also takes `1_000`, Arabic-Indic and full-width digits and
Unicode spaces, which no CSV export means as numbers. A cell is a number when it is ASCII
decimal or scientific notation (`30`, `-0.5`, `.5`, `5.`, `1e5`), optionally between ASCII
spaces, finite, and at most `MAX_MAGNITUDE` in size.
"""

from __future__ import annotations

import re

MAX_MAGNITUDE = 1e300
"""Values beyond this magnitude count as not numeric: their sums and differences could overflow
to Infinity, which JSON cannot carry (the data are percentages)."""

NUMBER = re.compile(
    r"[ \t\n\r\f\v]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\f\v]*",
    re.ASCII,
)
"""The syntax of a number (before the finiteness and magnitude checks)."""


def parse_number(text: str) -> float | None:
    """The cell's number, or None when it is empty, not a number, not finite or absurd."""
    if NUMBER.fullmatch(text) is None:
        return None
    number = float(text)
    if not abs(number) <= MAX_MAGNITUDE:  # also False for an overflow to infinity
        return None
    return number
