"""The command line: load the data, start the engine, serve HTTP, drain on SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from typing import TYPE_CHECKING

from aiohttp import web

from lestats.actors.engine import DEFAULT_MAX_PENDING, Engine, default_workers
from lestats.data.loader import load_dataset, load_demo_dataset
from lestats.errors import DatasetError, StorageError
from lestats.http.app import create_app
from lestats.logs import start_file_logging
from lestats.prefork import NOT_SHARED, ChildSetup, Supervisor
from lestats.stores.redis import DEFAULT_CLAIM_IDLE, RedisStore

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator, Sequence

    from lestats.data.dataset import Dataset
    from lestats.stores.base import JobStore

log = logging.getLogger("lestats")

STORE_SCHEMES = ("redis:", "rediss:", "unix:")
"""The `--store` URLs understood: Redis over TCP, over TLS, over a Unix socket."""
SHUTDOWN_TIMEOUT = 60.0
"""Seconds that in-flight HTTP requests get to finish at shutdown (jobs always drain)."""


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
        "--max-pending",
        type=_positive,
        default=DEFAULT_MAX_PENDING,
        help="accepted-but-unfinished jobs before POSTs get 503 with Retry-After",
    )
    add_cluster_options(parser)
    return parser.parse_args(argv)


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
        type=_positive_seconds,
        default=DEFAULT_CLAIM_IDLE,
        help="with --store: a process silent this long has its unfinished jobs run elsewhere",
    )


def _store_url(text: str) -> str:
    if not text.startswith(STORE_SCHEMES):
        schemes = ", ".join(f"{scheme}//" for scheme in STORE_SCHEMES)
        raise argparse.ArgumentTypeError(f"unknown store {text!r} (allowed: {schemes})")
    return text


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def load(path: str | None) -> Dataset:
    """The dataset at `path`, or the demo dataset generated in memory."""
    if path is None:
        return load_demo_dataset()
    return load_dataset(path)


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    sock: socket.socket | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish requests and drain all jobs.

    On `sock` if given (a pre-forked process's listening socket), else on `host:port`; once
    listening, `announce(urls)` if given, else the banner on stdout.
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        with startup_objects_frozen():  # before listening: no request waits on the collection
            site = (
                web.TCPSite(runner, host, port) if sock is None else web.SockSite(runner, sock)
            )
            await site.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            urls = ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses)
            if announce is not None:
                announce(urls)
            else:
                sys.stdout.write(f"Le Stats Sportif serving on {urls} (Ctrl+C drains and stops)\n")
                sys.stdout.flush()
            log.info("serving on %s", urls)
            await stop.wait()
        log.info("signal received: draining")
    finally:
        await runner.cleanup()
    log.info("stopped: every accepted job finished")


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Keep what exists now (dataset, modules, engine, app) out of the collector's way meanwhile.

    Those objects live as long as the server. Left to the cyclic garbage collector, every
    full collection walks all of them (20-40 ms with the event loop stopped, measured), and
    the requests' short-lived objects trigger such collections every few seconds under load.
    Frozen (`gc.freeze`), they are skipped: `python -m bench.ab` measured the p99 at 32 clients
    12-18% lower, throughput unchanged. Process-wide, hence here, in the server's command
    line, and undone on the way out.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; 0 after a clean drain, 2 when the data or the job store is unusable."""
    args = parse_args(argv)
    if args.processes > 1:
        return serve_processes(args)
    log_writer = start_file_logging(args.log_file)
    try:
        try:
            dataset = load(args.data)
        except DatasetError as exc:
            log.error("cannot load the data: %s", exc)  # noqa: TRY400 - the message says it all
            sys.stderr.write(f"error: cannot load the data: {exc}\n")
            return 2
        return _serve_engine(args, dataset)
    finally:
        log_writer.stop()


def _serve_engine(
    args: argparse.Namespace, dataset: Dataset, setup: ChildSetup | None = None
) -> int:
    """Serve one engine (the whole server, or one pre-forked process of it) until a signal."""
    engine = Engine(
        dataset,
        workers=args.workers,
        results_dir=args.results_dir,
        store=job_store(args, dataset),
        max_pending=args.max_pending,
    )
    try:
        if setup is None:
            asyncio.run(serve(create_app(engine), args.host, args.port))
        else:
            app = create_app(engine)
            asyncio.run(serve(app, args.host, args.port, sock=setup.sock, announce=setup.announce))
    except StorageError as exc:
        log.error("cannot open the job store: %s", exc.problem)  # noqa: TRY400
        sys.stderr.write(f"error: cannot open the job store: {exc.problem}\n")
        return 2
    return 0


def job_store(args: argparse.Namespace, dataset: Dataset) -> JobStore | None:
    """The store of `--store`, or None for the engine's default (files in --results-dir)."""
    if args.store is None:
        return None
    del dataset  # its fingerprint joins here once `Dataset.fingerprint` exists
    return RedisStore(args.store, claim_idle=args.claim_idle)


def serve_processes(args: argparse.Namespace) -> int:
    """`--processes N`: load the data once, fork N servers on one port (`lestats.prefork`)."""
    if args.store is None:
        sys.stderr.write(f"error: {NOT_SHARED}\n")
        return 2
    try:
        dataset = load(args.data)
    except DatasetError as exc:
        sys.stderr.write(f"error: cannot load the data: {exc}\n")
        return 2

    def child(setup: ChildSetup) -> int:
        log_writer = start_file_logging(process_log_file(args.log_file, setup.index))
        try:
            return _serve_engine(args, dataset, setup)
        finally:
            log_writer.stop()

    return Supervisor(args.processes, args.host, args.port, child).run()


def process_log_file(path: str, index: int) -> str:
    """Process `index`'s own log (`webserver.log` -> `webserver-2.log`): one writer per file."""
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}-{index}.{suffix}" if dot and "/" not in suffix else f"{path}-{index}"
