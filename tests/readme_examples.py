"""The README's Python examples, as files: `python tests/readme_examples.py DIR` writes them.

Blocks fenced ```` ```python ```` are programs; blocks fenced ```` ```python test ```` are pytest
test files. `make types` type-checks what this writes (`mypy --strict`), and `test_readme.py`
runs each program and each test file (with pytest, the installed plugin loaded), so the README's
examples are checked as real code, not as text.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def examples(text: str | None = None) -> list[str]:
    """The README's programs (```python blocks), in order."""
    source = README.read_text(encoding="utf-8") if text is None else text
    return re.findall(r"```python\n(.*?)```", source, flags=re.DOTALL)


def pytest_files(text: str | None = None) -> list[str]:
    """The README's pytest test files (```python test blocks), in order."""
    source = README.read_text(encoding="utf-8") if text is None else text
    return re.findall(r"```python test\n(.*?)```", source, flags=re.DOTALL)


def write(directory: Path) -> list[Path]:
    """Write the programs to `readme_example_N.py` and the test files to `test_readme_N.py`."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in (*directory.glob("readme_example_*.py"), *directory.glob("test_readme_*.py")):
        old.unlink()
    paths = []
    for pattern, sources in (
        ("readme_example_{}.py", examples()),
        ("test_readme_{}.py", pytest_files()),
    ):
        for number, source in enumerate(sources, start=1):
            path = directory / pattern.format(number)
            path.write_text(source, encoding="utf-8")
            paths.append(path)
    return paths


if __name__ == "__main__":
    write(Path(sys.argv[1]))
