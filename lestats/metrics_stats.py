"""The numbers behind `/metrics`, kept where the events happen for the price of an addition.

Why not the prometheus-client objects themselves on the job path: each of their updates takes a
lock (and, in its multiprocess mode, writes a memory-mapped file), in the event loop for every
request and in the ResultStore for every job. Here each counter is a plain integer and each
histogram a list of bucket counts, written by one thread only (the ResultStore's, the
JournalCommitter's, the event loop's) and read by the scrape, which turns them into the
Prometheus text format (`lestats.metrics`). Under the GIL a read of an integer or a list copy
is atomic; a scrape may see a job counted as accepted and not yet in the queue histogram, and
the next scrape agrees again. Dictionaries read by the scrape never change size after they
are made (one entry per statistic, made up front), so copying them is safe too.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from lestats.errors import LeStatsError, Overloaded, ShuttingDown, StorageError

if TYPE_CHECKING:
    from collections.abc import Iterable

SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram bounds for durations, in seconds (a job takes from 100 us to seconds)."""
BATCH_SIZES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
"""Histogram bounds for the number of jobs one journal commit makes durable."""


class Buckets:
    """A histogram: counts per bucket (the last one is +Inf) and the sum of what was observed."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = SECONDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one value (in its bucket: the first bound it does not exceed)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> HistogramValue:
        """The counts and sum now."""
        return HistogramValue(self.bounds, tuple(self.counts), self.total)


@dataclass(frozen=True, slots=True)
class HistogramValue:
    """A histogram as read at one moment: per-bucket (not cumulative) counts, and the sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    def __add__(self, other: HistogramValue) -> HistogramValue:
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return HistogramValue(self.bounds, counts, self.total + other.total)


class JobStats:
    """What the ResultStore counts of jobs, by statistic; written in its thread only.

    Queue time runs from acceptance (the store recorded the job) to the Worker's start, run
    time is the Worker's computation, end-to-end from acceptance to the result recorded. A job
    recovered at start (accepted by an earlier run) counts as done or failed, but in no timing.
    """

    def __init__(self, statistics: Iterable[str]) -> None:
        names = tuple(statistics)
        self.accepted = dict.fromkeys(names, 0)
        self.done = dict.fromkeys(names, 0)
        self.failed = dict.fromkeys(names, 0)
        self.queue = {name: Buckets() for name in names}
        self.run = {name: Buckets() for name in names}
        self.end_to_end = {name: Buckets() for name in names}
        self.commit_seconds = Buckets()
        """Written by the JournalCommitter: how long each commit barrier (an fdatasync) took."""
        self.commit_batch = Buckets(BATCH_SIZES)
        """Written by the JournalCommitter: how many jobs each commit made durable."""
        self._accepted_at: dict[int, float] = {}

    def job_accepted(self, job_id: int, statistic: str) -> None:
        """A job was recorded: count it, note when."""
        if statistic in self.accepted:
            self.accepted[statistic] += 1
            self._accepted_at[job_id] = time.monotonic()

    def job_finished(
        self, job_id: int, statistic: str, *, ok: bool, started: float, ended: float
    ) -> None:
        """A job's end was recorded; `started` and `ended` are the Worker's stamps (0: none)."""
        if statistic not in self.done:
            return
        (self.done if ok else self.failed)[statistic] += 1
        accepted = self._accepted_at.pop(job_id, None)
        if accepted is None:
            return
        self.end_to_end[statistic].observe(time.monotonic() - accepted)
        if started:
            self.queue[statistic].observe(max(0.0, started - accepted))
            self.run[statistic].observe(max(0.0, ended - started))

    def commit(self, seconds: float, jobs: int) -> None:
        """One journal commit (group commit) took `seconds` for `jobs` jobs."""
        self.commit_seconds.observe(seconds)
        self.commit_batch.observe(jobs)


class HttpStats:
    """What the HTTP middleware counts; written by the event loop only.

    Requests by (method, route, status) and their latency by (method, route); 503 answers by
    why. Routes are the router's patterns (`/api/get_results/{job_id}`), or `unmatched`, so the
    number of series stays bounded whatever clients send. One dictionary lookup per request.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.refused: dict[str, int] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        stats = self.routes.get((method, route))
        if stats is None:
            stats = self.routes[(method, route)] = RouteStats()
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        stats.latency.observe(seconds)

    def refusal(self, reason: str) -> None:
        """Count one 503 answer, by its reason."""
        self.refused[reason] = self.refused.get(reason, 0) + 1


class RouteStats:
    """One (method, route)'s requests by status, and their latency."""

    __slots__ = ("latency", "statuses")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.latency = Buckets()


HTTP_STATS = web.AppKey("http_stats", HttpStats)
"""The application's request counts, when metrics are on (`lestats.metrics.install`)."""
FAILURE = web.RequestKey("failure", LeStatsError)
"""The package error a request was answered with, if any (why a 503 was sent)."""
_METHODS = frozenset({"GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
REFUSALS = {ShuttingDown: "shutting_down", Overloaded: "overloaded", StorageError: "storage"}
"""The reason label of a 503, by the error that caused it."""


def observe_request(request: web.Request, status: int, seconds: float) -> None:
    """Count an answered request in its application's `HttpStats`, if metrics are on."""
    stats = request.app.get(HTTP_STATS)
    if stats is None:
        return
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in _METHODS else "other"
    stats.observe(method, route, status, seconds)
    if status == 503:  # noqa: PLR2004
        failure = request.get(FAILURE)
        stats.refusal(REFUSALS.get(type(failure), "other") if failure else "other")
