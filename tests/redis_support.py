"""A real `redis-server` for the tests: started on a free loopback port in a temporary directory.

AOF is on with `appendfsync always` (every reply follows an fsync), so a server stopped with
SIGKILL and started again on the same directory shows exactly what a job store may promise.
The server is always stopped at teardown, also when the test failed.

Why not `pytest-redis`: its executor has no `appendfsync` setting and no "kill, then start again
on the same directory and port" life cycle, which the outage tests need; for that it would bring
four packages (mirakuru, port-for, psutil, packaging) in place of the hundred lines below.

Register it with `pytest_plugins = ["redis_support"]` at the top of a test module. Fixtures:
`redis_server`, one server per test; `redis_url`, its URL. Test modules also import its helpers,
before pytest registers it, so it is not rewritten (PYTEST_DONT_REWRITE): it fails with
`pytest.fail` and its own messages, never a bare assert.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

START_TIMEOUT = 10.0
"""Seconds a server gets to answer PING (loading a large AOF included)."""
STOP_TIMEOUT = 10.0
_POLL = 0.005


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_server_path() -> str:
    """The `redis-server` binary; the tests that need one fail (never skip) without it."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed (`make test` installs Debian's redis-server)")
    return path


class RedisServer:
    """One redis-server process on `port`, its data (AOF) in `directory`."""

    def __init__(self, directory: Path, port: int, *, appendfsync: str = "always") -> None:
        self.directory = directory
        self.port = port
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The `redis://` URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        """The server's own log file."""
        return self.directory / "redis.log"

    def start(self) -> None:
        """Start the server on the same directory and port; return once it answers PING."""
        if self.process is not None:
            raise RuntimeError("already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redis_server_path(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", self.appendfsync,
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(self.log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            if ping(self.port):
                return
            time.sleep(_POLL)
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        self.kill()
        pytest.fail(f"redis-server on port {self.port} did not answer PING; its log:\n{log}")

    def stop(self) -> None:
        """SIGTERM (Redis flushes its AOF and exits), wait; SIGKILL if it does not exit."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL: what the AOF holds is all that survives."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

    def info(self, section: str) -> dict[str, str]:
        """`INFO section` as a dict (through redis-cli's protocol, by hand: no client state)."""
        text = command(self.port, "INFO", section).decode()
        return dict(
            line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#"
        )


def ping(port: int) -> bool:
    """Whether a Redis on `port` answers PING with PONG (not LOADING, not refused)."""
    try:
        return command(port, "PING") == b"PONG"
    except OSError:
        return False


def command(port: int, *words: str) -> bytes:
    """Send one command in RESP and return a simple or bulk string reply (for probes only)."""
    request = f"*{len(words)}\r\n".encode() + b"".join(
        f"${len(word.encode())}\r\n".encode() + word.encode() + b"\r\n" for word in words
    )
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as conn:
        conn.sendall(request)
        reply = b""
        while not _complete(reply):
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("closed before a whole reply")
            reply += chunk
    if reply[:1] == b"+":
        return reply[1:-2]
    if reply[:1] == b"$":
        header, _, body = reply.partition(b"\r\n")
        return body[: int(header[1:])]
    raise ConnectionError(reply.decode(errors="replace").strip())


def _complete(reply: bytes) -> bool:
    if reply[:1] in {b"+", b"-"}:
        return reply.endswith(b"\r\n")
    if reply[:1] == b"$":
        header, sep, body = reply.partition(b"\r\n")
        return bool(sep) and len(body) >= int(header[1:]) + 2
    return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server (AOF, fsync always) for this test; stopped whatever happens."""
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of this test's redis-server."""
    return redis_server.url
