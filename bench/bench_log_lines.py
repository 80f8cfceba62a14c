"""What one request log line costs the server, on the event loop and in the log writer's thread.

`python -m bench.bench_log_lines [--pairs 50000] [--rounds 5]` logs `--pairs` request line pairs
(the middleware's entry and exit lines, with their real formats and arguments) through
`start_file_logging` into a scratch file, in four ways, taking turns every round:

- `logging's own`: `logger.info` with `logging.LogRecord` records and `logging.Formatter`'s
  `%`-formatting (what the standard library does by itself, with the same writer thread);
- `LogRecord`: `logger.info` with `logging.LogRecord` records, the server's f-string format;
- `ServerRecord`: `logger.info` with the server's records (`ServerRecord`, no source path);
- `DirectInfo`: what the middleware uses, the line handed to the writer without a record.

It prints, per line, the logging thread's CPU (the event loop's share) and the whole process's
CPU (the writer's formatting and writing included), the medians over the rounds, each way's
ratio to `logging's own` in the same run, and checks that every way wrote the same text.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lestats.logs import DATE_FORMAT, LOG_FORMAT, DirectInfo, start_file_logging

if TYPE_CHECKING:
    from collections.abc import Callable

TARGET = "GET /api/v2/trend?question=Q036&location=OH,US"
WAYS = ("logging's own", "LogRecord", "ServerRecord", "DirectInfo")


def one_way(way: str, path: Path, pairs: int) -> tuple[float, float]:
    """Loop-side and whole-process CPU seconds per line for `pairs` request line pairs."""
    root = logging.getLogger()
    writer = start_file_logging(path)
    logger = logging.getLogger("lestats.http")
    info: Callable[..., None] = logger.info
    if way == "DirectInfo":
        info = DirectInfo(logger)
    if way in {"logging's own", "LogRecord"}:
        logging.setLogRecordFactory(logging.LogRecord)
    if way == "logging's own":
        standard = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
        standard.converter = time.gmtime
        writer.file.setFormatter(standard)
    try:
        process, thread = time.process_time(), time.thread_time()
        for _ in range(pairs):
            info("-> %s %r", TARGET, "")
            info("<- %s %d %s (%.2f ms)", TARGET, 200, "cached", 0.0123)
        thread = time.thread_time() - thread
    finally:
        writer.stop()
        root.setLevel(logging.WARNING)
    process = time.process_time() - process
    return thread / (2 * pairs), process / (2 * pairs)


def texts(path: Path) -> list[str]:
    """The file's lines without their timestamps."""
    return [line.split(" ", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()]


def main() -> None:
    """Take turns at the four ways, print the medians and ratios, check the texts match."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50_000, help="line pairs per way and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the ways take turns)")
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="lestats-log-lines-") as scratch:
        written: dict[str, list[str]] = {}
        for number in range(args.rounds):
            order = WAYS if number % 2 == 0 else tuple(reversed(WAYS))
            for way in order:
                path = Path(scratch) / f"{WAYS.index(way)}-{number}.log"
                figures[way].append(one_way(way, path, args.pairs))
                written[way] = texts(path)
                path.unlink()
    print(f"{args.pairs:,} request line pairs per way, {args.rounds} rounds (medians, per line)")
    base_loop = statistics.median(loop for loop, _ in figures[WAYS[0]])
    base_process = statistics.median(process for _, process in figures[WAYS[0]])
    for way in WAYS:
        loop = statistics.median(loop for loop, _ in figures[way])
        process = statistics.median(process for _, process in figures[way])
        print(
            f"  {way:14s} loop thread {loop * 1e6:5.2f} us (x{loop / base_loop:.2f})"
            f"  whole process {process * 1e6:5.2f} us (x{process / base_process:.2f})"
        )
    same = all(written[way] == written[WAYS[0]] for way in WAYS)
    print(f"  the same text from every way: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
