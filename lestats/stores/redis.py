"""RedisStore: one job space in Redis, for any number of server processes on any machines.

Each method is one round trip, and each write is one Lua script (`redis_scripts`), so Redis runs
it atomically: ids are allocated, their jobs put in the stream of unfinished jobs and marked
unfinished in one step; a job completes only while it is still unfinished. `accept_many` and
`complete_many` take a whole batch of jobs in that one step: with `appendfsync always`, Redis
fsyncs once per batch instead of once per job, and both processes spend less per job.
Durability is what the Redis server's AOF promises: its reply to a write comes after the write
reached the AOF (`appendfsync always`: after an fsync), so no commit barrier is left to run here.

Ownership: an unfinished job sits in the consumer-group pending list of the node running it.
Each node keeps a heartbeat key that expires after `claim_idle` seconds; `take_over` moves the
pending jobs of nodes whose heartbeat expired to this node. A liveness key rather than an
entry's own idle time (XAUTOCLAIM): a live node's queued jobs may wait longer than any idle time
under a backlog, and must not be stolen for that.

Long-poll across nodes: a finishing node publishes the ids it recorded (one message `NODE ID
ID...` per batch); the store's listener thread hands the ids finished by other nodes to
`notify`, in batches. Every Redis error is a transient
`StorageError`; the client reconnects by itself on the next call.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from lestats import jsonio
from lestats.actors.jobs import MAX_JOB_ID, RUNNING, JobOutcome, JobStatus
from lestats.data.query import Query
from lestats.errors import StorageError, UnknownJob
from lestats.stores import redis_scripts as lua
from lestats.stores.base import NO_RETENTION_LIMIT, Recovered, Retention

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "lestats"
DEFAULT_CLAIM_IDLE = 10.0
"""Seconds after a node's last heartbeat before another node takes over its unfinished jobs."""
SOCKET_TIMEOUT = 5.0
"""Seconds a command may take before Redis counts as away."""
BACKOFF = 0.5
"""Seconds during which calls fail at once after Redis was found away (the actor stays fast)."""
GROUP = "nodes"
PAGE = 10_000
"""Ids a `statuses` script call looks at (it holds Redis about a millisecond per 1,000)."""
TAKE_OVER_BATCH = 1_000
FORGOTTEN_KEPT = 10_000
"""Forgotten ids held for `expire` at most (the oldest go first if nobody asks)."""
RETENTION_STEP = 2
"""Old jobs each completion forgets at most: more than the one it adds, so retention keeps up."""
LAST_JOB_ID = min(MAX_JOB_ID, 10**14)
"""Ids end here in Redis: its Lua writes numbers with 14 significant digits ("%.14g")."""

WRITING = "cannot record the job"
READING = "cannot read the job store"
"""What a `StorageError` says failed: a job not recorded, or a question not answered."""
_STATUS = {b"r": JobStatus.RUNNING, b"d": JobStatus.DONE, b"e": JobStatus.ERROR}
_TRANSIENT_REPLIES = ("OOM", "LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN")


class RedisStore:
    """A `JobStore` in Redis at `url` (`redis://HOST:PORT/DB`), shared by every node that uses it.

    `namespace` separates job spaces in one database. `retention` is applied as jobs finish
    (each completion forgets up to two jobs it no longer keeps), so memory stays bounded without
    a sweep. `fingerprint` names the dataset: the first node stores it, and a node with another
    one is refused at `open`.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        claim_idle: float = DEFAULT_CLAIM_IDLE,
        retention: Retention = NO_RETENTION_LIMIT,
        fingerprint: str | None = None,
        socket_timeout: float = SOCKET_TIMEOUT,
    ) -> None:
        if claim_idle <= 0:
            raise ValueError("claim_idle must be positive")
        self.url = url
        self.namespace = namespace
        self.claim_idle = claim_idle
        self.retention = retention
        self.fingerprint = fingerprint
        self.node = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        """This node's consumer name: new at every start, so a restarted node takes over."""
        # No retries inside the client: a write retried after a lost reply could run twice.
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._where = _describe(url)
        tag = "{" + namespace + "}"
        self._last, self._status, self._data = f"{tag}:last", f"{tag}:status", f"{tag}:data"
        self._jobs, self._by_id, self._by_time = f"{tag}:jobs", f"{tag}:by_id", f"{tag}:by_time"
        self._alive_prefix = f"{tag}:alive:"
        self._fingerprint_key = f"{tag}:fingerprint"
        db = int(self._client.get_connection_kwargs().get("db", 0))
        self.channel = finished_channel(namespace, db)
        self._wake_channel = f"{tag}:wake:{self.node}"
        self._accept = self._client.register_script(lua.ACCEPT)
        self._finish = self._client.register_script(lua.FINISH)
        self._expire = self._client.register_script(lua.EXPIRE)
        self._forget = self._client.register_script(lua.FORGET)
        self._outcome = self._client.register_script(lua.OUTCOME)
        self._statuses = self._client.register_script(lua.STATUSES)
        self._take_over = self._client.register_script(lua.TAKE_OVER)
        self._join = self._client.register_script(lua.JOIN)
        self._mine: set[int] = set()
        """Unfinished jobs this node accepted or took over: answered `running` without Redis."""
        self._mine_lock = threading.Lock()
        self._forgotten: collections.deque[int] = collections.deque(maxlen=FORGOTTEN_KEPT)
        """Ids that completions forgot by retention, for the next `expire` to report."""
        self._orphans_possible = False
        self._away_until = 0.0
        self._listener: _Listener | None = None
        self._closed = False

    # --- life cycle ------------------------------------------------------------------------------

    def open(self, notify: Callable[[Sequence[int]], None] | None = None) -> Recovered:
        """Join the job space: check the dataset, start the heartbeat; dead nodes' jobs to run.

        Raises:
            StorageError: Redis is away (transient), or this node's data differs from the job
                space's (not transient).
        """
        if self.fingerprint is not None:
            theirs = self._call(self._join, [self._fingerprint_key], [self.fingerprint])
            if theirs.decode() != self.fingerprint:
                raise StorageError(
                    f"this node's data has fingerprint {self.fingerprint}, but the job space "
                    f"{self.namespace!r} at {self._where} serves data with fingerprint "
                    f"{theirs.decode()}: refusing to join"
                )
        try:
            self._command(self._client.xgroup_create, self._jobs, GROUP, id="0", mkstream=True)
        except StorageError as exc:
            if "BUSYGROUP" not in exc.problem:
                raise
        self._check_last_id()
        self._warn_if_not_durable()
        self._heartbeat()
        # what an earlier, looser retention kept
        self._forgotten.extend(self._expire_in_redis(self.retention))
        self._listener = _Listener(self, notify)
        self._listener.start()
        return Recovered(self.take_over())

    def close(self) -> None:
        """Stop the listener; drop the heartbeat so others take over what is left at once."""
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.stop(self._wake_listener)
        try:
            self._client.delete(self._alive_prefix + self.node)
        except redis.exceptions.RedisError as exc:
            log.warning("could not drop this node's heartbeat (%s); others wait for it", exc)
        self._client.close()

    # --- jobs ------------------------------------------------------------------------------------

    def accept(self, query: Query) -> int:
        """Allocate the next id and record the job, unfinished and this node's, in one step."""
        return self.accept_many((query,))[0]

    def accept_many(self, queries: Sequence[Query]) -> list[int]:
        """Record every job in one step (one script call, one round trip); their ids, in order.

        The ids are consecutive. Either all the jobs are recorded or, when it raises, none.
        """
        if not queries:
            return []
        bodies = [jsonio.dumps(query.to_json()) for query in queries]
        try:
            first = int(
                self._call(
                    self._accept,
                    [self._last, self._status, self._jobs],
                    [GROUP, self.node, LAST_JOB_ID, *bodies],
                )
            )
        except StorageError as exc:
            if exc.transient:
                # The reply may have been lost after Redis ran the script: look for such jobs
                # in this node's pending list at the next `take_over`.
                self._orphans_possible = True
            raise
        job_ids = list(range(first, first + len(queries)))
        with self._mine_lock:
            self._mine.update(job_ids)
        return job_ids

    def commit_barrier(self) -> None:
        """None: Redis replied to `accept` only once the job was in its AOF."""

    def complete(self, job_id: int, result: bytes) -> bool:
        """Record the result and the job done, if it is still unfinished (whoever ran it)."""
        return self.complete_many(((job_id, JobOutcome(JobStatus.DONE, result)),))[0]

    def fail(self, job_id: int, reason: str) -> bool:
        """Record the job in error for `reason`, if it is still unfinished."""
        return self.complete_many(((job_id, JobOutcome(JobStatus.ERROR, reason=reason)),))[0]

    def complete_many(self, finished: Sequence[tuple[int, JobOutcome]]) -> list[bool]:
        """Record finished jobs (done or error) in one step; for each, whether it was unfinished.

        One script call: the results, one announcement of all the ids for the other nodes'
        waiters, and the retention's forgetting (up to two old jobs per job recorded).
        """
        if not finished:
            return []
        keep, age = _retention_args(self.retention)
        args: list[Any] = [GROUP, self.channel, self.node, keep, age, RETENTION_STEP]
        for job_id, outcome in finished:
            if outcome.status is JobStatus.DONE:
                args += (job_id, b"d", outcome.result or b"")
            else:
                args += (job_id, b"e", (outcome.reason or "").encode())
        flags, *forgotten = self._call(
            self._finish,
            [self._status, self._data, self._jobs, self._by_id, self._by_time, self._last],
            args,
        )
        with self._mine_lock:
            self._mine.difference_update(job_id for job_id, _ in finished)
        self._forgotten.extend(forgotten)
        return [flag == ord("1") for flag in flags]

    # --- queries ---------------------------------------------------------------------------------

    def outcome(self, job_id: int) -> JobOutcome:
        """The job's status, with its result or reason; an issued id not kept is `expired`."""
        with self._mine_lock:
            if job_id in self._mine:
                return RUNNING
        status, data, last = self._call(
            self._outcome, [self._status, self._data, self._last], [job_id], doing=READING
        )
        if status == b"r":
            return RUNNING
        if status == b"d":
            if data is None or not _is_json(data):
                reason = f"the stored result of job {job_id} is not JSON"
                return JobOutcome(JobStatus.ERROR, reason=reason)
            return JobOutcome(JobStatus.DONE, bytes(data))
        if status == b"e":
            return JobOutcome(JobStatus.ERROR, reason=(data or b"").decode(errors="replace"))
        if 1 <= job_id <= int(last):
            return JobOutcome(JobStatus.ERROR, reason="expired")
        raise UnknownJob(job_id)

    def statuses(self, after: int = 0, limit: int | None = None) -> list[tuple[int, JobStatus]]:
        """Issued, not forgotten ids above `after`, in order, at most `limit`, with statuses."""
        answer: list[tuple[int, JobStatus]] = []
        keys = [self._status, self._last, self._by_id, self._jobs]
        while limit is None or len(answer) < limit:
            wanted = PAGE if limit is None else min(PAGE, limit - len(answer))
            last, after, codes, *ids = self._call(
                self._statuses, keys, [after, wanted, PAGE], doing=READING
            )
            status = _STATUS
            answer.extend(
                (job_id, status[bytes((code,))]) for job_id, code in zip(ids, codes, strict=True)
            )
            if after >= last:
                break
        return answer

    def last_id(self) -> int:
        """The highest id issued in the job space (0 when none)."""
        return int(self._command(self._client.get, self._last, doing=READING) or 0)

    def unfinished_count(self) -> int:
        """Unfinished jobs in the whole job space: the entries left in the stream."""
        return int(self._command(self._client.xlen, self._jobs, doing=READING))

    def take_over(self) -> tuple[tuple[int, Query], ...]:
        """The unfinished jobs of nodes whose heartbeat expired, now this node's."""
        taken = self._call(
            self._take_over,
            [self._jobs, self._status],
            [GROUP, self.node, self._alive_prefix, TAKE_OVER_BATCH],
        )
        jobs = self._readable(zip(taken[::2], taken[1::2], strict=True))
        if self._orphans_possible:
            jobs += self._adopt_orphans()
        if jobs:
            log.warning("took over %d unfinished jobs of nodes that stopped", len(jobs))
        return tuple(jobs)

    def _adopt_orphans(self) -> list[tuple[int, Query]]:
        """Jobs recorded for this node whose `accept` reply never came back: run them too."""
        self._orphans_possible = False
        pending = self._command(
            self._client.xpending_range, self._jobs, GROUP, "-", "+", 1 << 20, self.node
        )
        with self._mine_lock:
            lost = [
                entry["message_id"]
                for entry in pending
                if int(entry["message_id"].split(b"-")[0]) not in self._mine
            ]
        found: list[tuple[bytes, bytes]] = []
        for entry_id in lost:
            for _, fields in self._command(self._client.xrange, self._jobs, entry_id, entry_id):
                found.append((entry_id.split(b"-")[0], fields[b"q"]))
        return self._readable(found)

    def _readable(self, entries: Any) -> list[tuple[int, Query]]:  # noqa: ANN401 - Redis replies
        """Parse taken-over entries; a record that is no query is failed, not run."""
        jobs: list[tuple[int, Query]] = []
        for raw_id, body in entries:
            job_id = int(raw_id)
            try:
                query = Query.from_json(jsonio.loads(body))
            except ValueError:
                log.warning("job %d has an unreadable record in Redis; failed", job_id)
                self.fail(job_id, "its record in the job store is unreadable")
                continue
            with self._mine_lock:
                self._mine.add(job_id)
            jobs.append((job_id, query))
        return jobs

    def forget(self, job_id: int) -> bool:
        """Drop a finished job's result and status; it then answers `expired`."""
        keys = [self._status, self._data, self._by_id, self._by_time]
        return bool(self._call(self._forget, keys, [job_id]))

    def expire(self, retention: Retention) -> list[int]:
        """Forget the finished jobs that `retention` no longer keeps; their ids.

        With this store's own retention, that work was done as jobs finished: the ids it forgot
        since the last call, without a round trip. Another retention is applied here.
        """
        forgotten = list(self._forgotten)
        self._forgotten.clear()
        if retention != self.retention:
            forgotten += self._expire_in_redis(retention)
        return forgotten

    def _expire_in_redis(self, retention: Retention) -> list[int]:
        keep, age = _retention_args(retention)
        if keep == "" and age == "":
            return []
        keys = [self._status, self._data, self._by_id, self._by_time, self._last]
        forgotten: list[int] = []
        while True:
            gone = self._call(self._expire, keys, [keep, age, TAKE_OVER_BATCH])
            forgotten += gone
            if len(gone) < TAKE_OVER_BATCH:
                return forgotten

    # --- plumbing --------------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Say this node is alive for `claim_idle` more seconds."""
        self._command(
            self._client.set,
            self._alive_prefix + self.node,
            b"1",
            px=max(1, int(self.claim_idle * 1000)),
        )

    def _check_last_id(self) -> None:
        """Refuse a job space whose id counter is not an id (guarantee 6: nothing trusted)."""
        raw = self._command(self._client.get, self._last)
        try:
            last = int(raw or 0)
        except ValueError:
            last = -1
        if not 0 <= last < LAST_JOB_ID:
            raise StorageError(f"the job id counter {self._last} in {self._where} holds {raw!r}")

    def _warn_if_not_durable(self) -> None:
        try:
            config = self._client.config_get("appendonly")
        except redis.exceptions.RedisError:
            return  # CONFIG may be disabled on a managed Redis: nothing to check with
        if config.get("appendonly") != "yes":
            log.warning(
                "Redis at %s runs without appendonly: accepted jobs do not survive its restart",
                self._where,
            )

    def _call(
        self, script: Any, keys: list[str], args: list[Any], *, doing: str = WRITING  # noqa: ANN401
    ) -> Any:  # noqa: ANN401
        return self._command(script, keys=keys, args=args, doing=doing)

    def _command(
        self,
        function: Callable[..., Any],
        *args: Any,  # noqa: ANN401
        doing: str = WRITING,
        **kwargs: Any,  # noqa: ANN401
    ) -> Any:  # noqa: ANN401
        """Run one Redis command; any trouble is a `StorageError` (transient if it may pass)."""
        where = f"the job store (Redis at {self._where})"
        if time.monotonic() < self._away_until:
            raise StorageError(f"{where} is unreachable", transient=True, doing=doing)
        try:
            return function(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self._away_until = time.monotonic() + BACKOFF
            raise StorageError(
                f"{where} is unreachable ({exc})", transient=True, doing=doing
            ) from exc
        except redis.exceptions.ResponseError as exc:
            transient = str(exc).startswith(_TRANSIENT_REPLIES)
            raise StorageError(f"{where} refused: {exc}", transient=transient, doing=doing) from exc
        except redis.exceptions.RedisError as exc:
            raise StorageError(f"{where} failed: {exc}", doing=doing) from exc

    def _wake_listener(self) -> None:
        """Wake the listener from its wait for messages (so that `close` is quick)."""
        try:
            self._client.publish(self._wake_channel, b"")
        except redis.exceptions.RedisError:
            log.debug("cannot wake the listener; it stops at its next heartbeat", exc_info=True)

    def _finished_elsewhere(self, job_ids: Sequence[int]) -> None:
        """Jobs another node finished are not this node's to answer `running` for any more."""
        with self._mine_lock:
            self._mine.difference_update(job_ids)


class _Listener:
    """The store's own daemon thread: heartbeats, and ids finished by other nodes to `notify`."""

    def __init__(
        self, store: RedisStore, notify: Callable[[Sequence[int]], None] | None
    ) -> None:
        self._store = store
        self._notify = notify
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"RedisStore-{store.node}", daemon=True
        )
        self._pubsub: Any = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, wake: Callable[[], None]) -> None:
        self._stop.set()
        wake()
        self._thread.join()

    def _run(self) -> None:
        interval = self._store.claim_idle / 3
        next_beat = time.monotonic() + interval
        away = False
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_beat:
                    self._store._heartbeat()  # noqa: SLF001 - the store's own thread
                    next_beat = time.monotonic() + interval
                self._listen(min(interval, max(0.0, next_beat - time.monotonic())))
            except (StorageError, redis.exceptions.RedisError, OSError) as exc:
                self._drop_subscription()
                if not away:
                    log.warning("Redis listener: %s; retrying", exc)
                    away = True
                self._stop.wait(BACKOFF)
            else:
                if away:
                    log.info("Redis listener: connected again")
                    away = False
        self._drop_subscription()

    def _listen(self, timeout: float) -> None:
        """Wait up to `timeout` for finished ids; hand over every one that arrived meanwhile."""
        if self._pubsub is None:
            client = self._store._client  # noqa: SLF001 - the store's own thread
            self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            self._pubsub.subscribe(self._store.channel, self._store._wake_channel)  # noqa: SLF001
        ids: list[int] = []
        own = self._store.node.encode()
        message = self._pubsub.get_message(timeout=timeout)
        while message is not None:
            words = message["data"].split()  # `NODE ID ID...`; the wake-up call is empty
            if words and words[0] != own:
                ids.extend(_job_ids(words[1:]))
            message = self._pubsub.get_message(timeout=0.0)
        if ids:
            self._store._finished_elsewhere(ids)  # noqa: SLF001
            if self._notify is not None:
                try:
                    self._notify(ids)
                except Exception:
                    log.exception("notify of finished jobs failed")

    def _drop_subscription(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except (redis.exceptions.RedisError, OSError):
                log.debug("closing the subscription failed", exc_info=True)
            self._pubsub = None


def finished_channel(namespace: str, db: int) -> str:
    """Where the nodes of job space `namespace` in database `db` announce finished jobs.

    The database is in the name because pub/sub channels are not per database.
    """
    return "{" + namespace + "}" + f":finished:{db}"


def _job_ids(words: list[bytes]) -> list[int]:
    """The ids an announcement of finished jobs lists; a garbled one is logged and skipped."""
    try:
        return [int(word) for word in words]
    except ValueError:
        log.warning("ignored an announcement of finished jobs that lists no ids: %r", words)
        return []


def _retention_args(retention: Retention) -> tuple[str | int, str | int]:
    keep = "" if retention.keep_last is None else retention.keep_last
    age = "" if retention.max_age is None else max(0, int(retention.max_age * 1000))
    return keep, age


def _is_json(data: bytes) -> bool:
    """Whether `data` is a JSON document (results are checked before being served as JSON)."""
    try:
        jsonio.loads(data)
    except ValueError:
        return False
    return True


def _describe(url: str) -> str:
    """`HOST:PORT/DB` of a Redis URL, without any password it holds."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"
