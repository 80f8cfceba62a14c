"""The project's own fixtures, on top of the shipped test kit (`lestats.testing`).

The helpers (`Probe`, `GatedRunner`, `ask`, `eventually`, `stop_actor`, `TellSpy`, the tiny
dataset) and the leak check live in `lestats.testing`, whose pytest plugin every test run
loads; `lestats_check_leaks = true` (pyproject.toml) makes every test fail that leaks an actor.

- `tiny_dataset`: `lestats.testing.tiny_dataset()` (four states, two questions, a few strata).
- `results_dir`: a fresh, not yet created results directory under pytest's `tmp_path`.
- `recorder`: starts `Probe`s, actors that record every message they receive; one serves as the
  Worker a `RegisterJob` names, or as the Dispatcher's ResultStore.
- `start_store`: starts ResultStores on a `FileStore` in `results_dir` (or a given `JobStore`),
  stops them after (each ResultStore starts and stops its own JournalCommitter).
- `any_store`: parametrized over "files" and "memory": `any_store()` makes a fresh `JobStore`
  of that kind, for message-level tests whose behaviour does not depend on the store.
- `make_engine`: starts `Engine`s over `tiny_dataset` (2 workers, `results_dir` unless given) and
  shuts down at teardown any still running (the plugin's `lestats_engine_factory`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from lestats.actors.result_store import ResultStore
from lestats.stores.files import FileStore
from lestats.stores.memory import MemoryStore
from lestats.testing import stop_actor
from lestats.testing import tiny_dataset as build_tiny_dataset

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import pykka

    from lestats.actors.engine import Engine
    from lestats.data.dataset import Dataset
    from lestats.stores.base import JobStore
    from lestats.testing import Probe


@pytest.fixture
def tiny_dataset() -> Dataset:
    """Four states, two questions (one of each direction), with category/stratum breakdowns."""
    return build_tiny_dataset()


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A results directory that does not exist yet (the engine creates it)."""
    return tmp_path / "results"


@pytest.fixture
def recorder(lestats_probe: Callable[..., Probe]) -> Callable[..., Probe]:
    """A factory of started probes; every one is stopped at teardown."""
    return lestats_probe


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


@pytest.fixture
def make_engine(
    lestats_engine_factory: Callable[..., Engine], tiny_dataset: Dataset, results_dir: Path
) -> Callable[..., Engine]:
    """A factory of started engines: `make(**options)` takes `Engine`'s keyword options.

    Defaults: 2 workers, `results_dir`. A test that blocks jobs must unblock them before its end.
    """

    def make(**options: Any) -> Engine:
        options.setdefault("results_dir", results_dir)
        return lestats_engine_factory(tiny_dataset, **options)

    return make
