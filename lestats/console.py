"""The `lestats` command: `serve`, `ask` and `check` (see `lestats --help`).

- `lestats serve [run.py's options]` is `run.py`.
- `lestats ask STATISTIC --question Q [--state S] [--server URL]` answers one job and prints it
  as a table: through a `Client` of the server at URL, or else through an `Engine` embedded in
  this process on the demo data (or `--data PATH`). Both are driven by the same code, since the
  client has the engine's methods.
- `lestats check FILE` says whether the server could load FILE and what it holds; the exit
  status is 0 when usable, 1 when not.

Exit status 2 is a usage error (argparse's), 1 a refusal or a failure, each explained in one line
on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
from typing import TYPE_CHECKING

from lestats import cli, progress
from lestats.actors.engine import Engine
from lestats.answer_table import render
from lestats.check import check, format_report
from lestats.client import Client
from lestats.data.loader import load_dataset, load_demo_dataset
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import COURSE_STATISTICS, default_registry
from lestats.errors import LeStatsError
from lestats.question_names import label, resolve

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lestats.data.dataset import Dataset

ASK_TIMEOUT = 60.0
"""Seconds `ask` waits for its job."""
DEMO = "the demo dataset"
COURSE_QUESTIONS = BEST_IS_MIN + BEST_IS_MAX
"""What a fragment is resolved against for a server (an embedded engine knows its data's)."""


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(
        prog="lestats",
        description="Le Stats Sportif: BRFSS statistics as asynchronous jobs.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve",
        add_help=False,
        help="serve over HTTP (what run.py does; `lestats serve --help` lists the options)",
    )
    ask = commands.add_parser(
        "ask",
        help="answer one statistic and print it as a table",
        description="Answer one statistic: through the server at --server, or else embedded "
        "on the demo data (or --data).",
    )
    ask.add_argument(
        "statistic",
        choices=COURSE_STATISTICS,
        metavar="STATISTIC",
        help=", ".join(COURSE_STATISTICS),
    )
    ask.add_argument(
        "--question",
        "-q",
        required=True,
        help="the question: its id (Q036), its text, or any unambiguous fragment (obesity)",
    )
    ask.add_argument("--state", "-s", help="the state, for the state_* statistics")
    where = ask.add_mutually_exclusive_group()
    where.add_argument("--server", metavar="URL", help="ask the server at URL (http://host:port)")
    where.add_argument("--data", metavar="PATH", help="embedded, on this CSV instead of the demo")
    ask.add_argument("--json", action="store_true", help="print the exact JSON result")
    checked = commands.add_parser(
        "check",
        help="say whether a CSV can be served, and what it holds",
        description="Load FILE as the server would; report rows, questions, states, years and "
        "problems. Exit status 0: usable; 1: not usable.",
    )
    checked.add_argument("file", metavar="FILE", help="a BRFSS CSV (.csv or .csv.gz)")
    checked.add_argument("--json", action="store_true", help="print the report as JSON")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        return cli.main(args_list[1:])
    args = parser().parse_args(args_list)
    try:
        if args.command == "ask":
            return _ask(args)
        return _check(args)
    except LeStatsError as exc:
        sys.stderr.write(f"lestats {args.command}: {_explained(exc)}\n")
        return 1


def _explained(exc: LeStatsError) -> str:
    allowed = getattr(exc, "allowed", None)
    if not allowed:
        return str(exc)
    return f"{exc}; one of:\n  " + "\n  ".join(allowed)


def _ask(args: argparse.Namespace) -> int:
    statistic = default_registry()[args.statistic]
    state = args.state if statistic.needs_state else None
    with ExitStack() as stack:
        answers: Engine | Client
        if args.server:
            question = resolve(args.question, COURSE_QUESTIONS)
            answers = stack.enter_context(Client(args.server))
        else:
            dataset = _load(args.data)
            results = stack.enter_context(tempfile.TemporaryDirectory(prefix="lestats-ask-"))
            engine = Engine(dataset, workers=1, results_dir=results)
            question = resolve(args.question, engine.registry.questions(dataset))
            answers = stack.enter_context(engine)
        job_id = answers.submit(args.statistic, question=question, state=state)
        data = answers.result(job_id, timeout=ASK_TIMEOUT)
    if args.json:
        sys.stdout.write(json.dumps(data) + "\n")
        return 0
    about = f" ({state})" if state else ""
    source = args.server or args.data or DEMO
    sys.stdout.write(
        f"{args.statistic}{about} of {label(question)}\n"
        f"from {source}, {job_id}\n\n{render(args.statistic, data)}\n"
    )
    return 0


def _load(path: str | None) -> Dataset:
    if path is None:
        return load_demo_dataset()
    with progress.reading(path, "loading"):
        return load_dataset(path)


def _check(args: argparse.Namespace) -> int:
    with progress.reading(args.file, "loading"):
        found = check(args.file)
    if args.json:
        sys.stdout.write(json.dumps(found.to_json()) + "\n")
    else:
        sys.stdout.write(format_report(found) + "\n")
    return 0 if found.usable else 1
