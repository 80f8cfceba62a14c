"""The README's "Calling it from Python", "Command line" and "Monitoring" sections run as written.

- Each ```` ```python remote ```` example runs against a real `run.py` (its URL in place of
  `http://127.0.0.1:5000`), and prints exactly what the Embedding example prints, from which it
  differs only in its import and the line that makes the engine.
- Each ```` ```console ```` session of those sections runs command by command (`$ ` lines) in a
  fresh directory, with a fresh `run.py` standing in for `http://127.0.0.1:5000`; each command's
  output (stdout and stderr, as a terminal shows them) must be the lines that follow it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["http_support"]

from http_support import Server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
URL = "http://127.0.0.1:5000"
BASH = shutil.which("bash") or "/bin/bash"
SECTIONS = ("Calling it from Python", "Command line", "Monitoring")


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def blocks(info: str, text: str) -> list[str]:
    return re.findall(rf"```{info}\n(.*?)```", text, flags=re.DOTALL)


REMOTE = [code for title in SECTIONS for code in blocks("python remote", section(title))]
SESSIONS = [code for title in SECTIONS for code in blocks("console", section(title))]
EMBEDDED = blocks("python", section("Embedding"))[0]


def test_the_sections_are_there_with_examples():
    assert len(REMOTE) == 1
    assert len(SESSIONS) == 2


def run_python(source: str, cwd: Path) -> str:
    script = cwd / "example.py"
    script.write_text(source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


@pytest.mark.parametrize("source", REMOTE, ids=[f"remote{i}" for i in range(len(REMOTE))])
def test_the_remote_example_is_the_embedded_one_with_one_line_changed(source, tmp_path):
    def body(code: str) -> list[str]:  # what follows the line that makes the engine
        lines = code.splitlines()
        return lines[next(i for i, line in enumerate(lines) if line.startswith("with ")) + 1 :]

    assert body(source) == body(EMBEDDED)
    assert 'with Client("http://127.0.0.1:5000") as engine:' in source
    embedded = run_python(EMBEDDED, tmp_path)
    server = Server("--workers", "2", "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    try:
        remote = run_python(source.replace(URL, server.url), tmp_path)
        assert server.stop() == 0
    finally:
        server.kill()
    assert remote == embedded
    assert "job_id_1" in remote


def commands(session: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console session."""
    pairs: list[tuple[str, list[str]]] = []
    for line in session.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        else:
            pairs[-1][1].append(line)
    return [(command, "".join(f"{line}\n" for line in output)) for command, output in pairs]


@pytest.mark.parametrize("session", SESSIONS, ids=[f"session{i}" for i in range(len(SESSIONS))])
def test_the_console_sessions_print_what_they_show(session, tmp_path):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    server = Server("--workers", "2", "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    try:
        for command, expected in commands(session):
            done = subprocess.run(
                [BASH, "-c", f"{command.replace(URL, server.url)} 2>&1"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.stdout == expected.replace(URL, server.url), command
        assert server.stop() == 0
    finally:
        server.kill()
