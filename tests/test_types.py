"""Types that help: `mypy --strict` follows the installed package from a user's own directory,
types the built-in statistics' results, and refuses calls the engine would refuse."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from readme_examples import write

from lestats.results import (
    JobId,
    category_key,
    category_means,
    state_category_means,
)

REPO = Path(__file__).resolve().parents[1]
MYPY = Path(sys.executable).with_name("mypy")

GOOD = textwrap.dedent(
    """
    from typing import assert_type

    from lestats import Engine, Query, load_demo_dataset
    from lestats.results import (
        CategoryMeans, GlobalMean, JobId, StateCategoryMeans, StateMeans, category_means,
    )

    Q = "Percent of adults aged 18 years and older who have obesity"

    with Engine(load_demo_dataset(), results_dir="r") as engine:
        best = engine.submit("best5", Q)
        assert_type(best, JobId[StateMeans])
        assert_type(engine.result(best), StateMeans)
        assert_type(engine.result(engine.submit("state_mean", Q, "Ohio")), StateMeans)
        assert_type(engine.result(engine.submit("global_mean", Q)), GlobalMean)
        by_category = engine.result(engine.submit("mean_by_category", Q))
        assert_type(by_category, CategoryMeans)
        assert_type(category_means(by_category), dict[tuple[str, str, str], float])
        one = engine.submit("state_mean_by_category", Q, "Ohio")
        assert_type(engine.result(one), StateCategoryMeans)
        assert_type(engine.result("job_id_1"), object)
        assert_type(engine.submit(Query("best5", Q)), JobId[object])
        custom = engine.submit("my_statistic", question=Q, level=3, places=["Ohio"])
        assert_type(custom, JobId[object])
        job: str = best  # an id is a str

    async def main(engine: Engine) -> None:
        job = await engine.submit_async("worst5", Q)
        assert_type(await engine.result_async(job), StateMeans)
    """
)

BAD = {
    "unknown_name_and_wrong_types": 'engine.submit("best6", 42, ["Ohio"])',
    "state_missing": 'engine.submit("state_mean", Q)',
    "state_given_to_a_question_statistic": 'engine.submit("best5", Q, "Ohio")',
    "question_not_a_string": 'engine.submit("global_mean", 42)',
    "custom_statistic_positional": 'engine.submit("my_statistic", Q)',
    "result_is_not_what_the_id_says": "x: list[str] = engine.result(engine.submit('best5', Q))",
}


def mypy(directory: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """`mypy --strict` run from `directory` (outside the repository: only installed packages)."""
    return subprocess.run(
        [str(MYPY), "--strict", "--no-incremental", "--no-error-summary", *files],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_install_is_a_plain_path_type_checkers_follow():
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    pth = list(site.glob("__editable__*lestats*.pth"))
    assert pth, "make install: an editable install"
    assert str(REPO) in pth[0].read_text(encoding="utf-8").splitlines()


def test_a_user_program_outside_the_repository_type_checks(tmp_path):
    (tmp_path / "program.py").write_text(GOOD, encoding="utf-8")
    done = mypy(tmp_path, "program.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_calls_the_engine_would_refuse_do_not_type_check(tmp_path):
    header = textwrap.dedent(
        """
        from lestats import Engine, load_demo_dataset

        Q = "Percent of adults aged 18 years and older who have obesity"
        engine = Engine(load_demo_dataset())
        """
    )
    for name, call in BAD.items():
        (tmp_path / f"{name}.py").write_text(header + call + "\n", encoding="utf-8")
    done = mypy(tmp_path, *(f"{name}.py" for name in BAD))
    failing = set(re.findall(r"^(\w+)\.py:\d+: error", done.stdout, flags=re.MULTILINE))
    assert failing == set(BAD), done.stdout


def test_the_readme_examples_type_check_as_a_user_program(tmp_path):
    paths = write(tmp_path)
    assert len(paths) >= 3
    done = mypy(tmp_path, *(path.name for path in paths))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_type_checks_strictly():
    done = subprocess.run(
        [str(MYPY), "--strict", "lestats"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout


# --- the by-category keys, as tuples -------------------------------------------------------------


def test_by_category_keys_decode_to_tuples_in_order():
    data = {
        "('Alabama', 'Age (years)', '18 - 24')": 30.0,
        "('Alabama', 'Income', \"$75,000 or greater\")": 31.5,
        "(\"O'Brien\", 'Total', 'Total')": 1.0,
    }
    assert list(category_means(data).items()) == [
        (("Alabama", "Age (years)", "18 - 24"), 30.0),
        (("Alabama", "Income", "$75,000 or greater"), 31.5),
        (("O'Brien", "Total", "Total"), 1.0),
    ]
    assert state_category_means({"Ohio": {"('Total', 'Total')": 2.0}, "Iowa": {}}) == {
        "Ohio": {("Total", "Total"): 2.0},
        "Iowa": {},
    }


def test_the_json_form_keeps_the_course_string_keys(make_engine):
    question = "Percent of adults aged 18 years and older who have obesity"
    engine = make_engine()
    data = engine.result(engine.submit("mean_by_category", question), timeout=5)
    assert all(isinstance(key, str) and key.startswith("('") for key in data)
    decoded = category_means(data)
    assert [str(key) for key in decoded] == list(data)
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    "key", ["", "Ohio", "('a', 'b')", "('a', 'b', 3)", "['a', 'b', 'c']", "__import__('os')"]
)
def test_a_malformed_category_key_is_refused(key):
    with pytest.raises(ValueError, match="category key"):
        category_key(key, 3)


def test_a_job_id_is_a_plain_string_at_run_time(make_engine):
    engine = make_engine()
    job_id = engine.submit("best5", "Percent of adults aged 18 years and older who have obesity")
    assert isinstance(job_id, JobId)
    assert isinstance(job_id, str)
    assert job_id == "job_id_1"
    assert json.dumps({"job_id": job_id}) == '{"job_id": "job_id_1"}'
    assert str(job_id) == f"{job_id}" == "job_id_1"
