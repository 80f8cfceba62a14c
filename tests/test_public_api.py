"""The supported public surface: the documented modules import, `lestats.messages` is a module,
and pykka's `ask` answers the engine's requests (or refuses one-way messages) instead of None."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
import types

import pykka
import pytest

import lestats
from lestats import messages as m
from lestats.actors import Dispatcher, RequestRef, ResultStore, Worker
from lestats.actors.jobs import JobOutcome, JobStatus
from lestats.data.query import Query
from lestats.data.statistics import compute
from lestats.errors import JobFailed, LeStatsError, UnknownJob
from lestats.testing import OBESITY

PUBLIC_MODULES = ("lestats", "lestats.messages", "lestats.actors", "lestats.registry")


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_module_imports_and_exports_what_it_lists(name):
    module = importlib.import_module(name)
    assert module.__doc__
    for exported in getattr(module, "__all__", ()):
        assert hasattr(module, exported), f"{name}.{exported}"


def test_messages_is_a_real_module_in_a_fresh_interpreter():
    code = (
        "from lestats.messages import Poison, SubmitJob, JobErrored\n"
        "import lestats, lestats.messages, types\n"
        "assert isinstance(lestats.messages, types.ModuleType)\n"
        "assert lestats.messages.Poison is Poison\n"
        "print(Poison.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "lestats.messages"


def test_the_message_and_the_exception_no_longer_share_a_name():
    assert isinstance(lestats.messages, types.ModuleType)
    assert not hasattr(m, "JobFailed")
    assert m.JobErrored(3, "boom").reason == "boom"
    assert issubclass(lestats.JobFailed, LeStatsError)
    assert lestats.JobFailed is JobFailed


def test_every_message_is_a_frozen_message_dataclass():
    kinds = [
        value
        for value in vars(m).values()
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value is not m.HeldJob
    ]
    assert len(kinds) > 20
    for kind in kinds:
        assert issubclass(kind, m.Message), kind
        assert kind.__dataclass_params__.frozen, kind  # type: ignore[attr-defined]


# --- pykka's ask --------------------------------------------------------------------------------


def test_ask_answers_a_request_settled_at_once(start_store):
    store = start_store()
    assert isinstance(store, RequestRef)
    assert store.ask(m.CountPending()) == 0
    assert store.ask(m.ListJobs(), timeout=5) == ()


def test_ask_raises_what_the_actor_refused_with(start_store):
    store = start_store()
    with pytest.raises(UnknownJob):
        store.ask(m.GetOutcome(99), timeout=5)
    future = store.ask(m.GetOutcome(99), block=False)
    assert isinstance(future, pykka.Future)
    with pytest.raises(UnknownJob):
        future.get(timeout=5)


def test_ask_answers_a_request_settled_later(start_store, tiny_dataset):
    store = start_store()
    dispatcher = Dispatcher.start(store, lambda d: Worker.start(tiny_dataset, compute, store, d), 1)
    try:
        # The id is answered after the journal's group commit: later than on_receive returns.
        job_id = dispatcher.ask(m.SubmitJob(Query("best5", OBESITY)), timeout=5)
        assert job_id == 1
        outcome = store.ask(m.WatchJob(job_id), timeout=5)
        assert isinstance(outcome, JobOutcome)
        assert outcome.status is JobStatus.DONE
        future = dispatcher.ask(m.SubmitJob(Query("global_mean", OBESITY)), block=False)
        assert future.get(timeout=5) == 2
    finally:
        poison = m.Poison()
        dispatcher.tell(poison)
        poison.drained.result(timeout=5)
        store.stop()


def test_ask_refuses_a_one_way_message_clearly(start_store):
    store = start_store()
    with pytest.raises(TypeError, match="JobErrored is a one-way message"):
        store.ask(m.JobErrored(1, "x"))
    with pytest.raises(TypeError, match="Poison is a one-way message"):
        store.ask(m.Poison(), block=False)
    assert store.ask(m.CountPending(), timeout=5) == 0


def test_ask_of_a_dead_actor_raises_actor_dead(start_store):
    store = start_store()
    store.stop()
    with pytest.raises(pykka.ActorDeadError):
        store.ask(m.CountPending(), timeout=5)


def test_ask_of_other_messages_is_pykkas(start_store):
    store = start_store()
    # Not one of ours: pykka's own ask, answered with what on_receive returns (it logs, None).
    assert store.ask("hello", timeout=5) is None
    assert store.ask(m.CountPending(), timeout=5) == 0
    assert ResultStore.__mro__[1].__name__ == "RequestActor"


# --- logging: a library's failures reach the application's handlers, not stderr -----------------

EMBEDDER = """
import logging, sys
from lestats import Dataset, Engine, JobFailed, Record, default_registry
from lestats.registry import QUESTION

def broken(dataset, query):
    raise ZeroDivisionError("no rows for that")

registry = default_registry()
registry.register("broken", broken, summary="fails", parameters=[QUESTION])
q = "Percent of adults aged 18 years and older who have obesity"
dataset = Dataset.from_records([Record(q, "Ohio", 30.0)])
with Engine(dataset, workers=1, registry=registry, results_dir=sys.argv[1]) as engine:
    try:
        engine.result(engine.submit("broken", question=q), timeout=10)
    except JobFailed as failed:
        print("handled:", failed.reason)
    if len(sys.argv) > 2:
        logging.basicConfig(stream=sys.stdout, level=logging.ERROR)
        try:
            engine.result(engine.submit("broken", question=q), timeout=10)
        except JobFailed:
            pass
"""


def run_embedder(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "embedder.py"
    script.write_text(EMBEDDER, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "results"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_handled_job_failure_prints_nothing_on_the_embedders_stderr(tmp_path):
    done = run_embedder(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "handled: ZeroDivisionError: no rows for that\n"
    assert done.stderr == ""


def test_an_application_that_configures_logging_gets_the_traceback(tmp_path):
    done = run_embedder(tmp_path, "log")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Traceback (most recent call last):" in done.stdout
    assert "ZeroDivisionError: no rows for that" in done.stdout
    assert done.stdout.index("Traceback") < done.stdout.index("raise ZeroDivisionError")
