"""HTTP, engine and data benchmarks of Le Stats Sportif: `python -m bench` runs them.

`option` and `parse_plan` make a benchmark's command line from the dataclass of its settings.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Sequence

T = TypeVar("T")


def option(default: T, text: str, **argparse_kwargs: object) -> T:
    """A settings field that is also the option `--<name>`, typed like `default`; `text`: help."""
    return dataclasses.field(default=default, metadata={"help": text, **argparse_kwargs})


def parse_plan(plan: type[T], argv: Sequence[str] | None, *, prog: str) -> T:
    """Parse `argv` into a `plan`: one option per field (all made by `option`), in field order.

    The plan's docstring is the command's description in `--help`.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=plan.__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for spec in dataclasses.fields(plan):  # type: ignore[arg-type]
        flag = "--" + spec.name.replace("_", "-")
        parser.add_argument(flag, type=type(spec.default), default=spec.default, **spec.metadata)
    return plan(**vars(parser.parse_args(argv)))
