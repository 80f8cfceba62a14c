"""Every error of spec §4 answers JSON with the right status, never a 5xx, and harms no job."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest
from http_support import (
    ENDPOINTS,
    HTTP_STATES,
    MUSCLE,
    OBESITY,
    QUESTIONS,
    STATE_ENDPOINTS,
    get_json,
    job_body,
    json_body,
    poll,
    post_job,
    until,
    wait_idle,
)
from yarl import URL

if TYPE_CHECKING:
    from collections.abc import Mapping

pytest_plugins = ["http_support"]

LIMIT = 64 * 1024
INVALID_JOB = {"status": "error", "reason": "Invalid job_id"}

NOT_JSON: list[bytes] = [
    b"",
    b"not json",
    b"{",
    b'{"question": "x",}',
    b"{'question': 'x'}",
    b'{"question": "\xff\xfe"}',
    b"\x00\x01\x02",
    b"[" * 50_000,
    b'{"question": ' * 4_000,
]
NOT_OBJECT: list[object] = [[], [OBESITY], "a string", OBESITY, 5, 2.5, None, True, False]
BAD_QUESTIONS: list[object] = [5, 1.5, True, [OBESITY], {"q": OBESITY}]
UNKNOWN_QUESTIONS: list[str] = [
    "",
    "obesity",
    OBESITY.lower(),
    OBESITY + " ",
    " " + OBESITY,
    OBESITY.replace(" ", "  ", 1),
    "Percent of adults who smoke",
]
BAD_JOB_IDS: list[str] = [
    "job_id_0",
    "0",
    "abc",
    "job_id_99999",
    "99999",
    "job_id_2",
    "2",
    "..%2F..%2Fetc%2Fpasswd",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "job_id_1%2F..%2Fjob_id_1",
    "job_id_1.json",
    "job_id_1x",
    "job_id_01",
    "01",
    "-1",
    "+1",
    "job_id_-1",
    "job_id_",
    "JOB_ID_1",
    "job_id_1%20",
    "%20job_id_1",
    "job_id_1%00",
    "1e0",
    "1.0",
    "%EF%BC%91",  # a full-width digit one, which int() would accept
    "job_id_" + "9" * 18,
    "job_id_" + "9" * 19,
    "job_id_" + "1" * 2000,
    "x" * 4000,
    "..",
    "%2E%2E",
]


def assert_error(status: int, body: object, expected_status: int) -> None:
    """A contract error body: JSON object with `status: error` and a string reason."""
    assert status == expected_status, (status, body)
    assert isinstance(body, dict)
    assert body["status"] == "error"
    assert isinstance(body["reason"], str)
    assert body["reason"]
    assert set(body) <= {"status", "reason", "allowed"}


def raw_url(client, path: str) -> URL:
    """The URL of `path` sent exactly as written: no re-quoting, no `..` normalisation."""
    return URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)


async def send(client, method: str, path: str, **kwargs) -> tuple[int, Mapping[str, str], object]:
    """Status, headers (case-insensitive) and JSON body; never a 5xx but 503."""
    response = await client.request(method, path, **kwargs)
    body = await json_body(response)
    assert response.status < 500 or response.status == 503, (method, path, response.status, body)
    return response.status, response.headers, body


# --- 400 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", NOT_JSON, ids=range(len(NOT_JSON)))
async def test_body_not_json_is_400(serve, http_dataset, raw):
    client, _ = await serve(http_dataset)
    status, _, body = await send(
        client, "POST", "/api/best5", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(status, body, 400)
    assert "JSON" in body["reason"]


@pytest.mark.parametrize("value", NOT_OBJECT, ids=repr)
async def test_json_not_an_object_is_400(serve, http_dataset, value):
    client, _ = await serve(http_dataset)
    for endpoint in ("global_mean", "state_mean"):
        raw = json.dumps(value).encode()
        status, _, body = await send(client, "POST", f"/api/{endpoint}", data=raw)
        assert_error(status, body, 400)
        assert "object" in body["reason"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_question_missing_is_400(serve, http_dataset, endpoint):
    client, _ = await serve(http_dataset)
    for sent in ({}, {"state": "Ohio"}, {"Question": OBESITY, "state": "Ohio"}, {"question": None}):
        status, _, body = await send(client, "POST", f"/api/{endpoint}", json=sent)
        assert_error(status, body, 400)
        assert "question" in body["reason"]


@pytest.mark.parametrize("question", BAD_QUESTIONS, ids=repr)
async def test_question_not_a_string_is_400(serve, http_dataset, question):
    client, _ = await serve(http_dataset)
    for endpoint in ("states_mean", "state_mean_by_category"):
        sent = {"question": question, "state": "Ohio"}
        status, _, body = await send(client, "POST", f"/api/{endpoint}", json=sent)
        assert_error(status, body, 400)
        assert "question" in body["reason"]


@pytest.mark.parametrize("endpoint", sorted(STATE_ENDPOINTS))
async def test_state_missing_or_not_a_string_is_400(serve, http_dataset, endpoint):
    client, _ = await serve(http_dataset)
    for state in (None, 5, ["Ohio"], {"name": "Ohio"}, True):
        sent = {"question": OBESITY} if state is None else {"question": OBESITY, "state": state}
        status, _, body = await send(client, "POST", f"/api/{endpoint}", json=sent)
        assert_error(status, body, 400)
        assert "state" in body["reason"]
    status, _, body = await send(client, "POST", f"/api/{endpoint}", json={"question": OBESITY})
    assert "missing" in body["reason"]


@pytest.mark.parametrize("question", UNKNOWN_QUESTIONS, ids=range(len(UNKNOWN_QUESTIONS)))
async def test_unknown_question_is_400_with_the_nine_allowed(serve, http_dataset, question):
    client, _ = await serve(http_dataset)
    for endpoint in ENDPOINTS:
        sent = {"question": question, "state": "Ohio"}
        status, _, body = await send(client, "POST", f"/api/{endpoint}", json=sent)
        assert_error(status, body, 400)
        assert body["allowed"] == list(QUESTIONS)


async def test_unknown_state_is_400_with_the_datasets_states_allowed(serve, http_dataset):
    client, _ = await serve(http_dataset)
    for endpoint in sorted(STATE_ENDPOINTS):
        for state in ("Atlantis", "ohio", "Ohio ", "", "National", "OH"):
            sent = {"question": OBESITY, "state": state}
            status, _, body = await send(client, "POST", f"/api/{endpoint}", json=sent)
            assert_error(status, body, 400)
            assert body["allowed"] == list(HTTP_STATES)
            assert "state" in body["reason"]


async def test_unknown_state_lists_the_demo_states(serve, demo_dataset):
    client, _ = await serve(demo_dataset)
    sent = {"question": MUSCLE, "state": "Atlantis"}
    status, _, body = await send(client, "POST", "/api/state_mean", json=sent)
    assert_error(status, body, 400)
    assert body["allowed"] == list(demo_dataset.states)
    assert len(body["allowed"]) == 55


async def test_a_refused_post_uses_no_job_id(serve, http_dataset):
    client, _ = await serve(http_dataset)
    await send(client, "POST", "/api/best5", data=b"nope")
    await send(client, "POST", "/api/best5", json={"question": "nope"})
    await send(client, "POST", "/api/state_mean", json={"question": OBESITY, "state": "nope"})
    assert await post_job(client, "best5", {"question": OBESITY}) == "job_id_1"
    await wait_idle(client)
    assert (await get_json(client, "/api/jobs"))["data"] == [{"job_id_1": "done"}]


# --- 404 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nope"),
        ("GET", "/apis"),  # /api is the route list
        ("GET", "/api/"),
        ("GET", "/nope"),
        ("POST", "/api/unknown_endpoint"),
        ("POST", "/api/best6"),
        ("POST", "/api/BEST5"),
        ("POST", "/api/best5/extra"),
        ("GET", "/api/get_results"),
        ("GET", "/api/get_results/"),
        ("GET", "/api/get_results/1/2"),
        ("GET", "/api/jobs/1"),
        ("GET", "/" + "a" * 4000),
    ],
)
async def test_unknown_route_is_404_json(serve, http_dataset, method, path):
    client, _ = await serve(http_dataset)
    kwargs = {"json": {"question": OBESITY}} if method == "POST" else {}
    status, _, body = await send(client, method, path, **kwargs)
    assert_error(status, body, 404)


async def test_unknown_or_malformed_job_ids_are_404_invalid_job_id(serve, http_dataset):
    client, _ = await serve(http_dataset)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    assert job_id == "job_id_1"
    await poll(client, job_id)
    for bad in BAD_JOB_IDS:
        for query in ("", "?wait=1"):
            response = await client.session.get(raw_url(client, f"/api/get_results/{bad}{query}"))
            body = await json_body(response)
            assert response.status == 404, (bad, response.status, body)
            assert body == INVALID_JOB, bad
    # The job that exists is still fine afterwards.
    assert (await poll(client, "1"))["data"] == {"global_mean": 30.0}


async def test_path_traversal_reaches_no_file(serve, http_dataset, tmp_path):
    client, _ = await serve(http_dataset, results_dir=tmp_path / "deep" / "results")
    (tmp_path / "secret.json").write_text('{"secret": 1.0}')
    (tmp_path / "job_id_5.json").write_text('{"secret": 2.0}')
    for bad in ("..%2F..%2Fsecret", "..%2Fjob_id_5", "..%2F..%2Fjob_id_5", "%2E%2E%2Fjob_id_5"):
        response = await client.session.get(raw_url(client, f"/api/get_results/{bad}"))
        assert response.status == 404, bad
        assert await json_body(response) == INVALID_JOB


# --- 405 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        *(("GET", f"/api/{endpoint}", "POST") for endpoint in ENDPOINTS),
        ("PUT", "/api/best5", "POST"),
        ("DELETE", "/api/state_mean", "POST"),
        ("POST", "/api/jobs", "GET"),
        ("POST", "/api/num_jobs", "GET"),
        ("POST", "/api/get_results/job_id_1", "GET"),
        ("DELETE", "/api/get_results/1", "GET"),
        ("POST", "/api/graceful_shutdown", "GET"),
        ("POST", "/api/questions", "GET"),
        ("POST", "/api/states", "GET"),
        ("POST", "/api/health", "GET"),
        ("POST", "/", "GET"),
    ],
)
async def test_wrong_method_is_405_with_allow(serve, http_dataset, method, path, allowed):
    client, _ = await serve(http_dataset)
    status, headers, body = await send(client, method, path, json={"question": OBESITY})
    assert_error(status, body, 405)
    assert "Allow" in headers
    assert allowed in {m.strip() for m in headers["Allow"].split(",")}
    assert method not in {m.strip() for m in headers["Allow"].split(",")}


async def test_graceful_shutdown_is_not_triggered_by_a_wrong_method(serve, http_dataset):
    client, _ = await serve(http_dataset)
    await send(client, "POST", "/api/graceful_shutdown")
    assert (await get_json(client, "/api/health"))["accepting"] is True


# --- 413 -----------------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A valid job body of exactly `size` bytes (padding in an extra key)."""
    head = json.dumps({"question": OBESITY, "pad": ""}).encode()
    body = head[:-2] + b"x" * (size - len(head)) + head[-2:]
    assert len(body) == size
    json.loads(body)
    return body


async def test_body_over_64_kib_is_413(serve, http_dataset):
    client, _ = await serve(http_dataset)
    for size in (LIMIT + 1, LIMIT + 1024, 4 * LIMIT, 1 << 20):
        status, _, body = await send(client, "POST", "/api/best5", data=padded(size))
        assert_error(status, body, 413)
        assert str(LIMIT) in body["reason"]
    status, _, body = await send(client, "POST", "/api/best5", data=b"x" * (LIMIT + 1))
    assert_error(status, body, 413)


async def test_chunked_body_over_64_kib_is_413(serve, http_dataset):
    client, _ = await serve(http_dataset)

    async def chunks():
        for _ in range(100):
            yield b" " * 1024

    status, _, body = await send(client, "POST", "/api/best5", data=chunks())
    assert_error(status, body, 413)


async def test_body_over_64_kib_harms_no_job_and_uses_no_id(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    first = await post_job(client, "global_mean", {"question": OBESITY})
    for size in (LIMIT + 1, 1 << 20):
        response = await client.post("/api/best5", data=padded(size))
        assert response.status != 200
    assert await post_job(client, "best5", {"question": OBESITY}) == "job_id_2"
    gate.release()
    assert (await poll(client, first))["data"] == {"global_mean": 30.0}
    assert (await poll(client, "job_id_2"))["status"] == "done"


async def test_body_up_to_64_kib_is_accepted(serve, http_dataset):
    client, _ = await serve(http_dataset)
    for size in (LIMIT - 1024, LIMIT):
        response = await client.post("/api/best5", data=padded(size))
        assert response.status == 200, size
    listed = (await get_json(client, "/api/jobs"))["data"]
    assert [next(iter(item)) for item in listed] == ["job_id_1", "job_id_2"]
    await wait_idle(client)


# --- 503 -----------------------------------------------------------------------------------------


async def test_too_many_pending_is_503_with_retry_after_and_uses_no_id(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate, max_pending=1)
    assert await post_job(client, "global_mean", {"question": OBESITY}) == "job_id_1"
    for _ in range(3):
        status, headers, body = await send(client, "POST", "/api/best5", json={"question": OBESITY})
        assert_error(status, body, 503)
        assert int(headers["Retry-After"]) >= 1
    assert (await get_json(client, "/api/jobs"))["data"] == [{"job_id_1": "running"}]
    gate.release()
    assert (await poll(client, "job_id_1"))["data"] == {"global_mean": 30.0}
    assert await post_job(client, "best5", {"question": OBESITY}) == "job_id_2"
    assert (await poll(client, "job_id_2"))["status"] == "done"


async def test_past_the_waiter_bound_a_long_poll_is_503_and_other_requests_go_on(
    serve, http_dataset, gate
):
    client, engine = await serve(http_dataset, runner=gate, max_waiters=1, max_requests=2)
    job_id = await post_job(client, "global_mean", {"question": OBESITY})
    pending = asyncio.ensure_future(client.get(f"/api/get_results/{job_id}?wait=20"))
    await until(lambda: engine.waiting == 1, "the first long-poll waits")
    status, headers, body = await send(client, "GET", f"/api/get_results/{job_id}?wait=5")
    assert_error(status, body, 503)
    assert "waiter bound" in body["reason"], body
    assert int(headers["Retry-After"]) >= 1
    # The waiter holds no request place: polls, health and POSTs answer as usual.
    for _ in range(3):
        assert await get_json(client, f"/api/get_results/{job_id}") == {"status": "running"}
        assert (await get_json(client, "/api/health"))["num_jobs"] >= 1
    assert await post_job(client, "best5", {"question": OBESITY}) == "job_id_2"
    gate.release()
    response = await pending
    assert (await json_body(response))["status"] == "done"
    assert engine.waiting == 0
    await wait_idle(client)


# --- all of it, around an accepted job -----------------------------------------------------------


async def test_abuse_harms_no_accepted_job(serve, http_dataset, gate):
    client, _ = await serve(http_dataset, runner=gate)
    first = await post_job(client, "state_mean", {"question": OBESITY, "state": "Ohio"})
    abuse: list[tuple[str, str, dict]] = [
        *(("POST", "/api/best5", {"data": raw}) for raw in NOT_JSON),
        *(("POST", "/api/global_mean", {"data": json.dumps(v).encode()}) for v in NOT_OBJECT),
        *(("POST", "/api/best5", {"json": {"question": q}}) for q in BAD_QUESTIONS),
        *(("POST", "/api/state_mean", {"json": {"question": OBESITY, "state": 5}}),),
        ("GET", "/api/best5", {}),
        ("POST", "/api/jobs", {}),
        ("GET", "/api/nope", {}),
        ("GET", "/api/get_results/job_id_0", {}),
        ("GET", "/api/get_results/job_id_1?wait=-1", {}),
    ]
    for method, path, kwargs in abuse:
        status, _, body = await send(client, method, path, **kwargs)
        assert 400 <= status < 500, (method, path, status)
        assert_error(status, body, status)
    second = await post_job(client, "state_mean", {"question": OBESITY, "state": "Texas"})
    assert second == "job_id_2"
    gate.release()
    assert await poll(client, first) == {"status": "done", "data": {"Ohio": 32.0}}
    assert await poll(client, second) == {"status": "done", "data": {"Texas": 28.0}}
    body = job_body("state_mean_by_category", OBESITY, "Ohio")
    third = await post_job(client, "state_mean_by_category", body)
    assert third == "job_id_3"
    assert (await poll(client, third))["data"] == {
        "Ohio": {"('Age (years)', '18 - 24')": 30.0, "('Age (years)', '25 - 34')": 34.0}
    }
