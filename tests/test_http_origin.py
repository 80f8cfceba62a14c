"""Requests a browser marks as coming from another site are refused with 403 JSON.

Another page open in the user's browser must not be able to POST jobs to the server nor call
`/api/graceful_shutdown` (an `<img>` suffices for that GET). Browsers say where a request comes
from (`Sec-Fetch-Site`, `Origin`); plain clients say nothing and keep working, and so do this
server's own pages (same origin).
"""

from __future__ import annotations

import pytest
from http_support import OBESITY, get_json, json_body, post_job

pytest_plugins = ["http_support"]

JOB = {"question": OBESITY}

FOREIGN = {
    "cross-site fetch": {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"},
    "same-site (another port)": {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"},
    "foreign Origin": {"Origin": "http://evil.example"},
    "Origin null": {"Origin": "null"},
    "Origin on another port": {"Origin": "http://127.0.0.1:1"},
    "Origin https of this host": {"Origin": "https://127.0.0.1"},
    "form from another site": {
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate",
        "Origin": "http://evil.example",
        "Content-Type": "application/x-www-form-urlencoded",
    },
}


def own_origin(client) -> str:
    return f"http://127.0.0.1:{client.server.port}"


async def assert_refused(response) -> None:
    body = await json_body(response)
    assert response.status == 403, body
    assert body["status"] == "error"
    assert body["reason"].startswith("cross-site request refused"), body


@pytest.mark.parametrize("case", list(FOREIGN))
async def test_a_foreign_job_post_is_403_and_accepts_nothing(serve, http_dataset, case):
    client, _ = await serve(http_dataset)
    response = await client.post("/api/best5", json=JOB, headers=FOREIGN[case])
    await assert_refused(response)
    assert (await get_json(client, "/api/jobs"))["data"] == []
    assert await post_job(client, "best5", JOB) == "job_id_1"  # no id was used up


async def test_an_img_tag_from_another_site_cannot_shut_the_server_down(serve, http_dataset):
    client, _ = await serve(http_dataset)
    image = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
    await assert_refused(await client.get("/api/graceful_shutdown", headers=image))
    link = {
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }
    await assert_refused(await client.get("/api/graceful_shutdown", headers=link))
    assert (await get_json(client, "/api/health"))["accepting"] is True
    await assert_refused(await client.get("/api/jobs", headers=image))


async def test_plain_clients_and_this_servers_own_pages_pass(serve, http_dataset):
    client, _ = await serve(http_dataset)
    own = {
        "no headers (curl, the checker)": {},
        "same-origin fetch": {"Sec-Fetch-Site": "same-origin", "Origin": own_origin(client)},
        "typed in the address bar": {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"},
        "own Origin only": {"Origin": own_origin(client)},
        "own Origin, upper case": {"Origin": own_origin(client).upper()},
    }
    for n, headers in enumerate(own.values(), start=1):
        response = await client.post("/api/best5", json=JOB, headers=headers)
        assert (response.status, await json_body(response)) == (200, {"job_id": f"job_id_{n}"})
        response = await client.get(f"/api/get_results/job_id_{n}", headers=headers)
        assert response.status == 200


async def test_a_link_from_another_site_to_the_page_opens_it(serve, http_dataset):
    client, _ = await serve(http_dataset)
    link = {
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }
    response = await client.get("/", headers=link)
    assert response.status == 200
    assert response.content_type == "text/html"
    # The same page pulled in by another site's script is refused.
    response = await client.get(
        "/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
    )
    await assert_refused(response)


@pytest.mark.parametrize("host", ["evil.example:5000", "attacker.test", "192.0.2.7", "bad host!"])
async def test_a_foreign_host_on_the_loopback_address_is_refused(serve, http_dataset, host):
    """DNS rebinding: another site's name resolved to 127.0.0.1, its requests same-origin."""
    client, _ = await serve(http_dataset)
    origin = f"http://{host}"
    headers = {"Host": host, "Sec-Fetch-Site": "same-origin", "Origin": origin}
    await assert_refused(await client.post("/api/best5", json=JOB, headers=headers))
    await assert_refused(await client.get("/api/graceful_shutdown", headers={"Host": host}))
    assert (await get_json(client, "/api/health"))["accepting"] is True


@pytest.mark.parametrize(
    "host", ["localhost", "LocalHost:5000", "app.localhost", "127.0.0.2", "[::1]"]
)
async def test_loopback_names_pass(serve, http_dataset, host):
    client, _ = await serve(http_dataset)
    response = await client.get("/api/health", headers={"Host": host})
    assert response.status == 200
