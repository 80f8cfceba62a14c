"""A full disk under a burst of POSTs, then SIGKILL and a restart: nothing accepted is lost.

`python -m bench.bench_full_disk` (as root: it mounts a tmpfs) puts the server's results
directory on a tmpfs of `--tmpfs-kb` KB, sends `--posts` POSTs from `--clients` connections
(each a `state_mean` of a question and state taken in turn), so that the disk fills up in the
middle of the burst, kills the server with SIGKILL, grows the tmpfs (the operator frees space)
and starts the server again on the same directory. Then it checks, and prints:

- every id answered 200 before the kill ends `done` after the restart, none is lost (404);
- each of them holds the data of its own query (the same query asked afresh gives the same);
- ids were answered once each, consecutively, and the next POST gets a new one;
- the refusals while the disk was full were 503 with Retry-After.

Exit status 0 when all holds.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench import loadgen, option, parse_plan
from bench.servers import lestats_server, scratch_dir

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import aiohttp

WAIT = 30


@dataclass(frozen=True, slots=True)
class FullDiskPlan:
    """A full tmpfs under a burst of POSTs, then SIGKILL and restart: count what was kept."""

    posts: int = option(6000, "POSTs in the burst")
    clients: int = option(64, "connections")
    tmpfs_kb: int = option(1024, "size of the tmpfs at first (it fills up)")
    grown_mb: int = option(64, "size of the tmpfs for the restart")
    workers: int = option(2, "server --workers")


@dataclass(slots=True)
class Burst:
    """What the burst got back."""

    accepted: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Job id -> (question, state) of each POST answered 200."""
    statuses: Counter[int] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    without_retry_after: int = 0
    failures: int = 0


def mount_tmpfs(path: Path, size: str, *, remount: bool = False) -> None:
    """Mount (or resize) a tmpfs at `path`."""
    options = f"remount,size={size}" if remount else f"size={size}"
    subprocess.run(  # noqa: S603 - fixed arguments, our own mount point
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],  # noqa: S607
        check=True,
        capture_output=True,
    )


def unmount(path: Path) -> None:
    """Unmount the tmpfs at `path` (lazily, should something still hold it)."""
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)  # noqa: S603, S607


async def burst(
    session: aiohttp.ClientSession, url: str, queries: list[tuple[str, str]], plan: FullDiskPlan
) -> Burst:
    """Send the POSTs; note what each got."""
    got = Burst()
    todo = iter(range(plan.posts))

    async def client() -> None:
        for n in todo:
            question, state = queries[n % len(queries)]
            body = {"question": question, "state": state}
            try:
                async with session.post(url + "/api/state_mean", json=body) as response:
                    answer = await response.json()
                    got.statuses[response.status] += 1
                    if response.status == 200:
                        got.accepted[answer["job_id"]] = (question, state)
                    else:
                        got.refusals[answer.get("reason", "")[:70]] += 1
                        if "Retry-After" not in response.headers:
                            got.without_retry_after += 1
            except (OSError, TimeoutError, ValueError):
                got.failures += 1

    await asyncio.gather(*(client() for _ in range(plan.clients)))
    return got


async def outcome(session: aiohttp.ClientSession, url: str, job_id: str) -> tuple[int, dict]:
    """The job's answer once it is no longer running (long-polls)."""
    deadline = time.monotonic() + 120
    while True:
        async with session.get(f"{url}/api/get_results/{job_id}?wait={WAIT}") as response:
            body = await response.json()
            if body.get("status") != "running" or time.monotonic() > deadline:
                return response.status, body


async def run(plan: FullDiskPlan, workdir: Path) -> int:  # noqa: PLR0915 - one story, told in order
    """The scenario; 0 if nothing accepted was lost and no id was issued twice."""
    mount = workdir / "tmpfs"
    mount.mkdir()
    try:
        mount_tmpfs(mount, f"{plan.tmpfs_kb}k")
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"cannot mount a tmpfs (root needed): {exc}")
        return 2
    try:
        results = mount / "results"
        first = lestats_server(workdir, results_dir=results, workers=plan.workers, name="first")
        async with loadgen.new_session() as session:
            await first.start()
            url = first.url
            async with session.get(url + "/api/states") as response:
                states = (await response.json())["data"]
            async with session.get(url + "/api/questions") as response:
                listed = (await response.json())["data"]
            questions = [*listed["best_is_min"], *listed["best_is_max"]]
            queries = list(itertools.product(questions, states))
            began = time.perf_counter()
            got = await burst(session, url, queries, plan)
            seconds = time.perf_counter() - began
            usage = shutil.disk_usage(mount)
            os.kill(first.pid, signal.SIGKILL)
            await first.stop()
        print(
            f"burst: {plan.posts:,} POSTs in {seconds:.1f} s; answers {dict(got.statuses)};"
            f" {got.failures} connection failures"
        )
        for reason, count in got.refusals.most_common(3):
            print(f"  refused {count:,}x: {reason}")
        print(
            f"tmpfs: {usage.used // 1024} KB used of {usage.total // 1024} KB when the server"
            f" was killed (SIGKILL, exit {first.returncode})"
        )
        log = (workdir / "first.log").read_text(encoding="utf-8", errors="replace")
        print(
            f"server log: {log.count('stay running and are retried')} episodes of finished jobs"
            f" kept running for lack of space, {log.count('Traceback')} tracebacks"
        )

        mount_tmpfs(mount, f"{plan.grown_mb}m", remount=True)
        second = lestats_server(workdir, results_dir=results, workers=plan.workers, name="again")
        async with loadgen.new_session() as session:
            await second.start()
            url = second.url
            answers = await asyncio.gather(
                *(outcome(session, url, job_id) for job_id in got.accepted)
            )
            fresh: dict[tuple[str, str], object] = {}
            for query in set(got.accepted.values()):
                async with session.post(
                    url + "/api/state_mean", json={"question": query[0], "state": query[1]}
                ) as response:
                    job_id = (await response.json())["job_id"]
                fresh[query] = (await outcome(session, url, job_id))[1].get("data")
            async with session.post(
                url + "/api/state_mean", json={"question": queries[0][0], "state": queries[0][1]}
            ) as response:
                next_id = (await response.json())["job_id"]
            async with session.get(url + "/api/jobs") as response:
                listed_ids = [next(iter(entry)) for entry in (await response.json())["data"]]
            await second.stop()

        numbers = sorted(int(job_id.removeprefix("job_id_")) for job_id in got.accepted)
        kinds = Counter(
            body.get("status") if status == 200 else f"HTTP {status}" for status, body in answers
        )
        wrong = sum(
            1
            for (job_id, query), (_, body) in zip(got.accepted.items(), answers, strict=True)
            if body.get("status") == "done" and body.get("data") != fresh[query]
        )
        reissued = int(next_id.removeprefix("job_id_")) <= (numbers[-1] if numbers else 0)
        duplicates = len(listed_ids) - len(set(listed_ids))
        consecutive = numbers == list(range(1, len(numbers) + 1))
        print(
            f"restart: {len(got.accepted):,} accepted jobs answer {dict(kinds)};"
            f" {wrong} with another query's data"
        )
        print(
            f"ids: accepted 1..{numbers[-1] if numbers else 0} consecutive={consecutive};"
            f" the next POST after the restart (and {len(fresh)} checks) got {next_id};"
            f" listed twice: {duplicates}"
        )
        print(f"503s without Retry-After: {got.without_retry_after}")
        lost = len(got.accepted) - kinds.get("done", 0)
        ok = (
            lost == 0
            and wrong == 0
            and not reissued
            and duplicates == 0
            and consecutive
            and got.without_retry_after == 0
            and got.statuses.get(503, 0) > 0  # the disk did fill up
        )
        print("OK: nothing accepted lost, no id issued twice" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        unmount(mount)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the plan and run the scenario in a scratch directory."""
    plan = parse_plan(FullDiskPlan, argv, prog="python -m bench.bench_full_disk")
    with scratch_dir("full-disk-") as workdir:
        return asyncio.run(run(plan, workdir))


if __name__ == "__main__":
    sys.exit(main())
