"""The v2 routes over real HTTP: `GET /api/v2/<kind>` (cache, ETag, 304, CSV, meta, errors) and
`POST /api/v2/jobs`, on the CDC export read in place (and the demo data for the server's CLI)."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from http_support import RUN_PY, Server, get_json, poll, post_job
from test_queries import CDC

from lestats.data import estimates
from lestats.data.loader import load_dataset
from lestats.data.params import parse_query
from lestats.http.queries import CAVEAT

pytest_plugins = ["http_support"]
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""urllib without any proxy from the environment: the server is on this machine."""

pytestmark = pytest.mark.skipif(CDC is None, reason="the CDC export is not in ../shared/data")


@pytest.fixture(scope="module")
def cdc():
    return load_dataset(CDC)


@pytest.fixture
async def client(serve, cdc):
    client, engine = await serve(cdc)  # the default registry has the v2 kinds
    client.engine = engine
    return client


async def test_trend_answers_at_once_with_meta_etag_and_cache_control(client, cdc):
    response = await client.get("/api/v2/trend?question=Q036&location=OH&location=US")
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    expected = estimates.trend(
        cdc, parse_query(cdc, "trend", {"question": "Q036", "location": ["OH", "US"]})
    )
    assert body["status"] == "done"
    assert body["data"] == expected
    meta = body["meta"]
    assert meta["question"] == "Percent of adults aged 18 years and older who have obesity"
    assert meta["unit"] == "%"
    assert meta["dataset"] == cdc.fingerprint
    assert "hn4x-zwk7" in meta["source"]
    assert meta["caveat"] == CAVEAT
    assert re.fullmatch(r'"[0-9a-f]{40}"', response.headers["ETag"])
    assert "max-age" in response.headers["Cache-Control"]


async def test_the_same_question_asked_differently_is_one_cached_answer(client):
    first = await client.get("/api/v2/trend?question=Q036&location=OH&location=US")
    jobs_after_first = len(client.engine.jobs())
    assert jobs_after_first == 1  # answered through the engine: one job
    for path in (
        "/api/v2/trend?question=Q036&location=OH,US",
        "/api/v2/trend?location=Ohio&location=National&stratum=Total&question=Q036",
        "/api/v2/trend?question=Percent%20of%20adults%20aged%2018%20years%20and%20older%20who%20have%20obesity&location=OH,US&stratum=OVERALL",
    ):
        again = await client.get(path)
        assert again.status == 200
        assert again.headers["ETag"] == first.headers["ETag"]
        assert await again.read() == await first.read()
    assert len(client.engine.jobs()) == jobs_after_first  # from the loop's cache, no new job


async def test_if_none_match_gives_304_without_a_body(client):
    first = await client.get("/api/v2/ranking?question=Q036")
    tag = first.headers["ETag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        again = await client.get("/api/v2/ranking?question=Q036", headers={"If-None-Match": header})
        assert again.status == 304
        assert again.headers["ETag"] == tag
        assert await again.read() == b""
    other = await client.get("/api/v2/ranking?question=Q036", headers={"If-None-Match": '"x"'})
    assert other.status == 200
    other_year = await client.get("/api/v2/ranking?question=Q036&year=2011")
    assert other_year.headers["ETag"] != tag


async def test_csv_is_rfc_4180_with_a_header_and_a_file_name(client):
    response = await client.get("/api/v2/trend?question=Q036&location=OH,US&format=csv")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="trend-Q036-[0-9a-f]{8}\.csv"', disposition)
    text = (await response.read()).decode()
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["location", "name", "year", "value", "low", "high", "sample_size", "gap"]
    assert len(rows) == 1 + 2 * 11
    ohio_2011 = next(row for row in rows if row[0] == "OH" and row[2] == "2011")
    assert ohio_2011 == ["OH", "Ohio", "2011", "29.6", "28.3", "31.0", "9339", ""]
    json_tag = (await client.get("/api/v2/trend?question=Q036&location=OH,US")).headers["ETag"]
    assert response.headers["ETag"] != json_tag


@pytest.mark.parametrize(
    ("path", "columns"),
    [
        ("/api/v2/estimates?question=Q036&location=OH&year=2021&category=INC", 14),
        ("/api/v2/ranking?question=Q047&year=2020", 10),
        ("/api/v2/compare?question=Q036&location=OH&year=2011,2021", 20),
        ("/api/v2/questions", 7),
        ("/api/v2/locations", 3),
        ("/api/v2/strata", 4),
    ],
)
async def test_every_kind_has_a_csv_form(client, path, columns):
    response = await client.get(path + ("&" if "?" in path else "?") + "format=csv")
    assert response.status == 200
    rows = list(csv.reader(io.StringIO((await response.read()).decode(), newline="")))
    assert len(rows) > 1
    assert all(len(row) == columns for row in rows)
    as_json = await (await client.get(path)).json()
    assert as_json["status"] == "done"


async def test_a_quoted_comma_survives_csv(client):
    path = "/api/v2/estimates?question=Q036&location=OH&year=2021&stratum=$75,000 or greater"
    response = await client.get(path + "&format=csv")
    assert response.status == 200
    text = (await response.read()).decode()
    assert '"$75,000 or greater"' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[1][7] == "$75,000 or greater"


async def test_every_bad_parameter_is_a_400_naming_it_with_allowed_values(client):
    response = await client.get(
        "/api/v2/trend?question=Q999&location=OH,Atlantis&stratum=RICH&colour=red"
    )
    assert response.status == 400
    body = await response.json()
    assert body["status"] == "error"
    by_name = {error["parameter"]: error for error in body["errors"]}
    assert set(by_name) == {"question", "location", "stratum", "colour"}
    assert "Q036" in by_name["question"]["allowed"]
    assert "OH" in by_name["location"]["allowed"]
    assert "OVERALL" in by_name["stratum"]["allowed"]
    assert by_name["colour"]["allowed"] == ["location", "question", "stratum"]
    for name in by_name:
        assert name in body["reason"]
    assert len(client.engine.jobs()) == 0


async def test_unknown_kind_and_format(client):
    response = await client.get("/api/v2/median?question=Q036")
    assert response.status == 404
    body = await response.json()
    assert "trend" in body["allowed"]
    assert "states_mean" not in body["allowed"]  # the course routes are POST /api/<name>
    response = await client.get("/api/v2/trend?question=Q036&location=OH&format=xml")
    assert response.status == 400
    assert (await response.json())["allowed"] == ["json", "csv"]


async def test_post_v2_jobs_takes_any_query_as_one_object(client):
    job_id = await post_job(
        client,
        "v2/jobs",
        {"kind": "compare", "question": "Q036", "location": "OH", "year": [2011, 2021]},
    )
    done = await poll(client, job_id)
    assert done["status"] == "done"
    assert done["data"]["difference"] == 8.2
    assert done["data"]["significant"] is True
    course = await post_job(
        client,
        "v2/jobs",
        {
            "kind": "state_mean",
            "question": "Percent of adults aged 18 years and older who have obesity",
            "state": "Ohio",
        },
    )
    assert set((await poll(client, course))["data"]) == {"Ohio"}


async def test_post_v2_jobs_refusals(client):
    response = await client.post(
        "/api/v2/jobs",
        json={"kind": "trend", "question": "Q036", "location": ["OH", "XX"], "year": 2011},
    )
    assert response.status == 400
    body = await response.json()
    assert {e["parameter"] for e in body["errors"]} == {"location", "year"}
    response = await client.post("/api/v2/jobs", json={"question": "Q036"})
    assert response.status == 400
    assert "trend" in (await response.json())["allowed"]
    response = await client.post("/api/v2/jobs", data=b"[1, 2]")
    assert response.status == 400
    assert len(client.engine.jobs()) == 0


async def test_openapi_and_index_cover_the_v2_routes(client):
    document = await get_json(client, "/api/openapi.json")
    for kind in ("estimates", "trend", "ranking", "compare", "questions", "locations", "strata"):
        assert "get" in document["paths"][f"/api/v2/{kind}"]
    assert "post" in document["paths"]["/api/v2/jobs"]
    trend = document["paths"]["/api/v2/trend"]["get"]
    names = [p["name"] for p in trend["parameters"]]
    assert names[:3] == ["question", "location", "stratum"]
    assert "text/csv" in trend["responses"]["200"]["content"]
    page = await (await client.get("/api")).text()  # the route list (/ is the web page)
    assert "GET /api/v2/ranking" in page
    assert "POST /api/v2/jobs" in page


def test_the_server_serves_the_v2_routes_on_the_cdc_file(tmp_path):
    server = Server(
        "--data",
        str(CDC),
        "--results-dir",
        str(tmp_path / "results"),
        "--log-file",
        str(tmp_path / "log"),
        cwd=tmp_path,
        script=RUN_PY,
    )
    try:
        with DIRECT.open(server.url + "/api/v2/ranking?question=Q036&year=2021") as response:
            body = json.loads(response.read())
            tag = response.headers["ETag"]
        assert body["data"]["rows"][0]["location"] == "DC"
        assert body["data"]["reference"]["location"] == "US"
        request = urllib.request.Request(  # noqa: S310 - http to our own server
            server.url + "/api/v2/ranking?question=Q036", headers={"If-None-Match": tag}
        )
        with pytest.raises(urllib.error.HTTPError) as not_modified:
            DIRECT.open(request)
        assert not_modified.value.code == 304
        assert server.stop() == 0
    finally:
        server.kill()


README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Asking better questions", 1)[1].split("\n## ", 1)[0]


async def test_the_readme_curl_examples_answer(client):
    gets = re.findall(r"curl -s (?:-OJ )?'http://127\.0\.0\.1:5000(/api/v2/[^']+)'", SECTION)
    assert len(gets) >= 7
    for path in gets:
        response = await client.get(path)
        assert response.status == 200, (path, await response.text())
    (body,) = re.findall(r"-X POST http://127\.0\.0\.1:5000/api/v2/jobs -d '([^']+)'", SECTION)
    job_id = await post_job(client, "v2/jobs", json.loads(body))
    assert (await poll(client, job_id))["status"] == "done"
    assert "describes no" in SECTION  # the caveat, in plain words
