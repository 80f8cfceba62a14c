"""The shipped test kit (`lestats.testing`): the probe's expectations, the helpers, the datasets,
and the pytest plugin as installed (run in a subprocess on a temporary directory)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pykka
import pytest

from lestats import messages as m
from lestats.actors.jobs import JobStatus
from lestats.testing import (
    MUSCLE,
    OBESITY,
    GatedRunner,
    Probe,
    Terminated,
    ask,
    build_dataset,
    eventually,
    leftovers,
    tiny_dataset,
)

# --- the probe ----------------------------------------------------------------------------------


def test_expect_msg_takes_messages_in_order(lestats_probe):
    probe = lestats_probe()
    probe.ref.tell(m.JobDone(1, b"{}"))
    probe.ref.tell(m.JobErrored(2, "boom"))
    assert probe.expect_msg(m.JobDone(1, b"{}")) == m.JobDone(1, b"{}")
    assert probe.expect_msg_type(m.JobErrored).reason == "boom"
    probe.expect_no_msg(0.02)


def test_expect_msg_fails_on_another_message(lestats_probe):
    probe = lestats_probe()
    probe.ref.tell(m.JobDone(1, b"{}"))
    with pytest.raises(
        AssertionError, match=r"expected JobDone\(job_id=2.*received JobDone\(job_id=1"
    ):
        probe.expect_msg(m.JobDone(2, b"{}"))


def test_expect_msg_type_fails_on_another_type(lestats_probe):
    probe = lestats_probe()
    probe.ref.tell("hello")
    with pytest.raises(AssertionError, match="expected a JobDone, received 'hello'"):
        probe.expect_msg_type(m.JobDone)


def test_expect_fails_when_nothing_comes_in_time(lestats_probe):
    probe = lestats_probe()
    with pytest.raises(AssertionError, match="no message within"):
        probe.expect_msg_type(m.JobDone, timeout=0.01)


def test_expect_no_msg_fails_when_something_comes(lestats_probe):
    probe = lestats_probe()
    probe.ref.tell(m.JobDone(1, b"{}"))
    with pytest.raises(AssertionError, match="expected no message, received JobDone"):
        probe.expect_no_msg(1.0)


def test_within_bounds_the_expectations_inside(lestats_probe):
    probe = lestats_probe()
    probe.ref.tell(m.JobDone(1, b"{}"))
    with probe.within(2.0):
        probe.expect_msg_type(m.JobDone)
    with pytest.raises(AssertionError, match="no message within"), probe.within(0.05):
        probe.expect_msg_type(m.JobDone)  # waits what is left of 0.05 s, not REPLY_TIMEOUT


def test_within_fails_a_block_that_is_too_fast_or_too_slow(lestats_probe):
    probe = lestats_probe()
    with pytest.raises(AssertionError, match="less than 5"), probe.within(10.0, minimum=5.0):
        pass
    done = threading.Event()
    with pytest.raises(AssertionError, match=r"more than 0\.01"), probe.within(0.01):
        done.wait(0.05)


def test_watch_reports_termination_and_unwatch_stops_it(lestats_probe):
    probe, watched, unwatched = lestats_probe(), lestats_probe(), lestats_probe()
    probe.watch(watched.ref)
    probe.watch(unwatched.ref)
    probe.unwatch(unwatched.ref)
    unwatched.stop()
    watched.stop()
    assert probe.expect_terminated(watched.ref) == Terminated(watched.ref)
    probe.expect_no_msg(0.1)  # no Terminated for the unwatched probe


def test_watching_an_actor_already_stopped_reports_it_at_once(lestats_probe):
    probe, other = lestats_probe(), lestats_probe()
    other.stop()
    probe.watch(other.ref)
    probe.expect_terminated(other.ref, timeout=2)


def test_the_autopilot_answers_requests(lestats_probe):
    def autopilot(message):
        if isinstance(message, m.CountPending):
            m.answer(message.reply, 7)

    probe = lestats_probe(autopilot)
    assert ask(probe.ref, m.CountPending()) == 7
    assert isinstance(probe.expect_msg_type(m.CountPending), m.CountPending)


def test_flush_returns_what_came_before_now(lestats_probe):
    probe = lestats_probe()
    for n in range(3):
        probe.ref.tell(m.JobDone(n, b"{}"))
    assert [message.job_id for message in probe.flush()] == [0, 1, 2]
    assert probe.pending() == []


def test_a_probe_used_as_a_context_manager_stops():
    with Probe() as probe:
        assert probe.ref.is_alive()
    assert not probe.ref.is_alive()


# --- the helpers and the datasets ---------------------------------------------------------------


def test_eventually_fails_with_what_never_became_true():
    with pytest.raises(AssertionError, match="still not true"):
        eventually(lambda: False, timeout=0.02)


def test_gated_runner_holds_jobs_until_released(lestats_engine_factory):
    runner = GatedRunner()
    engine = lestats_engine_factory(runner=runner, workers=1)
    job = engine.submit("global_mean", OBESITY)
    runner.wait_started()
    assert engine.status(job) is JobStatus.RUNNING
    runner.release()
    assert engine.result(job, timeout=5) == {"global_mean": 29.5}
    with pytest.raises(AssertionError, match="no job entered the runner"):
        runner.wait_started(timeout=0.01)


def test_the_datasets_have_their_documented_answers():
    dataset = tiny_dataset()
    assert dataset.states == ("Alaska", "Ohio", "Texas", "Wyoming")
    assert dataset.stats(OBESITY).global_mean == 29.5
    assert dataset.stats(MUSCLE).state_means["Wyoming"] == 22.5
    built = build_dataset({OBESITY: {"Ohio": [30.0, 34.0], "Texas": 27.5}})
    assert built.rows == 3
    assert built.stats(OBESITY).state_means == {"Ohio": 32.0, "Texas": 27.5}


def test_the_engine_fixture_serves_the_tiny_dataset(lestats_engine):
    assert lestats_engine.dataset.states == tiny_dataset().states
    assert lestats_engine.result(lestats_engine.submit("best5", MUSCLE), timeout=5) == {
        "Alaska": 31.0,
        "Texas": 24.0,
        "Wyoming": 22.5,
        "Ohio": 20.0,
    }


def test_leftovers_lists_registered_actors(lestats_probe):
    probe = lestats_probe()
    actors, _ = leftovers(grace=0)
    assert any(probe.ref.actor_urn in actor for actor in actors)
    assert isinstance(probe.ref, pykka.ActorRef)


# --- the pytest plugin, as installed -----------------------------------------------------------

LEAKY = textwrap.dedent(
    """
    from lestats.testing import Probe


    def test_leaks_a_probe():
        Probe()


    def test_stops_its_probe():
        Probe().stop()
    """
)


def run_pytest(tmp_path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(source, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_plugin_fails_a_leaking_test_when_asked_to(tmp_path):
    done = run_pytest(tmp_path, LEAKY, "-o", "lestats_check_leaks=true")
    assert done.returncode == 1, done.stdout
    assert "2 passed, 1 error" in done.stdout
    assert "test leaked actors" in done.stdout
    assert "ERROR at teardown of test_leaks_a_probe" in done.stdout


def test_by_default_the_plugin_fails_nothing_and_stops_leftovers_at_the_end(tmp_path):
    # Without the stop at the end, the leaked probe's thread would keep pytest alive (timeout).
    done = run_pytest(tmp_path, LEAKY)
    assert done.returncode == 0, done.stdout
    assert "2 passed" in done.stdout
    assert "lestats: stopped 1 actor(s) left running by the tests" in done.stdout


def test_the_leak_check_fixture_may_be_asked_for_explicitly(tmp_path):
    source = textwrap.dedent(
        """
        import pytest
        from lestats.testing import Probe

        @pytest.mark.usefixtures("lestats_leak_check")
        def test_leaks_a_probe():
            Probe()
        """
    )
    done = run_pytest(tmp_path, source)
    assert done.returncode == 1, done.stdout
    assert "test leaked actors" in done.stdout


def test_the_plugin_can_be_turned_off(tmp_path):
    done = run_pytest(tmp_path, "def test_uses(lestats_engine):\n    pass\n", "-p", "no:lestats")
    assert done.returncode == 1
    assert "fixture 'lestats_engine' not found" in done.stdout
