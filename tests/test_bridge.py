"""The event loop's side of the engine: `LoopInbox` (calls and replies from actor threads, run in
the loop's thread, many per wake-up) and `FinishedOutcomes` (the loop's bounded copy of finished
jobs). Each test drives its own loop, so that nothing runs in it before the test says so."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from concurrent.futures import Future

import pytest

from lestats.actors.bridge import _ENTRY_OVERHEAD, FinishedOutcomes, LoopInbox
from lestats.actors.jobs import JobOutcome, JobStatus

WAIT = 5.0


def in_thread(function) -> int:
    """Run `function()` in a new thread and wait for it; re-raise what it raised; its ident."""
    errors: list[BaseException] = []
    ident: list[int] = []

    def run() -> None:
        ident.append(threading.get_ident())
        try:
            function()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    return ident[0]


class WakeUps:
    """Counts the loop's `call_soon_threadsafe` calls (its wake-ups from other threads)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = self._spy  # type: ignore[method-assign]

    def _spy(self, *args, **kwargs):
        with self._lock:
            self.count += 1
        return self._real(*args, **kwargs)


@pytest.fixture
def fresh_loop():
    """A new event loop, not running; the test runs it; closed (if not yet) at teardown."""
    loop = asyncio.new_event_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    loop.errors = errors  # what reached the loop's exception handler
    yield loop
    if not loop.is_closed():
        loop.close()


def run_queued(loop: asyncio.AbstractEventLoop, inbox: LoopInbox) -> None:
    """Run `loop` until every call queued on `inbox` before now has run (calls run in order)."""
    marker = loop.create_future()
    inbox.call(marker.set_result, None)
    loop.run_until_complete(asyncio.wait_for(marker, WAIT))


# --- LoopInbox -----------------------------------------------------------------------------------


def test_calls_from_a_thread_run_in_the_loop_thread_in_order_after_one_wake_up(fresh_loop):
    wake_ups = WakeUps(fresh_loop)
    inbox = LoopInbox(fresh_loop)
    ran: list[tuple[int, int]] = []
    done = fresh_loop.create_future()

    def calls() -> None:
        for n in range(100):
            inbox.call(lambda number: ran.append((number, threading.get_ident())), n)
        inbox.call(done.set_result, "last")

    caller = in_thread(calls)
    assert ran == []  # nothing runs in the calling thread
    assert wake_ups.count == 1  # 101 calls before the loop ran: one wake-up
    assert fresh_loop.run_until_complete(asyncio.wait_for(done, WAIT)) == "last"
    assert [number for number, _ in ran] == list(range(100))
    assert {ident for _, ident in ran} == {threading.get_ident()}  # the loop's thread
    assert caller != threading.get_ident()
    # Once the batch ran, the next call wakes the loop again.
    in_thread(lambda: inbox.call(ran.append, ("again", 0)))
    assert wake_ups.count == 2
    run_queued(fresh_loop, inbox)
    assert ran[-1] == ("again", 0)
    assert fresh_loop.errors == []


def test_a_call_made_by_a_running_call_is_run_too(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    ran: list[str] = []
    done = fresh_loop.create_future()

    def first(_: object) -> None:
        ran.append("first")
        inbox.call(second, None)  # queued while the inbox runs its batch

    def second(_: object) -> None:
        ran.append("second")
        done.set_result(None)

    in_thread(lambda: inbox.call(first, None))
    fresh_loop.run_until_complete(asyncio.wait_for(done, WAIT))
    assert ran == ["first", "second"]


def test_awaitable_settles_with_the_replys_result_or_exception_set_from_a_thread(fresh_loop):
    wake_ups = WakeUps(fresh_loop)
    inbox = LoopInbox(fresh_loop)
    ok, bad, early = Future(), Future(), Future()
    early.set_result("before")  # settled before its awaitable was even made

    async def main() -> None:
        waiters = inbox.awaitable(ok), inbox.awaitable(bad), inbox.awaitable(early)
        assert all(isinstance(waiter, asyncio.Future) for waiter in waiters)
        assert all(waiter.get_loop() is fresh_loop for waiter in waiters)
        assert not any(waiter.done() for waiter in waiters)  # `early` too: settled in the loop
        in_thread(lambda: (ok.set_result(7), bad.set_exception(ValueError("refused"))))
        assert await asyncio.wait_for(waiters[0], WAIT) == 7
        with pytest.raises(ValueError, match="refused"):
            await asyncio.wait_for(waiters[1], WAIT)
        assert await asyncio.wait_for(waiters[2], WAIT) == "before"

    fresh_loop.run_until_complete(main())
    # Three replies settled while the loop was busy: one wake-up between them.
    assert wake_ups.count == 1
    assert fresh_loop.errors == []


def test_a_cancelled_awaitable_ignores_its_reply_and_the_batch_goes_on(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    given_up, other = Future(), Future()

    async def main() -> None:
        waiter = inbox.awaitable(given_up)
        after = inbox.awaitable(other)
        waiter.cancel()
        # Both replies settle in one batch; the cancelled waiter must not stop the other.
        in_thread(lambda: (given_up.set_result(1), other.set_result(2)))
        assert await asyncio.wait_for(after, WAIT) == 2
        assert waiter.cancelled()
        failed = Future()
        late = inbox.awaitable(failed)
        late.cancel()
        in_thread(lambda: failed.set_exception(ValueError("nobody listens")))
        run_marker = fresh_loop.create_future()
        inbox.call(run_marker.set_result, None)
        await asyncio.wait_for(run_marker, WAIT)
        assert late.cancelled()

    fresh_loop.run_until_complete(main())
    assert fresh_loop.errors == []  # no InvalidStateError, no "exception never retrieved"
    assert given_up.result() == 1  # the reply itself was not cancelled


def test_call_on_a_closed_loop_raises_and_a_reply_settled_later_is_dropped_quietly(
    fresh_loop, caplog
):
    inbox = LoopInbox(fresh_loop)
    reply = Future()
    waiter = inbox.awaitable(reply)
    fresh_loop.close()
    with pytest.raises(RuntimeError):
        inbox.call(print, "never")
    with pytest.raises(RuntimeError):  # again: not left believing a wake-up is on its way
        inbox.call(print, "never either")
    seen: list[Future] = []
    reply.add_done_callback(seen.append)  # runs after the inbox's own callback
    with caplog.at_level(logging.DEBUG, logger="concurrent.futures"):
        in_thread(lambda: reply.set_result("too late"))
    assert seen == [reply]
    assert not waiter.done()
    # The settling thread's callback did not raise (concurrent.futures would log it).
    assert [r for r in caplog.records if r.name == "concurrent.futures"] == []


# --- FinishedOutcomes ----------------------------------------------------------------------------


def done(job_id: int, size: int = _ENTRY_OVERHEAD + 10) -> JobOutcome:
    """A done outcome that the copy charges `size` bytes for."""
    result = b"%d" % job_id
    return JobOutcome(JobStatus.DONE, result + b" " * (size - _ENTRY_OVERHEAD - len(result)))


def kept(outcomes: FinishedOutcomes, job_ids) -> list[int]:
    return [job_id for job_id in job_ids if outcomes.get(job_id) is not None]


def test_a_batch_pushed_from_a_thread_is_read_in_the_loop(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    outcomes = FinishedOutcomes(inbox, 1 << 20)
    ok = JobOutcome(JobStatus.DONE, b'{"global_mean": 29.5}')
    failed = JobOutcome(JobStatus.ERROR, reason="ValueError: no")
    in_thread(lambda: outcomes.push(((1, ok), (2, failed))))
    assert outcomes.get(1) is None  # applied in the loop's thread, not the pusher's
    run_queued(fresh_loop, inbox)
    assert outcomes.get(1) == ok
    assert outcomes.get(2) == failed
    assert outcomes.get(3) is None
    in_thread(lambda: outcomes.push(((3, ok),)))
    run_queued(fresh_loop, inbox)
    assert [outcomes.get(job_id) for job_id in (1, 2, 3)] == [ok, failed, ok]


def test_the_copy_is_bounded_in_bytes_and_the_oldest_go_first(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    entry = 500
    outcomes = FinishedOutcomes(inbox, 16 * entry)
    outcomes.push(tuple((job_id, done(job_id, entry)) for job_id in range(1, 17)))
    run_queued(fresh_loop, inbox)
    assert kept(outcomes, range(1, 17)) == list(range(1, 17))  # exactly full: nothing goes
    outcomes.push(tuple((job_id, done(job_id, entry)) for job_id in range(17, 21)))
    run_queued(fresh_loop, inbox)
    assert kept(outcomes, range(1, 21)) == list(range(5, 21))
    assert outcomes.get(20) == done(20, entry)
    # Bytes, not entries: one entry of twice the size pushes out two.
    outcomes.push(((21, done(21, 2 * entry)),))
    run_queued(fresh_loop, inbox)
    assert kept(outcomes, range(1, 22)) == list(range(7, 22))


def test_an_outcome_larger_than_an_eighth_of_the_copy_is_not_kept(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    limit = 8000
    outcomes = FinishedOutcomes(inbox, limit)
    small = tuple((job_id, done(job_id, 500)) for job_id in range(1, 17))  # fills it exactly
    long_reason = JobOutcome(JobStatus.ERROR, reason="r" * (limit // 8 - _ENTRY_OVERHEAD + 1))
    outcomes.push(small)
    outcomes.push(((100, done(100, limit // 8 + 1)), (101, long_reason)))
    run_queued(fresh_loop, inbox)
    assert outcomes.get(100) is None
    assert outcomes.get(101) is None
    assert kept(outcomes, range(1, 17)) == list(range(1, 17))  # nothing evicted for them
    outcomes.push(((102, done(102, limit // 8)),))  # exactly an eighth is kept
    run_queued(fresh_loop, inbox)
    assert outcomes.get(102) == done(102, limit // 8)
    nothing = FinishedOutcomes(inbox, 0)  # cache_bytes=0: keeps nothing at all
    nothing.push(((1, done(1)),))
    run_queued(fresh_loop, inbox)
    assert nothing.get(1) is None


def test_a_job_pushed_twice_is_kept_once_and_counted_once(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    entry = 500
    outcomes = FinishedOutcomes(inbox, 16 * entry)
    first = tuple((job_id, done(job_id, entry)) for job_id in range(1, 17))
    outcomes.push(first)  # full
    outcomes.push(
        tuple((job_id, JobOutcome(JobStatus.ERROR, reason="dup")) for job_id in range(1, 17))
    )
    run_queued(fresh_loop, inbox)
    # Counted twice, the copy would think itself twice over its bound and drop half of it.
    assert [outcomes.get(job_id) for job_id in range(1, 17)] == [outcome for _, outcome in first]
    outcomes.push(((17, done(17, entry)),))
    run_queued(fresh_loop, inbox)
    assert kept(outcomes, range(1, 18)) == list(range(2, 18))  # exactly one made room


def test_push_on_a_closed_loop_raises_runtime_error(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    outcomes = FinishedOutcomes(inbox, 1 << 20)
    fresh_loop.close()
    # The ResultStore drops a subscriber whose push raises RuntimeError.
    with pytest.raises(RuntimeError):
        in_thread(lambda: outcomes.push(((1, done(1)),)))


def test_a_loop_closed_with_a_wake_up_pending_refuses_the_next_calls(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    ran: list[int] = []
    in_thread(lambda: inbox.call(ran.append, 1))  # wake-up scheduled, never run
    fresh_loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        inbox.call(ran.append, 2)
    assert inbox._calls == collections.deque()  # nothing kept for a loop that will never run
    assert ran == []


def test_a_failing_call_is_reported_and_the_rest_of_its_batch_still_runs(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    ran: list[int] = []

    def fail(_: object) -> None:
        raise ValueError("boom")

    def queue() -> None:
        inbox.call(ran.append, 1)
        inbox.call(fail, None)
        inbox.call(ran.append, 2)

    in_thread(queue)
    run_queued(fresh_loop, inbox)
    assert ran == [1, 2]
    assert [type(error.get("exception")) for error in fresh_loop.errors] == [ValueError]


def test_a_cancelled_reply_cancels_its_awaitable(fresh_loop):
    inbox = LoopInbox(fresh_loop)
    reply: Future[int] = Future()
    waiter = inbox.awaitable(reply)
    in_thread(reply.cancel)
    run_queued(fresh_loop, inbox)
    assert waiter.cancelled()
    assert fresh_loop.errors == []
