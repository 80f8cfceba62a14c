"""A bare aiohttp server with canned answers: the ceiling for one job over HTTP on this machine.

`POST /api/best5` reads and parses the JSON body as the real server does and answers a job id;
`GET /api/get_results/{job_id}` answers a canned `done` result of five floats; with `--answer
FILE`, `GET /api/answer` answers that file's bytes as JSON (the same bytes as a real answer, to
compare a route with its own floor). No engine, no logging, no middleware: what is left is the
cost of aiohttp itself.

Run: `python -m bench.bare_server --port 0`; it prints `bare aiohttp serving on http://...` once
listening and stops on SIGTERM or SIGINT with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Sequence

CANNED_RESULT = json.dumps(
    {
        "status": "done",
        "data": {
            "Indiana": 19.194117647058825,
            "Arizona": 21.907894736842106,
            "South Dakota": 23.33243243243243,
            "Ohio": 24.502857142857142,
            "North Carolina": 24.644186046511628,
        },
    },
    separators=(", ", ": "),
).encode()
"""What every `get_results` answers: the shape and size of a real `best5` result."""

_BAD_BODY = json.dumps({"status": "error", "reason": "request body must be a JSON object"})


def create_app(answer: bytes | None = None) -> web.Application:
    """The two canned routes, and `GET /api/answer` serving `answer` if given."""
    ids = itertools.count(1)

    async def submit(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("question"), str):
            return web.Response(status=400, text=_BAD_BODY, content_type="application/json")
        job_id = f"job_id_{next(ids)}"
        return web.Response(
            body=json.dumps({"job_id": job_id}).encode(),
            content_type="application/json",
            headers={"Location": f"/api/get_results/{job_id}"},
        )

    async def get_results(_: web.Request) -> web.Response:
        return web.Response(body=CANNED_RESULT, content_type="application/json")

    async def canned(_: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.add_routes(
        [web.post("/api/best5", submit), web.get("/api/get_results/{job_id}", get_results)]
    )
    if answer is not None:
        app.router.add_get("/api/answer", canned)
    return app


async def serve(host: str, port: int, answer: bytes | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    runner = web.AppRunner(create_app(answer), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        urls = ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses)
        sys.stdout.write(f"bare aiohttp serving on {urls}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 picks a free one)")
    parser.add_argument("--answer", type=Path, help="a file whose bytes GET /api/answer serves")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.answer.read_bytes() if args.answer else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
