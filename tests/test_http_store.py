"""The HTTP face of the job store: `/api/jobs` streamed page by page with `?after=&limit=`
paging (issue 11 item 7), and a POST refused with 503 + Retry-After when the journal cannot take
its line (issue 11 item 1)."""

from __future__ import annotations

import pytest
from http_support import OBESITY, get_json, poll, post_job
from store_faults import FaultyWrite

from lestats import jsonio
from lestats.actors import facade as facade_module
from lestats.stores.files import FileStore
from lestats.stores.memory import MemoryStore

pytest_plugins = ["http_support"]


async def submit_some(client, count: int) -> list[str]:
    ids = [await post_job(client, "global_mean", {"question": OBESITY}) for _ in range(count)]
    for job_id in ids:
        await poll(client, job_id)
    return ids


async def test_the_whole_list_is_the_courses_answer_byte_for_byte(serve, http_dataset, monkeypatch):
    monkeypatch.setattr(facade_module, "LIST_PAGE", 3)  # seven jobs: three pages
    client, _ = await serve(http_dataset)
    empty = await client.get("/api/jobs")
    assert await empty.read() == b'{"status": "done", "data": []}'
    ids = await submit_some(client, 7)
    response = await client.get("/api/jobs")
    assert response.status == 200
    assert response.content_type == "application/json"
    expected = jsonio.dumps({"status": "done", "data": [{job_id: "done"} for job_id in ids]})
    assert await response.read() == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?after=2", [3, 4, 5]),
        ("?after=job_id_2&limit=2", [3, 4]),
        ("?limit=1", [1]),
        ("?after=0&limit=100", [1, 2, 3, 4, 5]),
        ("?after=5", []),
        ("?after=99", []),
    ],
)
async def test_paging(serve, http_dataset, monkeypatch, query, expected):
    monkeypatch.setattr(facade_module, "LIST_PAGE", 2)
    client, _ = await serve(http_dataset, store=MemoryStore())
    await submit_some(client, 5)
    body = await get_json(client, f"/api/jobs{query}")
    assert body == {"status": "done", "data": [{f"job_id_{n}": "done"} for n in expected]}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?after=-1", "'after'"),
        ("?after=x", "'after'"),
        ("?after=01", "'after'"),
        ("?after=1000000000000000000", "'after'"),
        ("?limit=0", "'limit'"),
        ("?limit=-3", "'limit'"),
        ("?limit=1.5", "'limit'"),
        ("?limit=", "'limit'"),
        ("?limit=%D9%A1", "'limit'"),  # an Arabic-Indic one is not a number here
    ],
)
async def test_bad_paging_values_get_a_400_json_naming_the_parameter(
    serve, http_dataset, query, named
):
    client, _ = await serve(http_dataset, store=MemoryStore())
    body = await get_json(client, f"/api/jobs{query}", status=400)
    assert body["status"] == "error"
    assert named in body["reason"]


async def test_a_post_the_journal_cannot_take_gets_503_with_retry_after(
    serve, http_dataset, tmp_path
):
    faults = FaultyWrite()
    client, _ = await serve(http_dataset, store=FileStore(tmp_path / "res", write=faults))
    first = await post_job(client, "global_mean", {"question": OBESITY})
    faults.journal_torn.set()
    response = await client.post("/api/global_mean", json={"question": OBESITY})
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    body = await response.json()
    assert body["status"] == "error"
    assert "No space left on device" in body["reason"]
    faults.journal_torn.clear()
    second = await post_job(client, "global_mean", {"question": OBESITY})
    assert (first, second) == ("job_id_1", "job_id_2")  # the refusal used up no id
    assert (tmp_path / "res" / "journal.jsonl").read_bytes().endswith(b"\n")
