"""Pre-fork: N server processes on one port, each its own actor system, one shared job space.

The parent loads the dataset once, then forks the children (they share its pages copy-on-write;
the parent freezes them for the collector first, so that no child's collection dirties them).
Each child binds its own listening socket to the same port with `SO_REUSEPORT`: the kernel
spreads connections over the children's sockets, where a single inherited socket would let
whichever loop wakes first take a whole batch of new connections. The parent keeps the port
bound (not listening, so no connection ever waits on it) for its children's whole life, which
also turns `--port 0` into one port shared by all.

The parent runs no thread and no event loop: it waits for its children. SIGTERM, SIGINT or
SIGHUP to it is passed on (as SIGTERM) to every child, each of which drains as a single server
does; the parent exits 0 once all exited 0. A child stopped on its own (`graceful_shutdown`
reaching it, or a SIGTERM sent to it) drains and is not replaced. A child that dies otherwise
(SIGKILL, a crash) is replaced; its unfinished jobs are taken over through the shared store. A
parent that dies of a SIGKILL takes its children along: each gets SIGTERM and drains. A
child that fails before it serves stops the whole start: the cause (Redis away, another
dataset) is the same for every child.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""What the parent passes on as SIGTERM: each drains every child (as each drains one server)."""
START_TIMEOUT = 120.0
"""Seconds every child gets to start serving (its store opened, its actors started)."""
RESPAWN_PAUSE = 1.0
"""Seconds between two replacements of children that keep dying, so that a crash loop is slow."""
NOT_SHARED = (
    "--processes needs a store shared by the processes: give --store redis://HOST:PORT/DB "
    "(the file store is one directory with one writer)"
)


@dataclass(frozen=True, slots=True)
class ChildSetup:
    """What a child is handed: which one it is, its listening socket, how to say it serves."""

    index: int
    """1 to N; a replacement keeps the index of the child it replaces."""
    sock: socket.socket
    announce: Callable[[str], None]
    """Call once serving (with the URL); the parent waits for every child's call."""


def listening_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A socket listening on `host:port` with `SO_REUSEPORT`, one of the children's group."""
    sock = _port_holder(host, port)
    try:
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _port_holder(host: str, port: int) -> socket.socket:
    """A bound, never listening socket with `SO_REUSEPORT`: keeps (and resolves) the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Supervisor:
    """Forks `processes` children running `child(setup) -> exit code`; see the module docstring."""

    def __init__(
        self,
        processes: int,
        host: str,
        port: int,
        child: Callable[[ChildSetup], int],
    ) -> None:
        self.processes = processes
        self.host = host
        self._child = child
        self._holder = _port_holder(host, port)
        self.port: int = self._holder.getsockname()[1]
        self._children: dict[int, int] = {}
        """pid -> index of the live children."""
        self._stopping = False
        self._last_respawn = 0.0

    @property
    def url(self) -> str:
        """Where the children serve."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> int:
        """Start the children, wait for all to serve, supervise until a signal; the exit code."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            gc.collect()
            gc.freeze()  # the dataset, loaded once: children share its pages copy-on-write
            ready_read, ready_write = os.pipe()
            for index in range(1, self.processes + 1):
                self._spawn(index, ready_write)
            os.close(ready_write)
            if not self._wait_ready(ready_read):
                self._stop_all()
                self._reap_all()
                return 2
            os.close(ready_read)
            sys.stdout.write(
                f"Le Stats Sportif serving on {self.url} with {self.processes} processes "
                "(Ctrl+C drains and stops them all)\n"
            )
            sys.stdout.flush()
            return self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._holder.close()

    def _spawn(self, index: int, ready_write: int | None) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the parent's code
            code = 1
            try:
                for signum in STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                _drain_when_orphaned(parent)
                self._holder.close()
                sock = listening_socket(self.host, self.port)
                code = self._child(ChildSetup(index, sock, _announcer(ready_write)))
            except BaseException:
                log.exception("server process %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self._children[pid] = index

    def _wait_ready(self, ready_read: int) -> bool:
        """Whether every child announced it serves before the deadline (or one failed)."""
        deadline = time.monotonic() + START_TIMEOUT
        announced = 0
        buffer = b""
        with os.fdopen(ready_read, "rb", buffering=0, closefd=False) as pipe:
            while announced < self.processes and time.monotonic() < deadline:
                chunk = pipe.read(4096)  # every child holding the write end gone: EOF
                if not chunk:
                    break
                buffer += chunk
                announced = buffer.count(b"\n")
        if announced < self.processes:
            sys.stderr.write(
                f"error: {self.processes - announced} of {self.processes} server processes "
                "did not start (see their log files)\n"
            )
            return False
        return True

    def _supervise(self) -> int:
        codes: list[int] = []
        while self._children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            index = self._children.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self._stopping or code == 0:
                # Asked to stop (this parent's signal, or the child's own graceful_shutdown or
                # SIGTERM): it drained; not replaced.
                codes.append(code)
                continue
            sys.stderr.write(f"server process {index} (pid {pid}) ended with {code}; replacing\n")
            pause = self._last_respawn + RESPAWN_PAUSE - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # a crash loop replaces at most one child a second
            self._last_respawn = time.monotonic()
            if not self._stopping:
                self._spawn(index, None)
        return 0 if all(code == 0 for code in codes) else 1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if not self._stopping:
            sys.stderr.write(f"signal {signal.Signals(signum).name}: draining every process\n")
        self._stop_all()

    def _stop_all(self) -> None:
        self._stopping = True
        for pid in tuple(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _reap_all(self) -> None:
        while self._children:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            self._children.pop(pid, None)


_PR_SET_PDEATHSIG = 1
"""prctl(2): the signal the kernel sends this process when the thread that forked it dies."""


def _drain_when_orphaned(parent: int) -> None:
    """Get SIGTERM (drain, then exit) when the parent dies, even of a SIGKILL.

    Without it a SIGKILLed parent leaves its children serving for ever, each holding the port.
    Linux only (prctl); elsewhere such children must be stopped by hand. A parent that died
    before the request took effect is caught by the check that follows it.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("cannot ask to be stopped with the parent: errno %d", ctypes.get_errno())
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _announcer(ready_write: int | None) -> Callable[[str], None]:
    """How a child tells the parent it serves: one line on the pipe (a replacement: a log line)."""

    def announce(url: str) -> None:
        if ready_write is None:
            log.info("replacement server process serving on %s", url)
            return
        os.write(ready_write, b"ready\n")
        os.close(ready_write)

    return announce
