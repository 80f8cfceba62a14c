"""Job ids: the only caller-made text that could reach a file name, so parsing is strict."""

from __future__ import annotations

import pytest

from lestats.actors.jobs import (
    MAX_JOB_ID,
    RUNNING,
    JobOutcome,
    JobStatus,
    format_job_id,
    parse_job_id,
)
from lestats.errors import UnknownJob


@pytest.mark.parametrize(
    ("job_id", "number"),
    [
        ("job_id_7", 7),
        ("7", 7),
        (7, 7),
        ("job_id_1", 1),
        (1, 1),
        ("job_id_123456789012345678", 123456789012345678),
        ("999999999999999999", 999_999_999_999_999_999),
    ],
)
def test_parse_accepts_both_forms_and_ints(job_id, number):
    assert parse_job_id(job_id) == number


@pytest.mark.parametrize(
    "job_id",
    [
        "0",
        "job_id_0",
        0,
        -1,
        "-1",
        "job_id_-1",
        "+7",
        "job_id_",
        "",
        "job_id",
        "job_id_7x",
        "7.0",
        "../x",
        "job_id_1/../../etc",
        "job_id_1/../../etc/passwd",
        "1/2",
        "..",
        "007",
        "job_id_007",
        " 7",
        "7 ",
        "7\n",
        "job_id_ 7",
        "JOB_ID_7",
        "job-id-7",
        "\u0667",  # an Arabic-Indic digit seven: str.isdigit() says yes, we say no
        "1" * 19,
        "9" * 100,
        "job_id_" + "9" * 19,
        True,
        False,
        None,
        7.0,
        b"7",
        ["7"],
    ],
)
def test_parse_refuses_everything_else(job_id):
    with pytest.raises(UnknownJob) as caught:
        parse_job_id(job_id)
    assert caught.value.job_id == job_id
    assert "Invalid job_id" in str(caught.value)


def test_parse_refuses_a_huge_int_like_the_same_huge_text():
    huge = 10**30
    with pytest.raises(UnknownJob):
        parse_job_id(str(huge))
    with pytest.raises(UnknownJob):
        parse_job_id(huge)


@pytest.mark.parametrize("form", [int, str, format_job_id])
def test_the_largest_id_is_the_same_as_int_and_as_text(form):
    assert MAX_JOB_ID == 10**18
    assert parse_job_id(form(MAX_JOB_ID - 1)) == MAX_JOB_ID - 1
    with pytest.raises(UnknownJob):
        parse_job_id(form(MAX_JOB_ID))


def test_format_job_id():
    assert format_job_id(1) == "job_id_1"
    assert format_job_id(42) == "job_id_42"


@pytest.mark.parametrize("number", [1, 9, 10, 12345, 10**17])
def test_format_and_parse_round_trip(number):
    assert parse_job_id(format_job_id(number)) == number
    assert parse_job_id(str(number)) == number


def test_running_outcome_has_no_result_nor_reason():
    assert JobOutcome(JobStatus.RUNNING) == RUNNING
    assert RUNNING.result is None
    assert RUNNING.reason is None
    assert [status.value for status in JobStatus] == ["running", "done", "error"]
