"""`python -m bench.screenshots`: the web page rendered to PNG by headless Chromium, for the README.

Starts the real server (run.py) on the CDC export when the shared data folder has it (else on
the demo data), opens the page on a chosen state, and writes two pictures: the map beside the
ranking, and the trend with the comparison. Also prints the page's weight and the browser's
first paint, measured on the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from selenium.webdriver.support.ui import WebDriverWait

from bench import browser
from bench.servers import cdc_file, lestats_server, scratch_dir
from lestats.http.page import StaticFiles

if TYPE_CHECKING:
    from collections.abc import Sequence

    from selenium.webdriver.chrome.webdriver import WebDriver

OUT = browser.REPO / "docs" / "img"
VIEW = "?state=OH&cmp=location&a=OH&b=US"
"""The view pictured: Ohio chosen (its trend), compared with the nation, latest year, Total."""
SHOTS = {
    "page-map-ranking.png": ("map-section", "ranking-section"),
    "page-trend-compare.png": ("trend-section", "compare-section"),
}
"""Each picture and the page sections it spans."""
WAIT_SECONDS = 30.0


def capture(driver: WebDriver, ids: Sequence[str], path: Path) -> None:
    """Write a PNG of the smallest rectangle holding the elements `ids`."""
    box = driver.execute_script(
        """
        const rects = arguments[0].map((id) => document.getElementById(id).getBoundingClientRect());
        const left = Math.min(...rects.map((r) => r.left)) + window.scrollX - 4;
        const top = Math.min(...rects.map((r) => r.top)) + window.scrollY - 4;
        const right = Math.max(...rects.map((r) => r.right)) + window.scrollX + 4;
        const bottom = Math.max(...rects.map((r) => r.bottom)) + window.scrollY + 4;
        return {x: left, y: top, width: right - left, height: bottom - top};
        """,
        list(ids),
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**box, "scale": 1}},
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def render(base_url: str, out: Path, profile: Path) -> dict[str, float]:
    """Open the page, wait until it has drawn, write the pictures; the browser's timings."""
    driver = browser.chromium(profile, width=1400, height=1100)
    try:
        driver.get(f"{base_url}/{VIEW}")
        WebDriverWait(driver, WAIT_SECONDS).until(
            lambda d: d.execute_script("return document.documentElement.dataset.draws") == "1"
        )
        timings: dict[str, float] = driver.execute_script(
            """
            const at = (name) => performance.getEntriesByName(name)[0].startTime;
            return {paint: at("first-contentful-paint"), drawn: at("drawn")};
            """
        )
        out.mkdir(parents=True, exist_ok=True)
        for name, ids in SHOTS.items():
            capture(driver, ids, out / name)
        return timings
    finally:
        driver.quit()


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve, render, print."""
    parser = argparse.ArgumentParser(prog="python -m bench.screenshots", description=__doc__)
    parser.add_argument("--data", type=Path, default=cdc_file(), help="CSV to serve")
    parser.add_argument("--out", type=Path, default=OUT, help="directory of the PNG files")
    parser.add_argument("--url", help="picture this running server instead of starting one")
    args = parser.parse_args(argv)
    problem = browser.missing()
    if problem:
        raise SystemExit(problem)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        if args.url:
            timings = await asyncio.to_thread(render, args.url, args.out, Path(profile))
        else:
            with scratch_dir("screenshots-") as workdir:
                async with lestats_server(workdir, data=args.data) as server:
                    timings = await asyncio.to_thread(render, server.url, args.out, Path(profile))
    plain, zipped = StaticFiles.read().weight()
    print(f"served: {args.url or args.data or 'demo dataset'}")
    print(f"page weight: {plain / 1024:.1f} KiB as is, {zipped / 1024:.1f} KiB gzipped")
    print(f"first contentful paint {timings['paint']:.0f} ms, drawn {timings['drawn']:.0f} ms")
    for name in SHOTS:
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    asyncio.run(main())
