"""The offline flow end to end in a real browser: headless Chromium driven by Selenium.

The daemon writes a reactivation request (`ctl license reactivate --offline --out`), the
browser uploads it on the reference portal's offline activation page and saves the
response file into the test's folder, `ctl license import` installs it, and the tenant
is active on that license. A file that is not a request shows its error on the page.
Screenshots of both states are left in the test's temporary folder
(``offline-page-downloaded.png``, ``offline-page-error.png``).

Debian's ``chromium`` and ``chromium-driver`` are installed by ``scripts/ensure-chromium``
(``make unit`` runs it), the Python bindings come with the ``test`` extra; the browser is
started by ``support/browser.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from support.browser import chromium, finished_download
from support.licenses import TENANT, DaemonFactory
from support.portal import PortalProcess

from paragon_licensed import licensefile as lf

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WAIT = 30.0  # seconds a browser state may take to appear


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(tmp_path: Path, downloads: Path) -> Iterator[WebDriver]:
    """Headless Chromium saving downloads into ``downloads`` without asking."""
    with chromium(tmp_path, downloads) as driver:
        yield driver


def upload(browser: WebDriver, page: str, file: Path) -> None:
    browser.get(page)
    WebDriverWait(browser, WAIT).until(expected_conditions.presence_of_element_located((By.ID, "request")))
    browser.find_element(By.ID, "request").send_keys(str(file))
    browser.find_element(By.ID, "submit").click()


def test_offline_reactivation_through_the_page_in_a_browser(
    portal: PortalProcess,
    daemon_factory: DaemonFactory,
    browser: WebDriver,
    downloads: Path,
    tmp_path: Path,
) -> None:
    portal.add_order("KEY-PAGE", TENANT)
    node = daemon_factory(portal)
    node.ctl("license", "activate", "--key", "KEY-PAGE", check=True)
    before = node.ctl_json("license", "info")
    request = tmp_path / "request.txt"
    node.ctl("license", "reactivate", "--offline", "--out", str(request), check=True)
    request_id = lf.decode_request(request.read_text())["request_id"]
    page = f"http://127.0.0.1:{portal.port}/offline"

    upload(browser, page, request)
    # The response is saved under the name the portal gave it: wait for that file to be complete.
    name = f"paragon-license-{TENANT}-reactivation-{request_id}.txt"
    response = WebDriverWait(browser, WAIT).until(
        lambda _: finished_download(downloads, name),
        message=f"no finished download {name} in {downloads}",
    )
    browser.save_screenshot(str(tmp_path / "offline-page-downloaded.png"))
    assert browser.find_elements(By.ID, "error") == []

    [answered] = portal.requests(request_id=request_id)
    assert (answered.source, answered.status) == ("offline", 200)
    imported = node.ctl("license", "import", str(response))
    assert imported.returncode == 0, imported.stderr
    after = node.ctl_json("license", "info")
    assert after["state"] == "active"
    assert after["license_id"] == answered.license_id != before["license_id"]
    tenant = node.tenant_state(TENANT)
    assert tenant["state"] == "active"

    # A file that is not a request: the page says so, in words, and nothing downloads.
    wrong = tmp_path / "not-a-request.txt"
    wrong.write_text("hello, this is not a license request\n")
    upload(browser, page, wrong)
    error = WebDriverWait(browser, WAIT).until(
        expected_conditions.visibility_of_element_located((By.ID, "error"))
    )
    browser.save_screenshot(str(tmp_path / "offline-page-error.png"))
    assert browser.find_element(By.ID, "problem-code").text == "bad_request"
    assert "The request is not valid" in error.text
    assert "not-a-request.txt: not a license request file" in error.text
    assert list(downloads.iterdir()) == [response]
    for name in ("offline-page-downloaded.png", "offline-page-error.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
