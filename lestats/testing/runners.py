"""A job runner that waits, sleeps, fails or crashes on demand, for tests of the engine."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from lestats.data.statistics import compute

if TYPE_CHECKING:
    from collections.abc import Callable

    from lestats.data.dataset import Dataset
    from lestats.data.query import Query

BOOM = "BOOM"
"""A state no dataset has: `GatedRunner` crashes the Worker on a query for it by default."""

GATE_TIMEOUT = 10.0
"""Seconds a gated job waits for its gate before failing (so a forgotten gate cannot hang)."""


class Crash(BaseException):
    """Not an ordinary error: a job raising it kills its Worker (the Dispatcher replaces it)."""


class GatedRunner:
    """A job runner (`Engine(runner=...)`): `compute`, after `gate` opens and `delay` seconds.

    `gate` starts closed when `gated`: jobs wait in the runner until the test opens it, so the
    test controls what is running without sleeping. A query matching `crash` raises `Crash` (by
    default: state BOOM); one matching `fail` raises ValueError. `started` is released once per
    job entering the runner (`wait_started`); `calls` and `crashes` count.
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
        """Run one job: count it, wait for the gate and the delay, then crash, fail or answer."""
        with self._lock:
            self.calls += 1
        self.started.release()
        if not self.gate.wait(GATE_TIMEOUT):
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

    def release(self) -> None:
        """Open the gate: every waiting and future job runs."""
        self.gate.set()

    def wait_started(self, jobs: int = 1, timeout: float = 5.0) -> None:
        """Wait until `jobs` more jobs have entered the runner.

        Raises:
            AssertionError: they did not within `timeout` seconds.
        """
        for _ in range(jobs):
            if not self.started.acquire(timeout=timeout):
                raise AssertionError(f"no job entered the runner within {timeout} s")
