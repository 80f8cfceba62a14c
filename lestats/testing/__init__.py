"""The test kit of lestats: test your own code against the engine at the level of messages.

Stable API. Shipped with the package (pytest is needed only for the plugin):

- `Probe`: an actor that records what it receives (`expect_msg`, `expect_msg_type`,
  `expect_no_msg`, `within`, `watch` / `unwatch` / `expect_terminated`, an `autopilot`).
- `ask(ref, request)`: tell a request and wait for its reply; `eventually(predicate)`;
  `stop_actor(ref)`; `TellSpy`, to see what is told to an actor.
- `GatedRunner`: a job runner that holds jobs until the test opens its gate, or fails or
  crashes them on demand (`Crash`).
- `tiny_dataset()`, `build_dataset(...)`: small datasets with known answers.
- The pytest plugin (`lestats.testing.plugin`, loaded automatically): the `lestats_engine`,
  `lestats_engine_factory`, `lestats_probe` and `lestats_leak_check` fixtures.
"""

from lestats.testing.datasets import MUSCLE, OBESITY, TINY_STATES, build_dataset, tiny_dataset
from lestats.testing.helpers import (
    REPLY_TIMEOUT,
    TellSpy,
    actor_threads,
    ask,
    eventually,
    leftovers,
    stop_actor,
)
from lestats.testing.probe import Probe, Terminated
from lestats.testing.runners import BOOM, Crash, GatedRunner

__all__ = [
    "BOOM",
    "MUSCLE",
    "OBESITY",
    "REPLY_TIMEOUT",
    "TINY_STATES",
    "Crash",
    "GatedRunner",
    "Probe",
    "TellSpy",
    "Terminated",
    "actor_threads",
    "ask",
    "build_dataset",
    "eventually",
    "leftovers",
    "stop_actor",
    "tiny_dataset",
]
