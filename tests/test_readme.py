"""The README stays true: its Python examples run as written, its commands and options exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from readme_examples import examples, pytest_files
from test_run_py import OPTIONS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
EXAMPLES = examples(README)
PYTEST_FILES = pytest_files(README)


def test_readme_shows_the_two_commands():
    assert "make run" in README
    assert "make test" in README


def test_readme_has_an_embedding_section_with_an_example():
    embedding = README.split("## Embedding", 1)[1].split("\n## ", 1)[0]
    assert "```python" in embedding


@pytest.mark.parametrize("source", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_readme_python_examples_run_as_written(source, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    finished = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "job_id_1" in finished.stdout
    assert "Traceback" not in finished.stderr


def test_every_documented_option_exists():
    documented = set(re.findall(r"^\| `(--[a-z-]+)", README, flags=re.MULTILINE))
    finished = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert documented == set(OPTIONS)
    for option in documented:
        assert option in finished.stdout


@pytest.mark.parametrize(
    "source", PYTEST_FILES, ids=[f"test_file{i}" for i in range(len(PYTEST_FILES))]
)
def test_readme_test_files_pass_under_pytest_with_the_installed_plugin(source, tmp_path):
    (tmp_path / "test_example.py").write_text(source, encoding="utf-8")
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "lestats_check_leaks=true",
            "test_example.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    tests = source.count("\ndef test_")
    assert f"{tests} passed" in finished.stdout


def test_readme_has_a_testing_section_with_a_test_file():
    section = README.split("## Testing your code with lestats", 1)[1].split("\n## ", 1)[0]
    assert "```python test" in section
    assert PYTEST_FILES
