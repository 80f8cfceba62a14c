"""Start and stop the servers under test, and read their memory and open files from `/proc`.

Every server runs as a subprocess on 127.0.0.1 with port 0; its URL is read from the banner it
prints once listening. Stopping sends SIGTERM (a drain for the real server), waits a bounded time,
and kills only if that time runs out, saying so. While a load runs, `watching` samples the
server's `num_jobs` and memory in the background; `at_rest` takes the last look once it is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import aiohttp

from bench import loadgen

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence
    from types import TracebackType

    Record = Callable[[int | None, "ProcSample"], None]
    """What a watch does with each look at the server: `record(num_jobs, sample)`."""

REPO = Path(__file__).resolve().parent.parent
"""The repository root: run.py and the `lestats` package live here."""

BENCH_TMP = REPO / ".bench-tmp"
"""Scratch space on the repository's disk (not /tmp): per-run directories and cached datasets."""
CDC_FILE_NAME = "brfss-cdc-2011-2021.csv.gz"
"""The CDC's own export, read in place from the shared data folder."""

BANNER = re.compile(r"serving on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT = 300.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 60.0
SETTLE_SECONDS = 3.0
"""How long to wait for closed client connections to leave the server's fd table."""
_POLL_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class ProcSample:
    """Memory and open files of one process at one moment."""

    rss_kb: int
    """Resident set size now (`VmRSS`)."""
    peak_kb: int
    """High-water mark of the resident set (`VmHWM`) since start or the last `reset_peak`."""
    fds: int
    """Open file descriptors (entries of `/proc/<pid>/fd`)."""


def cdc_file() -> Path | None:
    """The CDC export in the shared data folder beside the repository, if there is one.

    The repository is either beside `shared/` or, as a git worktree, one level deeper.
    """
    for root in (REPO.parent, REPO.parent.parent):
        path = root / "shared" / "data" / CDC_FILE_NAME
        if path.is_file():
            return path
    return None

def sample(pid: int) -> ProcSample:
    """Read `VmRSS`, `VmHWM` and the fd count of `pid` (Linux only)."""
    fields: dict[str, int] = {}
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields[key] = int(value.split()[0])
    fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return ProcSample(rss_kb=fields.get("VmRSS", 0), peak_kb=fields.get("VmHWM", 0), fds=fds)


def reset_peak(pid: int) -> bool:
    """Reset the `VmHWM` of `pid` to its current RSS; False if the kernel refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid`, all its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _host_ticks() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine since boot."""
    with Path("/proc/stat").open(encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU spent during a window of wall time."""

    wall: float
    server: float
    """CPU seconds of the server process."""
    client: float
    """CPU seconds of this (load-generating) process."""
    host_busy: float
    """Fraction of all the machine's CPUs busy (anyone's work, ours included), 0 to 1."""

    @property
    def machine(self) -> float:
        """CPU seconds the whole machine spent, but this (load-generating) process's.

        The server's own figure plus the others' (never below 0: the machine's ticks are
        counted more coarsely than a process's).
        """
        return self.server + self.others * self.wall * cpu_count()

    @property
    def others(self) -> float:
        """Fraction of all CPUs used by processes other than the server and the client."""
        ncpu = cpu_count()
        ours = (self.server + self.client) / (self.wall * ncpu) if self.wall > 0 else 0.0
        return max(0.0, self.host_busy - ours)


class CpuMeter:
    """Measure CPU use from construction to `read`: server, this process, the whole machine."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._wall = time.perf_counter()
        self._server = process_cpu_seconds(pid)
        self._client = time.process_time()
        self._host = _host_ticks()

    def read(self) -> CpuUse:
        """The CPU used since the meter was made."""
        busy, total = _host_ticks()
        host_busy = busy - self._host[0]
        host_total = total - self._host[1]
        return CpuUse(
            wall=time.perf_counter() - self._wall,
            server=process_cpu_seconds(self.pid) - self._server,
            client=time.process_time() - self._client,
            host_busy=host_busy / host_total if host_total > 0 else 0.0,
        )


def mb(kb: float) -> float:
    """Kilobytes to megabytes (MiB)."""
    return kb / 1024


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory under `.bench-tmp/`, deleted afterwards whatever happens."""
    BENCH_TMP.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=BENCH_TMP))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def given_or_scratch_dir(given: str, prefix: str) -> Iterator[Path]:
    """`given` (a directory named on the command line, left as it is), else a `scratch_dir`."""
    if given:
        yield Path(given)
        return
    with scratch_dir(prefix) as path:
        yield path


class ServerProcess:
    """One server subprocess: started by `start` (or `async with`), stopped by `stop`.

    The process's stdout and stderr go to files in `workdir`, so no pipe can fill up and stall
    it; `start` watches the stdout file for the banner. Not reusable after `stop`.
    """

    def __init__(self, name: str, argv: Sequence[str], workdir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.url = ""
        self.startup_seconds = 0.0
        self.returncode: int | None = None
        self.killed = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout = workdir / f"{name}.stdout"
        self._stderr = workdir / f"{name}.stderr"

    @property
    def pid(self) -> int:
        """The server's process id (it is the Python process itself: no shell in between)."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc.pid

    def sample(self) -> ProcSample:
        """Memory and fds of the server now."""
        return sample(self.pid)

    async def start(self, timeout: float = START_TIMEOUT) -> str:
        """Launch the server and wait for its banner; return its base URL."""
        began = time.perf_counter()
        self._proc = self._launch()
        deadline = began + timeout
        while time.perf_counter() < deadline:
            found = BANNER.search(self._stdout.read_text(encoding="utf-8", errors="replace"))
            if found:
                self.url = found.group(1)
                self.startup_seconds = time.perf_counter() - began
                return self.url
            if self._proc.poll() is not None:
                break
            await asyncio.sleep(_POLL_SECONDS)
        code = self._proc.poll()
        await self.stop()
        raise RuntimeError(
            f"{self.name} did not start (exit code {code}, within {timeout:g} s); "
            f"stderr tail:\n{self.stderr_tail()}"
        )

    def _launch(self) -> subprocess.Popen[bytes]:
        with self._stdout.open("wb") as out, self._stderr.open("wb") as err:
            return subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
                self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO
            )

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout` seconds, else SIGKILL; return the exit code."""
        proc = self._proc
        if proc is None or self.returncode is not None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                proc.kill()
                await asyncio.to_thread(proc.wait, timeout)
        self.returncode = proc.returncode
        return self.returncode

    def stop_report(self) -> str:
        """One line on how the server ended: a clean drain is exit code 0."""
        if self.killed:
            return f"{self.name}: did not exit within {STOP_TIMEOUT:g} s of SIGTERM: KILLED"
        verdict = "ok" if self.returncode == 0 else "UNEXPECTED"
        return f"{self.name}: exit code {self.returncode} after SIGTERM ({verdict})"

    def stop_failures(self) -> list[str]:
        """The stop report as a failure when the server did not exit cleanly, else nothing."""
        return [] if self.returncode == 0 else [self.stop_report()]

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote to stderr."""
        try:
            text = self._stderr.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def lestats_server(
    workdir: Path,
    *,
    workers: int = 2,
    data: Path | None = None,
    max_pending: int | None = None,
    name: str = "lestats",
    results_dir: Path | None = None,
    stamps: Path | None = None,
) -> ServerProcess:
    """The real server (`run.py`) on a free port, its log and results inside `workdir`.

    `results_dir` puts the results elsewhere (on tmpfs, say); with `stamps`, it is run through
    `bench.stamped_server`, which writes there when each job finished.
    """
    program = [str(REPO / "run.py")]
    if stamps is not None:
        program = ["-m", "bench.stamped_server", "--stamps", str(stamps)]
    argv = [
        sys.executable,
        *program,
        "--port",
        "0",
        "--workers",
        str(workers),
        "--results-dir",
        str(results_dir or workdir / f"{name}-results"),
        "--log-file",
        str(workdir / f"{name}.log"),
    ]
    if data is not None:
        argv += ["--data", str(data)]
    if max_pending is not None:
        argv += ["--max-pending", str(max_pending)]
    return ServerProcess(name, argv, workdir)


@contextlib.asynccontextmanager
async def scratch_lestats(
    prefix: str, *, workers: int = 2, max_pending: int | None = None
) -> AsyncIterator[ServerProcess]:
    """The real server, running in a fresh scratch directory for the block (see `scratch_dir`).

    Stopped (and the directory deleted) on leaving the block; the `ServerProcess` then still
    tells how it ended.
    """
    with scratch_dir(prefix) as workdir:
        async with lestats_server(workdir, workers=workers, max_pending=max_pending) as server:
            yield server


def bare_server(workdir: Path, answer: Path | None = None) -> ServerProcess:
    """The bare aiohttp server of `bench.bare_server` on a free port; `answer`: its `--answer`."""
    extra = ["--answer", str(answer)] if answer is not None else []
    return ServerProcess(
        "bare", [sys.executable, "-m", "bench.bare_server", "--port", "0", *extra], workdir
    )


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


async def num_jobs(base_url: str, session: aiohttp.ClientSession | None = None) -> int | None:
    """The server's `num_jobs`, or None if it did not answer properly."""
    url = f"{base_url}/api/num_jobs"
    try:
        async with loadgen.session_scope(session) as s, s.get(url) as resp:
            if resp.status != 200:
                return None
            value = (await resp.json()).get("num_jobs")
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return value if isinstance(value, int) else None


async def settled(server: ServerProcess) -> ProcSample:
    """A sample once the fd count has stopped moving (closed connections take a moment)."""
    last = server.sample()
    deadline = time.perf_counter() + SETTLE_SECONDS
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
        now = server.sample()
        if now.fds == last.fds:
            return now
        last = now
    return last


async def at_rest(server: ServerProcess) -> tuple[int | None, ProcSample]:
    """Once a load is over: the server's `num_jobs`, then a settled sample."""
    pending = await num_jobs(server.url)
    return pending, await settled(server)


async def _watch(server: ServerProcess, every: float, record: Record, *, at_once: bool) -> None:
    async with loadgen.new_session() as session:
        if not at_once:
            await asyncio.sleep(every)
        while True:
            record(await num_jobs(server.url, session), server.sample())
            await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def watching(
    server: ServerProcess, every: float, record: Record, *, at_once: bool
) -> AsyncIterator[None]:
    """While the block runs, `record` the server's `num_jobs` and a sample every `every` seconds.

    The first look comes at once with `at_once`, else after `every` seconds. The watch ends with
    the block.
    """
    task = asyncio.create_task(_watch(server, every, record, at_once=at_once))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
