"""Shared fixtures for the whole test suite.

- `no_leaked_actors` (autouse): after every test, no pykka actor may be left registered and no
  engine actor thread (`Dispatcher-*`, `Worker-*`, `ResultStore-*`, `JournalCommitter-*`) may
  still run. A test that leaks fails in its teardown, and the leftovers are then stopped so the
  next test starts clean.
- `tiny_dataset`: a hand-made `Dataset` (four states, two questions, a few strata).
- `results_dir`: a fresh, not yet created results directory under pytest's `tmp_path`.
- `recorder`: starts stand-in actors that record every message they receive (`Recording`); one
  serves as the Worker a `RegisterJob` names, or as the Dispatcher's ResultStore.
- `start_store`: starts ResultStores on a `FileStore` in `results_dir` (or a given `JobStore`),
  stops them after (each ResultStore starts and stops its own JournalCommitter).
- `any_store`: parametrized over "files" and "memory": `any_store()` makes a fresh `JobStore`
  of that kind, for message-level tests whose behaviour does not depend on the store.
- `make_engine`: starts `Engine`s over `tiny_dataset` (2 workers, `results_dir` unless given) and
  shuts down at teardown any still running.

Helpers: `GatedRunner`, a job runner that waits, sleeps, fails or crashes on demand (with `Crash`,
the fault that kills a Worker); `eventually(predicate)` polls until something another thread does
has happened; for message-level tests, `ask(ref, message)` tells a request and waits for its
`reply`; `TellSpy` wraps an engine's actor ref to see the messages the facade tells it;
`stop_actor(ref)` stops an actor without waiting on a reply pykka may never give.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from lestats.actors.engine import Engine
from lestats.actors.result_store import ResultStore
from lestats.data.dataset import Dataset, Record
from lestats.data.questions import BEST_IS_MAX, BEST_IS_MIN
from lestats.data.statistics import compute
from lestats.stores.files import FileStore
from lestats.stores.memory import MemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from lestats.data.query import Query
    from lestats.stores.base import JobStore, Retention

ACTOR_THREAD_PREFIXES = ("Dispatcher", "Worker", "ResultStore", "JournalCommitter")
"""pykka names an actor's thread after its class; these are the engine's actors."""

THREAD_EXIT_GRACE = 2.0
"""Seconds an actor thread may take to finish exiting after its actor stopped."""

OBESITY = BEST_IS_MIN[1]
"""A lower-is-better question of `tiny_dataset`."""
MUSCLE = BEST_IS_MAX[3]
"""A higher-is-better question of `tiny_dataset`."""
TINY_STATES = ("Alaska", "Ohio", "Texas", "Wyoming")
"""The states of `tiny_dataset`, sorted."""

BOOM = "BOOM"
"""A state no dataset has: `GatedRunner` crashes the Worker on a query for it by default."""

REPLY_TIMEOUT = 5.0
"""Seconds a test waits for an actor's reply before failing instead of hanging."""


def ask(ref: pykka.ActorRef[Any], message: Any, timeout: float = REPLY_TIMEOUT) -> Any:
    """Tell `message` (a request with a `reply` future) to `ref` and return its answer.

    Raises whatever the actor refused the request with.
    """
    ref.tell(message)
    return message.reply.result(timeout=timeout)


def stop_actor(ref: pykka.ActorRef[Any], timeout: float = REPLY_TIMEOUT) -> None:
    """Stop `ref` if it is alive and wait until it is stopped.

    Safe on an actor that is already stopped or stopping itself (a Dispatcher after its drain),
    and it fails the test after `timeout` seconds instead of hanging on a stuck actor.
    """
    if ref.is_alive():
        ref.stop(block=False)
    if not ref.actor_stopped.wait(timeout):
        pytest.fail(f"{ref} did not stop within {timeout} s")


def eventually(predicate: Callable[[], object], timeout: float = REPLY_TIMEOUT) -> None:
    """Wait until `predicate()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {timeout} s: {predicate}")
        time.sleep(0.002)


class Crash(BaseException):
    """Not an ordinary error: a job raising it kills its Worker (the Dispatcher replaces it)."""


class GatedRunner:
    """A job runner for tests: `compute`, after waiting for `gate` and sleeping `delay` seconds.

    `gate` starts closed when `gated`. A query matching `crash` raises `Crash` (by default: state
    BOOM); one matching `fail` raises ValueError. `started` is released once per job entering
    the runner, so a test can wait until a job is running; `calls` and `crashes` count.
    """

    def __init__(
        self,
        *,
        gated: bool = True,
        delay: float = 0.0,
        crash: Callable[[Query], bool] = lambda query: query.state == BOOM,
        fail: Callable[[Query], bool] = lambda _query: False,
    ) -> None:
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.delay = delay
        self.crash = crash
        self.fail = fail
        self.started = threading.Semaphore(0)
        self.calls = 0
        self.crashes = 0
        self._lock = threading.Lock()

    def __call__(self, dataset: Dataset, query: Query) -> object:
        with self._lock:
            self.calls += 1
        self.started.release()
        if not self.gate.wait(10):
            raise TimeoutError("the test never opened the gate")
        if self.delay:
            time.sleep(self.delay)
        if self.crash(query):
            with self._lock:
                self.crashes += 1
            raise Crash("the job took the worker down")
        if self.fail(query):
            raise ValueError("this job fails")
        return compute(dataset, query)

    def wait_started(self, jobs: int = 1, timeout: float = REPLY_TIMEOUT) -> None:
        """Wait until `jobs` more jobs have entered the runner."""
        for _ in range(jobs):
            if not self.started.acquire(timeout=timeout):
                pytest.fail(f"no job entered the runner within {timeout} s")


class Recorder(pykka.ThreadingActor):
    """A stand-in actor that records every message it receives, in arrival order."""

    def __init__(self, received: queue.Queue[Any]) -> None:
        super().__init__()
        self._received = received

    def on_receive(self, message: Any) -> None:
        self._received.put(message)


@dataclass
class Recording:
    """A started `Recorder`: its ref, and the messages it received."""

    ref: pykka.ActorRef[Any]
    received: queue.Queue[Any] = field(default_factory=queue.Queue)

    def next(self, timeout: float = REPLY_TIMEOUT) -> Any:
        """The next message received (waiting up to `timeout` seconds for it)."""
        return self.received.get(timeout=timeout)

    def take(self, count: int, timeout: float = REPLY_TIMEOUT) -> list[Any]:
        """The next `count` messages received."""
        return [self.next(timeout) for _ in range(count)]

    def pending(self) -> list[Any]:
        """The messages received and not taken yet, without waiting."""
        messages = []
        while True:
            try:
                messages.append(self.received.get_nowait())
            except queue.Empty:
                return messages

    def flush(self, timeout: float = REPLY_TIMEOUT) -> list[Any]:
        """Every message told to this stand-in before now and not taken yet, in arrival order.

        Tells the stand-in a marker and collects what it received up to the marker: so after
        an actor has answered a request, `flush()` shows all it sent here before answering,
        with no sleep.
        """
        marker = _Marker()
        self.ref.tell(marker)
        messages = []
        while (message := self.next(timeout)) is not marker:
            messages.append(message)
        return messages


class _Marker:
    """A message only `Recording.flush` sends."""


class TellSpy:
    """Stands in for an `ActorRef`: records every message told through it, then passes it on.

    Put in an engine's place (`engine._store = TellSpy(engine._store)`) to see what the facade
    tells that actor; every other attribute is the wrapped ref's.
    """

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)
        self.ref.tell(message)

    def of_type(self, kind: type[Any]) -> list[Any]:
        """The messages of type `kind` told so far, in order."""
        return [message for message in self.told if isinstance(message, kind)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ref, name)


def _actor_threads() -> list[str]:
    return sorted(
        thread.name
        for thread in threading.enumerate()
        if thread.is_alive() and thread.name.startswith(ACTOR_THREAD_PREFIXES)
    )


def _leftovers() -> tuple[list[str], list[str]]:
    return [repr(ref) for ref in pykka.ActorRegistry.get_all()], _actor_threads()


def _wait_for_leftovers(grace: float) -> tuple[list[str], list[str]]:
    """Actors still registered and actor threads still alive, after waiting up to `grace` s.

    An actor stopped with `block=False` (a Dispatcher stopping its Workers, say) unregisters
    and ends its thread a moment later: that is not a leak.
    """
    deadline = time.monotonic() + grace
    while any(leftovers := _leftovers()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return leftovers


@pytest.fixture(autouse=True)
def no_leaked_actors() -> Iterator[None]:
    """Fail a test that leaves a pykka actor registered or an engine actor thread running."""
    yield
    actors, threads = _wait_for_leftovers(THREAD_EXIT_GRACE)
    if not actors and not threads:
        return
    # Last-resort cleanup so that one leaking test does not fail every test after it. Product
    # code must never do this: the registry is process-wide.
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    _, threads_after = _wait_for_leftovers(THREAD_EXIT_GRACE)
    pytest.fail(
        f"test leaked actors {actors} and actor threads {threads}"
        f" (threads still running after stop_all: {threads_after})"
    )


@pytest.fixture
def tiny_dataset() -> Dataset:
    """Four states, two questions (one of each direction), with category/stratum breakdowns."""
    records = [
        Record(OBESITY, "Ohio", 30.0, "Age (years)", "18 - 24"),
        Record(OBESITY, "Ohio", 34.0, "Age (years)", "25 - 34"),
        Record(OBESITY, "Texas", 28.0, "Gender", "Male"),
        Record(OBESITY, "Texas", 27.0, "Gender", "Female"),
        Record(OBESITY, "Alaska", 33.0, "Total", "Total"),
        Record(OBESITY, "Wyoming", 25.0, "Income", "$75,000 or greater"),
        Record(MUSCLE, "Ohio", 20.0, "Age (years)", "18 - 24"),
        Record(MUSCLE, "Texas", 24.0, "Gender", "Male"),
        Record(MUSCLE, "Alaska", 31.0, "Total", "Total"),
        Record(MUSCLE, "Wyoming", 22.5, "Total", "Total"),
    ]
    return Dataset.from_records(records, source="tiny")


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A results directory that does not exist yet (the engine creates it)."""
    return tmp_path / "results"


@pytest.fixture
def recorder() -> Iterator[Callable[[], Recording]]:
    """A factory of started `Recorder` stand-ins; every one still alive is stopped at teardown."""
    started: list[Recording] = []

    def start() -> Recording:
        received: queue.Queue[Any] = queue.Queue()
        recording = Recording(Recorder.start(received), received)
        started.append(recording)
        return recording

    yield start
    for recording in started:
        stop_actor(recording.ref)


@pytest.fixture
def start_store(results_dir: Path) -> Iterator[Callable[..., pykka.ActorRef[Any]]]:
    """A factory of started ResultStores; every one still alive is stopped at teardown.

    `start(max_pending=100, store=None, **options)`: a `FileStore` in `results_dir` unless a
    `JobStore` is given; `options` go to `ResultStore` (`retention`, `claims`).
    """
    started: list[pykka.ActorRef[Any]] = []

    def start(
        max_pending: int = 100, store: JobStore | None = None, **options: Any
    ) -> pykka.ActorRef[Any]:
        ref = ResultStore.start(
            store if store is not None else FileStore(results_dir), max_pending, **options
        )
        started.append(ref)
        return ref

    yield start
    for ref in started:
        stop_actor(ref)


@pytest.fixture(params=["files", "memory"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], JobStore]:
    """A factory of fresh stores of one kind per run: a `FileStore` (each in its own directory)
    or a `MemoryStore`."""
    made = 0

    def make() -> JobStore:
        nonlocal made
        made += 1
        if request.param == "memory":
            return MemoryStore()
        return FileStore(tmp_path / f"store-{made}")

    return make


def no_retention() -> Retention:
    """Keep every job (the default)."""
    from lestats.stores.base import NO_RETENTION_LIMIT  # noqa: PLC0415

    return NO_RETENTION_LIMIT


@pytest.fixture
def make_engine(tiny_dataset: Dataset, results_dir: Path) -> Iterator[Callable[..., Engine]]:
    """A factory of started engines: `make(**options)` takes `Engine`'s keyword options.

    Defaults: 2 workers, `results_dir`. A test that blocks jobs must unblock them before its end.
    """
    engines: list[Engine] = []

    def make(**options: Any) -> Engine:
        options.setdefault("workers", 2)
        options.setdefault("results_dir", results_dir)
        engine = Engine(tiny_dataset, **options)
        engines.append(engine)
        return engine.start()

    yield make
    for engine in engines:
        engine.shutdown(timeout=10)
