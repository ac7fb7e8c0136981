"""Headless Chromium driven by Selenium, for the tests and benchmarks that use a real browser.

Debian's ``chromium`` and ``chromium-driver`` are installed by ``scripts/ensure-chromium``
(``make unit`` runs it); the Python bindings come with the ``test`` extra. The driver's
path is given, so Selenium looks nothing up and downloads nothing.

PYTEST_DONT_REWRITE: imported by test modules and benchmarks; it has no assert statements.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextlib.contextmanager
def chromium(
    workdir: Path, downloads: Path | None = None, size: str = "1000,900"
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its profile and driver log in ``workdir``; downloads are saved
    into ``downloads`` without asking."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            raise RuntimeError(f"{program} is missing: scripts/ensure-chromium installs it")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    arguments = [
        "--headless=new",
        f"--window-size={size}",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-proxy-server",
    ]
    if os.geteuid() == 0:
        arguments.append("--no-sandbox")  # Chromium refuses to start its sandbox as root
    for argument in arguments:
        options.add_argument(argument)
    if downloads is not None:
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(downloads),
                "download.prompt_for_download": False,
                "download.directory_upgrade": True,
            },
        )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def finished_download(folder: Path, name: str | None = None) -> Path | None:
    """The folder's only entry once it is complete (and called ``name``, when given): Chromium
    writes a hidden temporary file, then ``NAME.crdownload``, and renames that when done."""
    entries = list(folder.iterdir())
    if len(entries) != 1 or entries[0].stat().st_size == 0:
        return None
    entry = entries[0]
    if entry.name.startswith(".") or entry.name.endswith(".crdownload"):
        return None
    if name is not None and entry.name != name:
        return None
    return entry


def full_screenshot(driver: WebDriver, path: Path) -> Path:
    """A PNG of the whole page, not only the window (Chromium's DevTools protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
