"""`run.py` with a tiny open-file limit: when `accept()` runs out of descriptors, the log says
so once per episode (not one traceback per attempt), and service resumes by itself once idle
connections time out. The long version (1,100 sockets, limit 1,024) is `bench/idle_flood.py`.
"""

from __future__ import annotations

import re
import resource
import socket
import time

from http_support import Server

pytest_plugins = ["http_support"]

FD_LIMIT = 64
FLOOD = 80
DEADLINE = 30.0


def low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def test_out_of_descriptors_is_logged_once_and_service_resumes(tmp_path):
    log = tmp_path / "server.log"
    server = Server(
        *("--log-file", str(log), "--results-dir", str(tmp_path / "r"), "--workers", "1"),
        # A cap above the descriptor limit: accept() itself must fail, and be survived.
        *("--max-connections", "1000", "--idle-timeout", "2"),
        cwd=tmp_path,
        preexec_fn=low_fd_limit,
    )
    flood: list[socket.socket] = []
    try:
        flood.extend(
            socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
            for _ in range(FLOOD)
        )
        deadline = time.monotonic() + DEADLINE
        while "accepting connections again" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.02)
        status, health = server.request("GET", "/api/health")
        assert (status, health["status"]) == (200, "ok")
        assert server.stop() == 0
    finally:
        for sock in flood:
            sock.close()
        server.kill()
    text = log.read_text()
    assert "Traceback" not in text
    assert "Traceback" not in server.stderr()
    # One line at the start of each episode, one at its end; every failure is counted in it.
    starts = [line for line in text.splitlines() if "cannot accept connections" in line]
    ends = [line for line in text.splitlines() if "accepting connections again" in line]
    assert 1 <= len(starts) == len(ends), text[-3000:]
    assert all("Too many open files" in line for line in starts)
    failures = sum(int(re.search(r"\((\d+) failed accept attempts\)", e).group(1)) for e in ends)
    assert failures > len(starts), ends
