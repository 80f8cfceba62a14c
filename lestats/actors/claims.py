"""Which jobs a Worker has started and which were cancelled before it could: one shared record.

A queued job can be cancelled; a running one cannot. Only the Worker knows when a job starts and
only the ResultStore when it finishes, so both consult this small thread-safe record: the Worker
`start`s a job (False: it was cancelled, skip it), the store `cancel`s one (False: it started),
and the store drops a finished job with `finished`. It holds at most the running jobs and the
cancelled ones not yet skipped.
"""

from __future__ import annotations

import threading


class JobClaims:
    """Started and cancelled job ids, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: set[int] = set()
        self._cancelled: set[int] = set()

    def start(self, job_id: int) -> bool:
        """Claim a job for running; False if it was cancelled (the Worker skips it)."""
        with self._lock:
            if job_id in self._cancelled:
                self._cancelled.discard(job_id)
                return False
            self._started.add(job_id)
            return True

    def cancel(self, job_id: int) -> bool:
        """Cancel a job not yet started; False if a Worker already started it."""
        with self._lock:
            if job_id in self._started:
                return False
            self._cancelled.add(job_id)
            return True

    def uncancel(self, job_id: int) -> None:
        """Undo a `cancel` that could not be recorded: the job runs after all."""
        with self._lock:
            self._cancelled.discard(job_id)

    def finished(self, job_id: int) -> None:
        """Forget a job that finished."""
        with self._lock:
            self._started.discard(job_id)
