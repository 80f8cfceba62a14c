"""The command line: load the data, start the engine, serve HTTP, drain on a stop signal.

SIGTERM, SIGINT and SIGHUP all drain: job POSTs get 503 while reads keep answering, until every
accepted job is done; then the listener closes and the process exits 0. SIGHUP drains rather
than being ignored because the server has no configuration to reload, and the hang-up of its
terminal means that its operator has gone: without a handler it would die on the spot, leaving
the drain to the next start. A signal during the data load stops the process at once (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING

from aiohttp import web

from lestats import metrics
from lestats.actors.engine import DEFAULT_MAX_PENDING, DEFAULT_MAX_WAITERS, Engine, default_workers
from lestats.data.loader import load_dataset, load_demo_dataset
from lestats.data.registry import ENTRY_POINT_GROUP
from lestats.data.statistics import default_registry
from lestats.errors import DatasetError, StorageError
from lestats.http.app import create_app
from lestats.http.connections import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_SEND_TIMEOUT,
    RESERVED_FDS,
    ConnectionLimits,
    GuardedAppRunner,
    default_max_connections,
)
from lestats.http.keys import ENGINE
from lestats.logs import LOG_FORMATS, start_file_logging
from lestats.prefork import NOT_SHARED, ChildSetup, Supervisor
from lestats.progress import reading
from lestats.stores.base import Retention
from lestats.stores.redis import DEFAULT_CLAIM_IDLE, RedisStore

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator, Sequence
    from types import FrameType

    from lestats.data.dataset import Dataset
    from lestats.data.query import Query
    from lestats.data.registry import Registry
    from lestats.stores.base import JobStore

log = logging.getLogger("lestats")

STORE_SCHEMES = ("redis:", "rediss:", "unix:")
"""The `--store` URLs understood: Redis over TCP, over TLS, over a Unix socket."""
SHUTDOWN_TIMEOUT = 60.0
"""Seconds that in-flight HTTP requests get to finish at shutdown (jobs always drain)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""The signals that drain and stop the server (exit 0)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of spec §5."""
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Serve BRFSS statistics as asynchronous jobs over HTTP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="TCP port (0 picks a free one)")
    parser.add_argument(
        "--data",
        metavar="PATH",
        help="BRFSS CSV file (.csv or .csv.gz); default: the built-in demo dataset",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=default_workers(),
        help="worker actors (default: $TP_NUM_OF_THREADS, else the CPU count)",
    )
    parser.add_argument(
        "--results-dir", default="results", help="where results and the journal live"
    )
    parser.add_argument("--log-file", default="webserver.log", help="rotating server log")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="the log's lines: text for people, json for one JSON object per line",
    )
    parser.add_argument(
        "--max-pending",
        type=_positive,
        default=DEFAULT_MAX_PENDING,
        help="accepted-but-unfinished jobs before POSTs get 503 with Retry-After",
    )
    parser.add_argument(
        "--keep-last",
        type=_positive,
        metavar="N",
        help="forget finished jobs but the last N (they then answer error 'expired');"
        " default: keep all",
    )
    parser.add_argument(
        "--keep-for",
        type=_seconds,
        metavar="SECONDS",
        help="forget finished jobs older than this; default: keep all",
    )
    parser.add_argument(
        "--statistic",
        action="append",
        default=[],
        metavar="MODULE:NAME",
        help="add a statistic (a Statistic, or a function given the Registry); repeatable. "
        f"Installed plug-ins of the entry-point group {ENTRY_POINT_GROUP!r} load always",
    )
    parser.add_argument(
        "--max-waiters",
        type=_positive,
        default=DEFAULT_MAX_WAITERS,
        help="long-polls (?wait=) waiting at once before more get 503 with Retry-After; "
        "they do not count against other requests",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive,
        default=default_max_connections(),
        help="open client connections at most: past it a new one replaces the longest idle, "
        f"or gets 503 if none is idle; by default the open-file limit less {RESERVED_FDS}, "
        "at most 10000",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=DEFAULT_IDLE_TIMEOUT,
        help="seconds a connection may stay open without sending a request",
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds,
        default=DEFAULT_HEADER_TIMEOUT,
        help="seconds from a request's first byte to the end of its headers (then 408)",
    )
    parser.add_argument(
        "--send-timeout",
        type=_seconds,
        default=DEFAULT_SEND_TIMEOUT,
        help="seconds an answer may wait on a client that does not read it (then dropped)",
    )
    parser.add_argument(
        "--body-timeout",
        type=_seconds,
        default=DEFAULT_BODY_TIMEOUT,
        help="seconds for a request's body to arrive after its headers (then 408)",
    )
    add_cluster_options(parser)
    return parser.parse_args(argv)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def retention(args: argparse.Namespace) -> Retention:
    """The retention that `--keep-last` and `--keep-for` ask for."""
    return Retention(keep_last=args.keep_last, max_age=args.keep_for)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """The options of several processes serving one job space (README: "Running several...")."""
    parser.add_argument(
        "--store",
        metavar="URL",
        type=_store_url,
        help="a job store shared by several processes, redis://HOST:PORT/DB "
        "(default: files in --results-dir, one process)",
    )
    parser.add_argument(
        "--processes",
        type=_positive,
        default=1,
        help="server processes on this one port, each with its own actors (needs --store)",
    )
    parser.add_argument(
        "--claim-idle",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_CLAIM_IDLE,
        help="with --store: a process silent this long has its unfinished jobs run elsewhere",
    )


def _store_url(text: str) -> str:
    if not text.startswith(STORE_SCHEMES):
        schemes = ", ".join(f"{scheme}//" for scheme in STORE_SCHEMES)
        raise argparse.ArgumentTypeError(f"unknown store {text!r} (allowed: {schemes})")
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def statistics(targets: Sequence[str]) -> Registry:
    """The default registry and the v2 query kinds, plus the installed and `--statistic` plug-ins.

    Raises:
        ValueError: a plug-in cannot be loaded or clashes with a registered name.
    """
    registry = default_registry()
    registry.load_entry_points()
    for target in targets:
        registry.load_named(target)
        log.info("statistic plug-in %s loaded", target)
    return registry


def load(path: str | None) -> Dataset:
    """The dataset at `path` (with a progress bar on a terminal), or the demo dataset."""
    if path is None:
        return load_demo_dataset()
    with reading(path, "loading"):
        return load_dataset(path)


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: ConnectionLimits | None = None,
    signals: StopSignals | None = None,
    sock: socket.socket | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until a stop signal, then drain: reads answer, POSTs get 503, every job finishes.

    Only then does the listener close (in-flight requests get `SHUTDOWN_TIMEOUT` seconds, and
    long-polls are answered at once). `signals` holds the signals received before serving began.
    On `sock` if given (a pre-forked process's listening socket), else on `host:port`; once
    listening, `announce(urls)` if given, else the banner on stdout.
    """
    runner = GuardedAppRunner(
        app, limits or ConnectionLimits(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    try:
        with startup_objects_frozen():  # before listening: no request waits on the collection
            site = (
                web.TCPSite(runner, host, port) if sock is None else web.SockSite(runner, sock)
            )
            await site.start()
            stop = asyncio.Event()
            received: list[int] = list(signals.received) if signals else []
            loop = asyncio.get_running_loop()

            def on_signal(signum: int) -> None:
                if stop.is_set():
                    log.warning(
                        "%s received while draining: the drain goes on (SIGKILL stops at once; "
                        "unfinished jobs then run again at the next start)",
                        signal.Signals(signum).name,
                    )
                received.append(signum)
                stop.set()

            for signum in STOP_SIGNALS:
                loop.add_signal_handler(signum, on_signal, signum)
            if received:
                stop.set()
            urls = ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses)
            if announce is not None:
                announce(urls)
            else:
                sys.stdout.write(f"Le Stats Sportif serving on {urls} (Ctrl+C drains and stops)\n")
                sys.stdout.flush()
            log.info("serving on %s", urls)
            await stop.wait()
            engine = app[ENGINE]
            log.info(
                "%s received: draining (job POSTs get 503, reads keep answering)",
                signal.Signals(received[0]).name,
            )
            await asyncio.wrap_future(engine.begin_shutdown())
        log.info("every accepted job finished: closing the listener")
    finally:
        await runner.cleanup()
    log.info("stopped: every accepted job finished")


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Objects allocated (less those freed) between two collections of the youngest generation."""


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Keep what exists now (dataset, modules, engine, app) out of the collector's way meanwhile.

    Those objects live as long as the server. Left to the cyclic garbage collector, every
    full collection walks all of them (20-40 ms with the event loop stopped, measured), and
    the requests' short-lived objects trigger such collections every few seconds under load.
    Frozen (`gc.freeze`), they are skipped: `python -m bench.ab` measured the p99 at 32 clients
    12-18% lower, throughput unchanged.

    The youngest generation is also collected after `YOUNG_COLLECTION_THRESHOLD` objects
    rather than Python's 700: a request's objects (its request, response, task, futures and
    log records) mostly die within the request, so most of them are then freed before any
    collection sees them, and the older generations, which hold every job's record, are
    walked far less often. Measured at 32 clients over 20,000 jobs (the collector's own
    thread CPU time): 20 us of collection per job at 700, 11 us at 10,000 (50,000 was worse
    again: each young collection then walks more). Process-wide, hence here, in the server's
    command line, and both are undone on the way out.
    """
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class StopSignals:
    """The stop signals, handled from the start of `main`: raised during the load, then kept.

    While the data loads, a signal raises `Interrupted` in the main thread (the load runs in
    another thread, so even a long C-level parse cannot delay it). Afterwards signals are only
    recorded, for `serve` to act on: it installs its own handlers in the event loop.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.raising = True

    def install(self) -> None:
        """Handle `STOP_SIGNALS` with `_handle` (in the main thread)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _: FrameType | None) -> None:
        self.received.append(signum)
        if self.raising:
            raise Interrupted(signum)


class Interrupted(Exception):  # noqa: N818 - an event, not a fault
    """A stop signal came while the data was loading."""

    def __init__(self, signum: int) -> None:
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


def load_interruptibly(path: str | None) -> Dataset:
    """`load(path)` in a daemon thread, waited for in this one (which signals interrupt)."""
    loaded: Future[Dataset] = Future()

    def run() -> None:
        try:
            loaded.set_result(load(path))
        except BaseException as exc:  # noqa: BLE001 - handed over whole to the waiting thread
            loaded.set_exception(exc)

    threading.Thread(target=run, name="lestats-load", daemon=True).start()
    return loaded.result()


def main(
    argv: Sequence[str] | None = None,
    *,
    runner: Callable[[Dataset, Query], object] | None = None,
    make_store: Callable[[str], JobStore] | None = None,
) -> int:
    """Run the server; 0 after a clean drain, 2 when the data, a statistic or the store fails.

    `runner`, if given, computes each job instead of the registry's statistics (tests give a
    gated one to hold jobs in a real process); `make_store`, if given, makes the job store from
    `--results-dir` instead of a `FileStore` (benchmarks wrap one).
    """
    args = parse_args(argv)
    if args.processes > 1:
        return serve_processes(args)
    log_writer = start_file_logging(args.log_file, log_format=args.log_format)
    signals = StopSignals()
    signals.install()
    try:
        try:
            log.info("loading the data: %s", args.data or "the built-in demo dataset")
            began = time.perf_counter()
            dataset = load_interruptibly(args.data)
            load_seconds = time.perf_counter() - began
        except DatasetError as exc:
            log.error("cannot load the data: %s", exc)  # noqa: TRY400 - the message says it all
            sys.stderr.write(f"error: cannot load the data: {exc}\n")
            return 2
        except Interrupted as exc:
            _stop_during_load(exc, log_writer.stop)
        signals.raising = False
        code = serve_engine(
            args,
            dataset,
            signals=signals,
            runner=runner,
            load_seconds=load_seconds,
            make_store=make_store,
        )
        signals.install()  # asyncio gave the signals their defaults back: keep them handled
        return code
    finally:
        log_writer.stop()


def _stop_during_load(exc: Interrupted, stop_logging: Callable[[], None]) -> None:
    """Exit 0 at once: nothing was served, nothing accepted; the loading thread is abandoned.

    `os._exit`, because the load may be deep in a parser's own threads that a normal exit
    would wait for; the log and the standard streams are flushed first.
    """
    log.info("%s received while loading the data: stopped before serving", exc.name)
    sys.stderr.write(f"{exc.name} received while loading the data: stopped before serving\n")
    sys.stderr.flush()
    sys.stdout.flush()
    stop_logging()
    os._exit(0)


def serve_engine(
    args: argparse.Namespace,
    dataset: Dataset,
    *,
    signals: StopSignals | None = None,
    runner: Callable[[Dataset, Query], object] | None = None,
    setup: ChildSetup | None = None,
    load_seconds: float = 0.0,
    make_store: Callable[[str], JobStore] | None = None,
) -> int:
    """Serve one engine (the whole server, or one pre-forked process of it) until a signal.

    `load_seconds`, the time the data took to load, is reported by the metrics; `make_store`
    makes the job store from `--results-dir` instead of the default (benchmarks wrap one).
    """
    try:
        registry = statistics(args.statistic)
    except (ValueError, TypeError) as exc:
        log.error("cannot load a statistic: %s", exc)  # noqa: TRY400 - the message says it all
        sys.stderr.write(f"error: cannot load a statistic: {exc}\n")
        return 2
    engine = Engine(
        dataset,
        workers=args.workers,
        results_dir=args.results_dir,
        store=job_store(args, dataset) if make_store is None else make_store(args.results_dir),
        max_pending=args.max_pending,
        retention=retention(args),
        registry=registry,
        max_waiters=args.max_waiters,
        runner=runner,
    )
    limits = ConnectionLimits(
        idle_timeout=args.idle_timeout,
        header_timeout=args.header_timeout,
        send_timeout=args.send_timeout,
        max_connections=args.max_connections,
    )
    app = create_app(engine, body_timeout=args.body_timeout)
    metrics.install(app, load_seconds=load_seconds)
    sock, announce = (None, None) if setup is None else (setup.sock, setup.announce)
    try:
        asyncio.run(
            serve(
                app,
                args.host,
                args.port,
                limits=limits,
                signals=signals,
                sock=sock,
                announce=announce,
            )
        )
    except StorageError as exc:  # the store is unusable, in use, away, or serves other data
        log.error("cannot open the job store: %s", exc.problem)  # noqa: TRY400
        sys.stderr.write(f"error: {exc.problem}\n")
        return 2
    return 0


def job_store(args: argparse.Namespace, dataset: Dataset) -> JobStore | None:
    """The store of `--store`, or None for the engine's default (files in --results-dir)."""
    if args.store is None:
        return None
    return RedisStore(
        args.store,
        claim_idle=args.claim_idle,
        retention=retention(args),
        fingerprint=dataset.fingerprint,
    )


def serve_processes(args: argparse.Namespace) -> int:
    """`--processes N`: load the data once, fork N servers on one port (`lestats.prefork`)."""
    if args.store is None:
        sys.stderr.write(f"error: {NOT_SHARED}\n")
        return 2
    try:
        began = time.perf_counter()
        dataset = load(args.data)
        load_seconds = time.perf_counter() - began
    except DatasetError as exc:
        sys.stderr.write(f"error: cannot load the data: {exc}\n")
        return 2

    def child(setup: ChildSetup) -> int:
        log_writer = start_file_logging(
            process_log_file(args.log_file, setup.index), log_format=args.log_format
        )
        try:
            return serve_engine(args, dataset, setup=setup, load_seconds=load_seconds)
        finally:
            log_writer.stop()

    with metrics.shared_directory():  # a scrape of any process adds up all of them
        return Supervisor(args.processes, args.host, args.port, child).run()


def process_log_file(path: str, index: int) -> str:
    """Process `index`'s own log (`webserver.log` -> `webserver-2.log`): one writer per file."""
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}-{index}.{suffix}" if dot and "/" not in suffix else f"{path}-{index}"
