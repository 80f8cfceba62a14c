"""The README's Python examples, as files: `python tests/readme_examples.py DIR` writes them.

`make types` type-checks what it writes (`mypy --strict`), and `test_readme.py` runs each one,
so the README's programs are checked as real programs, not as text.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def examples(text: str | None = None) -> list[str]:
    """The README's ```python blocks, in order."""
    source = README.read_text(encoding="utf-8") if text is None else text
    return re.findall(r"```python\n(.*?)```", source, flags=re.DOTALL)


def write(directory: Path) -> list[Path]:
    """Write each example to `directory/readme_example_N.py` (replacing older ones)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("readme_example_*.py"):
        old.unlink()
    paths = []
    for number, source in enumerate(examples(), start=1):
        path = directory / f"readme_example_{number}.py"
        path.write_text(source, encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    write(Path(sys.argv[1]))
