"""The pytest plugin of lestats (entry point `pytest11`): engine fixtures and the leak check.

Installed with the package, loaded by pytest automatically (`-p no:lestats` turns it off).

Fixtures:

- `lestats_dataset`: `tiny_dataset()` (override it to serve your own data).
- `lestats_engine_factory`: `make(dataset=None, **engine_options)` starts an `Engine` over
  `lestats_dataset` (2 workers, results in the test's `tmp_path`); each is shut down (drained,
  10 s at most) at teardown.
- `lestats_engine`: one started engine from the factory.
- `lestats_probe`: `make(autopilot=None)` starts a `Probe`; each is stopped at teardown.
- `lestats_leak_check`: fails the test if it leaves a pykka actor registered or an engine
  actor thread running (then stops them, so the next test starts clean). Every test gets it
  when the ini option `lestats_check_leaks = true` is set.

Whatever the option, actors still running when the session ends are stopped and reported: a
leaked actor's thread would otherwise keep the test process alive after its summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka
import pytest

from lestats.actors.engine import Engine
from lestats.testing.datasets import tiny_dataset
from lestats.testing.helpers import leftovers
from lestats.testing.probe import Probe

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from lestats.data.dataset import Dataset

LEAK_GRACE = 2.0
"""Seconds an actor thread may take to finish exiting after its actor stopped."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ini option that turns the leak check on for every test."""
    parser.addini(
        "lestats_check_leaks",
        "fail every test that leaves a pykka actor or an engine thread running",
        type="bool",
        default=False,
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the actors a session leaves behind, so that the process can exit; say which."""
    actors = pykka.ActorRegistry.get_all()
    if not actors:
        return
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"lestats: stopped {len(actors)} actor(s) left running by the tests: "
            + ", ".join(map(repr, actors)),
            yellow=True,
        )


@pytest.fixture
def lestats_leak_check() -> Iterator[None]:
    """Fail the test if it leaves a pykka actor registered or an engine actor thread running."""
    yield
    actors, threads = leftovers(LEAK_GRACE)
    if not actors and not threads:
        return
    # Last-resort cleanup so that one leaking test does not fail every test after it. Product
    # code must never do this: the registry is process-wide.
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    _, threads_after = leftovers(LEAK_GRACE)
    pytest.fail(
        f"test leaked actors {actors} and actor threads {threads}"
        f" (threads still running after stop_all: {threads_after})"
    )


@pytest.fixture(autouse=True)
def _lestats_leaks_checked(request: pytest.FixtureRequest) -> None:
    """Set up first, so torn down last: checks after every other fixture has stopped its actors."""
    if request.config.getini("lestats_check_leaks"):
        request.getfixturevalue("lestats_leak_check")


@pytest.fixture
def lestats_dataset() -> Dataset:
    """The dataset `lestats_engine` serves: `tiny_dataset()`."""
    return tiny_dataset()


@pytest.fixture
def lestats_engine_factory(
    lestats_dataset: Dataset, tmp_path: Path
) -> Iterator[Callable[..., Engine]]:
    """`make(dataset=None, **engine_options)`: started engines, shut down at teardown."""
    engines: list[Engine] = []

    def make(dataset: Dataset | None = None, **options: Any) -> Engine:  # noqa: ANN401
        options.setdefault("workers", 2)
        options.setdefault("results_dir", tmp_path / "results")
        engine = Engine(lestats_dataset if dataset is None else dataset, **options)
        engines.append(engine)
        return engine.start()

    yield make
    for engine in engines:
        engine.shutdown(timeout=10)


@pytest.fixture
def lestats_engine(lestats_engine_factory: Callable[..., Engine]) -> Engine:
    """A started engine over `lestats_dataset`, shut down at teardown."""
    return lestats_engine_factory()


@pytest.fixture
def lestats_probe() -> Iterator[Callable[..., Probe]]:
    """`make(autopilot=None)`: started probes, stopped at teardown."""
    probes: list[Probe] = []

    def make(autopilot: Callable[[Any], None] | None = None) -> Probe:
        probe = Probe(autopilot)
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        probe.stop()
