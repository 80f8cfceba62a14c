"""Headless Chromium for the web page's tests and screenshots: Debian's browser and chromedriver.

Selenium drives it through chromedriver, which Debian builds from the same source and version as
the browser, so the two always speak the same protocol; nothing is downloaded (Selenium Manager
is never asked: both paths are given). The flags keep Chromium off the network: without the
background-networking ones it tries to reach Google's services, which a closed network refuses.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


def _program(*names: str) -> str | None:
    """The first of `names` found on the PATH."""
    return next((found for name in names if (found := shutil.which(name))), None)


CHROMIUM = _program("chromium", "chromium-browser")
"""The browser: Debian's `chromium` (`/usr/bin/chromium`), or another distribution's name."""
CHROMEDRIVER = _program("chromedriver")
"""Its driver, of the same version (Debian's `chromium-driver` package)."""
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
REPO = Path(__file__).resolve().parent.parent


def missing() -> str | None:
    """What is missing to run the browser, as a sentence, or None."""
    programs = (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
    absent = ", ".join(name for name, path in programs if path is None)
    if absent:
        return f"{absent} not on the PATH: `make system-packages` installs Debian's"
    return None


def chromium(profile: Path, *, width: int = 1400, height: int = 1000) -> WebDriver:
    """A headless Chromium with a fresh profile in `profile`, its console and network logged.

    `get_log("browser")` then gives the console, `get_log("performance")` the DevTools network
    events (each read empties the log).
    """
    if CHROMIUM is None or CHROMEDRIVER is None:
        raise RuntimeError(missing())
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    # Debian's first tab is its search engine's start page, which cannot load here: leave it
    # before anything is measured (the navigation waits until the old page is gone).
    driver.get("about:blank")
    return driver


