"""The License page for Cockpit (``cockpit/``), end to end in a real browser.

Debian's ``cockpit-ws`` serves the page from the test's ``XDG_DATA_HOME/cockpit/`` with
``--local-session=cockpit-bridge`` on loopback (no systemd, no login: see
``support/cockpit.py``); headless Chromium loads it and Selenium drives it. The page speaks
varlink to the real daemon's socket through a Cockpit channel, the daemon talks to the
real reference portal. The tests wait for states of the page (its DOM), never for time.

Screenshots of each state are written to ``build/test-artifacts/cockpit/TEST/``
(replaced at each run), numbered in the order they were taken; a wait that times out
leaves one too, with the page's text and the browser's console in the failure.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait
from support.browser import chromium, finished_download, full_screenshot
from support.cluster import Cluster
from support.cockpit import CockpitWs
from support.daemon import DaemonProcess
from support.licenses import TENANT, DaemonFactory, start_and_settle
from support.portal import PortalProcess
from support.unprivileged import NOBODY, public_dir

from paragon_licensed import licensefile as lf
from paragon_licensed.interface import errors

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "build" / "test-artifacts" / "cockpit"
WAIT = 60.0  # seconds a state of the page may take to appear on a busy machine
ADMIN_GROUP = "paragon-license"  # control.admin_group's default


def when(timestamp: str) -> str:
    """A time as the page (and ctl) shows it."""
    return timestamp.replace("T", " ").replace("Z", " UTC")


class Page:
    """The License page in one browser, with the waits and reads the tests need."""

    def __init__(self, browser: webdriver.Chrome, artifacts: Path) -> None:
        self.browser = browser
        self.artifacts = artifacts
        self.shots = 0

    # -- waiting and looking

    def screenshot(self, name: str) -> Path:
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-{name}.png"
        return full_screenshot(self.browser, path)

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """Wait until ``condition()`` is truthy; on a timeout fail with the page as it is."""

        def check(_: WebDriver) -> Any:
            try:
                return condition()
            except StaleElementReferenceException:
                return False  # re-rendered while being read: look again

        try:
            return WebDriverWait(self.browser, timeout, poll_frequency=0.1).until(check)
        except TimeoutException:
            self.screenshot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())[:40]}")
            console = [e.get("message") for e in self.browser.get_log("browser")]  # type: ignore[no-untyped-call]
            raise AssertionError(
                f"waited {timeout:g} s for {what}; the page says:\n{self.body()}\nconsole: {console}"
            ) from None

    def body(self) -> str:
        return str(self.browser.find_element(By.TAG_NAME, "body").text)

    def element(self, element_id: str) -> Any:
        return self.browser.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return str(self.element(element_id).text)

    def data(self, element_id: str, name: str) -> str:
        return str(self.element(element_id).get_attribute(f"data-{name}") or "")

    def open(self, url: str) -> None:
        self.browser.get(url)
        self.wait(lambda: self.data_of_body("loaded") == "true", "the page to load")

    def data_of_body(self, name: str) -> str:
        return str(self.browser.find_element(By.TAG_NAME, "body").get_attribute(f"data-{name}") or "")

    # -- the license

    def license(self) -> dict[str, str]:
        return {
            "tenant": self.data("license", "tenant"),
            "state": self.data("license", "state"),
            "license_id": self.data("license", "license-id"),
            "valid_until": self.data("license", "valid-until"),
        }

    def wait_license(self, what: str, **expected: str) -> dict[str, str]:
        return dict(
            self.wait(
                lambda: (
                    (lic := self.license())
                    and all(lic[key] == value for key, value in expected.items())
                    and lic
                ),
                f"{what} ({expected})",
            )
        )

    # -- operations

    def start(self, element_id: str) -> int:
        """Click a button (or submit a form) that runs an operation; return its number."""
        before = int(self.data("operation", "seq") or 0)
        self.element(element_id).click()
        return before + 1

    def finished(self, seq: int, what: str) -> dict[str, Any]:
        """The operation's end: its state (done or failed), steps, result and error."""
        self.wait(
            lambda: (
                self.data("operation", "seq") == str(seq)
                and self.data("operation", "state") in ("done", "failed")
            ),
            f"{what} to finish",
        )
        return {
            "state": self.data("operation", "state"),
            "error_name": self.data("operation", "error"),
            "steps": [li.text for li in self.browser.find_elements(By.CSS_SELECTOR, "#operation-steps li")],
            "result": self.text("operation-result"),
            "error": self.text("operation-error"),
            "download": self.data("operation", "download"),
        }

    # -- other parts

    def nodes(self) -> dict[str, dict[str, str]]:
        rows = self.browser.find_elements(By.CSS_SELECTOR, "#nodes-body tr")
        return {
            str(row.get_attribute("data-node")): {
                "online": str(row.get_attribute("data-online")),
                "state": row.find_element(By.CLASS_NAME, "node-online").text,
                "last_seen": row.find_element(By.CLASS_NAME, "node-last-seen").text,
                "role": row.find_element(By.CLASS_NAME, "node-coordinator").text,
            }
            for row in rows
        }

    def notifications(self) -> list[dict[str, str]]:
        items = self.browser.find_elements(By.CSS_SELECTOR, "#notifications-list li.notification")
        return [
            {
                "id": str(item.get_attribute("data-id")),
                "kind": str(item.get_attribute("data-kind")),
                "acked": str(item.get_attribute("data-acked")),
                "text": item.text,
            }
            for item in items
        ]

    def tenant_rows(self) -> list[tuple[str, str]]:
        rows = self.browser.find_elements(By.CSS_SELECTOR, "#tenants-body tr")
        return [(str(r.get_attribute("data-tenant")), str(r.get_attribute("data-state"))) for r in rows]


# -- fixtures


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def page(tmp_path: Path, downloads: Path, artifacts: Path) -> Iterator[Page]:
    with chromium(tmp_path, downloads, size="1280,1400") as browser:
        yield Page(browser, artifacts)


@pytest.fixture
def cockpit(tmp_path: Path) -> Iterator[CockpitWs]:
    """cockpit-ws serving the page in the session of the user running the tests (root)."""
    with CockpitWs(tmp_path / "cockpit") as server:
        yield server


@pytest.fixture
def public() -> Iterator[Path]:
    """A folder every user may enter, for sockets and homes an unprivileged user reaches."""
    with public_dir() as folder:
        yield folder


def settled_page(page: Page, cockpit: CockpitWs, daemon: DaemonProcess, tenant: str | None = None) -> None:
    page.open(cockpit.page_url(daemon.socket, tenant))


# -- the tests


def test_license_shown_reactivated_online_and_notifications_live(
    portal: PortalProcess, daemon_factory: DaemonFactory, cockpit: CockpitWs, page: Page
) -> None:
    portal.add_order("KEY-PAGE", TENANT, features={"printers": "250"})
    node = daemon_factory(portal)
    node.ctl("license", "activate", "--key", "KEY-PAGE", check=True)
    before = node.ctl_json("license", "info")

    settled_page(page, cockpit, node)
    shown = page.wait_license("the activated license", tenant=TENANT, state="active")
    assert shown["license_id"] == before["license_id"]
    assert page.text("license-valid-until") == when(before["valid_until"])
    assert page.text("license-support-id") == before["support_id"]
    assert before["computer_ids"][0] in page.text("license-computer-ids")
    assert "printers=250" in page.text("license-orders")
    assert page.tenant_rows() == [(TENANT, "active")]
    assert page.nodes()["node-1"]["online"] == "true"
    assert "Nothing blocks a reactivation" in page.text("blockers")
    page.screenshot("active")

    # Online reactivation from the page: the steps as they happen, then the new license.
    seq = page.start("reactivate-online")
    done = page.finished(seq, "the online reactivation")
    assert done["state"] == "done", done
    assert any("reactivating every order of tenant default" in step for step in done["steps"]), done
    after = node.ctl_json("license", "info")
    assert after["license_id"] != before["license_id"]
    assert f"Tenant {TENANT}: reactivated. License {after['license_id']}" in done["result"]
    page.wait_license(
        "the reactivated license", license_id=after["license_id"], valid_until=after["valid_until"]
    )
    assert page.text("license-valid-until") == when(after["valid_until"])
    page.screenshot("reactivated-online")

    # A reactivation made elsewhere (ctl) reaches the page through Watch: its notification and
    # the new license appear without a reload.
    known = {n["id"] for n in page.notifications()}
    node.ctl("license", "reactivate", check=True)
    latest = node.ctl_json("license", "info")
    page.wait_license("the license reactivated by ctl", license_id=latest["license_id"])
    newest = node.ctl_json("notifications")[0]
    page.wait(
        lambda: str(newest["id"]) in {n["id"] for n in page.notifications()} - known,
        "the notification of the reactivation made with ctl",
    )
    page.screenshot("notified-live")

    # Acknowledge every notification: read on the page and for ctl.
    assert node.ctl_json("notifications", "--unread")
    page.element("notifications-ack-all").click()
    page.wait(
        lambda: page.notifications() and all(n["acked"] == "true" for n in page.notifications()),
        "every notification acknowledged",
    )
    assert page.text("notifications-unread") == "all read"
    assert node.ctl_json("notifications", "--unread") == []
    page.screenshot("acknowledged")

    # The daemon restarts: the page says live updates stopped, then follows the new daemon.
    node.stop()
    page.wait(lambda: page.element("connection").is_displayed(), "the stopped daemon reported")
    assert "Live updates stopped" in page.text("connection") or "does not answer" in page.text("connection")
    page.screenshot("daemon-stopped")
    start_and_settle(node)
    page.wait(lambda: not page.element("connection").is_displayed(), "the page reconnected")
    node.ctl("license", "reactivate", check=True)
    restarted = node.ctl_json("license", "info")["license_id"]
    page.wait_license("the license reactivated after the restart", license_id=restarted)


def test_offline_reactivation_round_trip_through_download_and_upload(
    portal: PortalProcess,
    daemon_factory: DaemonFactory,
    cockpit: CockpitWs,
    page: Page,
    downloads: Path,
    tmp_path: Path,
) -> None:
    portal.add_order("KEY-OFFLINE", TENANT)
    node = daemon_factory(portal)
    node.ctl("license", "activate", "--key", "KEY-OFFLINE", check=True)
    before = node.ctl_json("license", "info")
    settled_page(page, cockpit, node)
    page.wait_license("the activated license", license_id=before["license_id"])

    seq = page.start("reactivate-offline")
    done = page.finished(seq, "the offline request")
    assert done["state"] == "done", done
    request = page.wait(
        lambda: finished_download(downloads, done["download"]), f"the download {done['download']}"
    )
    assert request.name.startswith(f"paragon-license-request-{TENANT}-reactivation-")
    request_id = lf.decode_request(request.read_text())["request_id"]
    assert request_id in request.name
    page.screenshot("offline-request-downloaded")

    # The portal's offline process, as an operator does it on a machine that reaches it.
    response = tmp_path / "response.txt"
    portal.process_offline(request, response)
    [answered] = portal.requests(request_id=request_id)
    assert answered.license_id is not None

    before_upload = int(page.data("operation", "seq"))
    page.element("offline-response").send_keys(str(response))
    done = page.finished(before_upload + 1, "the upload of the portal's response")
    assert done["state"] == "done", done
    assert "license imported" in done["result"], done
    page.wait_license("the license of the response", license_id=answered.license_id, state="active")
    assert node.ctl_json("license", "info")["license_id"] == answered.license_id
    page.screenshot("offline-response-installed")

    # A file that is not a response: the daemon's reason, on the page.
    wrong = tmp_path / "not-a-license.txt"
    wrong.write_text("hello, this is not a license\n")
    seq = int(page.data("operation", "seq")) + 1
    page.element("offline-response").send_keys(str(wrong))
    failed = page.finished(seq, "the upload of a wrong file")
    assert failed["state"] == "failed"
    assert failed["error_name"] == "InvalidLicense", failed
    assert failed["error"].startswith("The license was rejected ("), failed
    assert page.license()["license_id"] == answered.license_id
    page.screenshot("wrong-file-refused")


def test_a_stopped_node_blocks_reactivation_until_its_license_is_transferred(
    portal: PortalProcess, tmp_path: Path, cockpit: CockpitWs, page: Page
) -> None:
    cluster = Cluster(tmp_path / "cluster", f"sqlite://{tmp_path / 'store.db'}", portal)
    try:
        cluster.start("node-1", "node-2")
        cluster.wait_online({"node-1", "node-2"})
        cluster.wait_coordinator()
        cluster.activate(via=cluster.nodes["node-1"])
        node, gone = cluster.nodes["node-1"], cluster.nodes["node-2"]
        gone_id = gone.ctl_json("identity")["computer_id"]

        settled_page(page, cockpit, node)
        page.wait_license("the cluster's license", state="active")
        page.wait(
            lambda: {n: v["online"] for n, v in page.nodes().items()} == {"node-1": "true", "node-2": "true"},
            "both nodes online",
        )
        page.screenshot("cluster-online")

        # node-2 stops: the page learns it from Watch (nodes_changed), no reload.
        gone.stop()
        page.wait(lambda: page.nodes()["node-2"]["online"] == "false", "node-2 shown offline")
        offline = next(n for n in cluster.node_list(node) if n["name"] == "node-2")
        assert page.nodes()["node-2"]["state"] == "offline"
        blockers = page.text("blockers")
        assert f"node-2 (last seen {offline['last_seen']})" in blockers
        assert "Cluster (re)activation needs every management node online" in blockers

        seq = page.start("reactivate-online")
        refused = page.finished(seq, "the refused reactivation")
        assert refused["state"] == "failed"
        assert refused["error_name"] == "NodesOffline"
        assert (
            "Cluster (re)activation needs every management node online; offline: node-2 (last seen"
            in (refused["error"])
        )
        assert page.license()["state"] == "active"
        page.screenshot("refused-node-offline")

        # node-2 is gone for good: forgotten, the tenant needs a transfer, made from the page.
        node.ctl("nodes", "forget", "node-2", check=True)
        page.wait_license("the license waiting for its transfer", state="needs_transfer")
        page.wait(lambda: "node-2" not in page.nodes(), "node-2 gone from the nodes")
        candidates = [
            o.get_attribute("value")
            for o in page.browser.find_elements(By.CSS_SELECTOR, "#transfer-candidates option")
        ]
        assert candidates == [gone_id]
        page.element("transfer-from").send_keys(gone_id)
        seq = page.start("transfer")
        moved = page.finished(seq, "the transfer")
        assert moved["state"] == "done", moved
        assert f"Tenant {TENANT}: transferred." in moved["result"]
        page.wait_license("the transferred license", state="active")
        shown_ids = page.browser.find_elements(By.CSS_SELECTOR, "#license-computer-ids li")
        assert [li.text.split()[0] for li in shown_ids] == [node.ctl_json("identity")["computer_id"]]
        assert node.ctl_json("license", "info")["computer_ids"] == [node.ctl_json("identity")["computer_id"]]
        page.screenshot("transferred")
    finally:
        cluster.close()


def test_an_unprivileged_user_sees_everything_and_gets_the_daemons_refusal(
    portal: PortalProcess, daemon_factory: DaemonFactory, public: Path, page: Page
) -> None:
    portal.add_order("KEY-NOBODY", TENANT)
    socket_path = str(public / "run" / "io.paragon.License")
    (public / "run").mkdir()
    (public / "run").chmod(0o755)
    node = daemon_factory(portal, config={"control": {"socket": socket_path}}, start=False)
    node.socket = socket_path  # where ctl and the page reach it: a folder nobody may enter
    start_and_settle(node)
    node.ctl("license", "activate", "--key", "KEY-NOBODY", check=True)
    before = node.ctl_json("license", "info")
    with CockpitWs(public / "cockpit-nobody", uid=NOBODY) as server:
        page.open(server.page_url(socket_path))
        page.wait_license("the license, read as nobody", license_id=before["license_id"], state="active")
        assert page.nodes()["node-1"]["online"] == "true"
        page.wait(lambda: page.notifications(), "the notifications, read as nobody")

        seq = page.start("reactivate-online")
        refused = page.finished(seq, "the refused reactivation")
        assert refused["state"] == "failed"
        assert refused["error_name"] == "PermissionDenied"
        assert (
            refused["error"]
            == errors.PermissionDenied(method="Reactivate", required_group=ADMIN_GROUP).sentence()
        )
        assert f"group '{ADMIN_GROUP}'" in refused["error"]
        page.screenshot("reactivation-refused")

        page.element("notifications-ack-all").click()
        page.wait(
            lambda: "Permission denied" in page.text("notifications-error"), "the refused acknowledgement"
        )
        assert f"group '{ADMIN_GROUP}'" in page.text("notifications-error")
        assert node.ctl_json("license", "info")["license_id"] == before["license_id"]
        assert node.ctl_json("notifications", "--unread")
        page.screenshot("acknowledge-refused")

        # A site that restricts the socket to a group (SocketMode=0660): the page says so.
        with socket.socket(socket.AF_UNIX) as restricted:
            restricted.bind(str(public / "restricted"))
            restricted.listen()
            (public / "restricted").chmod(0o600)
            page.browser.get("about:blank")
            page.open(server.page_url(str(public / "restricted")))
            page.wait(lambda: page.element("connection").is_displayed(), "the refused connection")
            assert page.text("connection").startswith(
                f"This user may not connect to the daemon's socket {public / 'restricted'} (access denied)"
            )
    assert "permission denied method=Reactivate" in node.log()


def test_many_tenants_paged_and_filtered_activation_with_a_key_and_the_tenant_check(
    portal_factory: Callable[..., PortalProcess],
    daemon_factory: DaemonFactory,
    cockpit: CockpitWs,
    page: Page,
) -> None:
    # Licenses of one day: due for the tenant check (expiring within its 2 days).
    portal = portal_factory(serve_args=["--license-days", "1"])
    names = [f"tenant-{i:02d}" for i in range(1, 24)]
    for name in names:
        portal.add_order(f"KEY-{name}", name)
    node = daemon_factory(portal, config={"tenants": [{"id": n} for n in names]})
    for name in names[:3]:
        node.ctl("license", "activate", "--tenant", name, "--key", f"KEY-{name}", check=True)
    licensed_state = node.tenant_state(names[0])["state"]

    settled_page(page, cockpit, node, tenant=names[4])
    page.wait(lambda: page.text("tenants-range") == "1–20 of 23", "the first page of tenants")
    assert [t for t, _ in page.tenant_rows()] == names[:20]
    assert page.license()["tenant"] == names[4]
    page.wait(lambda: "has no license yet" in page.text("license-error"), "the unlicensed tenant's message")
    page.screenshot("first-page")

    page.element("tenants-next").click()
    page.wait(lambda: page.text("tenants-range") == "21–23 of 23", "the second page of tenants")
    assert [t for t, _ in page.tenant_rows()] == names[20:]
    page.element("tenants-previous").click()
    page.wait(lambda: page.text("tenants-range") == "1–20 of 23", "the first page again")

    # Filtered by state: the licensed three.
    Select(page.element("tenant-filter")).select_by_value(licensed_state)
    page.wait(
        lambda: [t for t, _ in page.tenant_rows()] == names[:3], f"the tenants in state {licensed_state}"
    )
    page.screenshot("filtered")

    # Activation with a key, for the tenant shown: it joins the filtered list by itself (Watch).
    page.element("activation-key").send_keys(f"KEY-{names[4]}")
    seq = page.start("activate")
    done = page.finished(seq, "the activation with a key")
    assert done["state"] == "done", done
    assert any("activating tenant" in step for step in done["steps"]), done
    assert f"Tenant {names[4]}: activated." in done["result"]
    page.wait_license("the activated tenant", tenant=names[4], state=licensed_state)
    page.wait(lambda: [t for t, _ in page.tenant_rows()] == [*names[:3], names[4]], "four licensed tenants")

    # The tenant check: its progress, then its summary.
    seq = page.start("check-run")
    checked = page.finished(seq, "the tenant check")
    assert checked["state"] == "done", checked
    # Every tenant looked at; the licensed ones due (a day left), the others have no key to use.
    assert page.data("operation-progress", "done") == page.data("operation-progress", "total") == "23"
    assert checked["steps"], checked
    assert checked["result"].startswith("4 reactivated, 0 failed, 19 skipped. 23 tenant(s) looked at."), (
        checked
    )
    details = page.text("operation-details").splitlines()  # the skipped ones are folded away
    assert sorted(line.split(",")[0] for line in details if ": reactivated" in line) == [
        f"{name}: reactivated" for name in [*names[:3], names[4]]
    ]
    page.screenshot("tenant-check")


def test_without_a_daemon_the_page_says_so_then_finds_it_and_errors_read_as_for_ctl(
    portal: PortalProcess, daemon_factory: DaemonFactory, cockpit: CockpitWs, page: Page, tmp_path: Path
) -> None:
    absent = str(tmp_path / "later" / "io.paragon.License")
    page.open(cockpit.page_url(absent))
    page.wait(lambda: page.element("connection").is_displayed(), "the connection problem")
    assert f"The daemon does not answer on {absent}" in page.text("connection")
    page.screenshot("no-daemon")

    # The daemon starts after the page was opened: the page finds it by itself.
    portal.add_order("KEY-LATER", TENANT)
    node = daemon_factory(portal, config={"control": {"socket": absent}}, start=False)
    node.socket = absent
    start_and_settle(node)
    node.ctl("license", "activate", "--key", "KEY-LATER", check=True)
    page.wait_license("the license of the daemon started later", tenant=TENANT, state="active")
    page.wait(lambda: not page.element("connection").is_displayed(), "the connection problem gone")
    page.screenshot("daemon-found")

    # Every error's sentence on the page is ctl's (common/interface/errors.py).
    sample: dict[str, Any] = {
        "nodes": [
            {"name": "node-2", "computer_id": "c2", "last_seen": "2026-01-02T03:04:05Z"},
            {"name": "node-3", "computer_id": "c3", "last_seen": ""},
        ],
        "url": "https://portal.example/api/v1",
        "reason": "timed out",
        "code": "unknown_activation_key",
        "message": "no such key",
        "location": "https://elsewhere.example/",
        "detail": "the signature does not match",
        "expected": "abc",
        "actual": "def",
        "tenant": "acme",
        "changed": "c1",
        "command": "paragon-licensed ctl license transfer --replace c1",
        "method": "Reactivate",
        "required_group": "paragon-license",
        "tenants": ["acme", "globex"],
        "name": "node-2",
        "last_seen": "2026-01-02T03:04:05Z",
        "key": "product.build",
        "computer_id": "c1",
        "operation": "Reactivate",
        "seconds": 300,
        "scope": "user",
        "limit": 32,
        "reference": "ref-1",
        "parameter": "tenant",
        "interface": "io.example",
    }
    cases = [(name, sample) for name in errors.ERRORS if not name.endswith(".DuplicateComputerId")]
    cases += [("io.paragon.License.DuplicateComputerId", {**sample, "nodes": ["node-2", "node-3"]})]
    cases += [
        ("io.paragon.License.TenantRequired", {"tenants": []}),
        ("io.paragon.License.ConnectionLimit", {"scope": "total", "limit": 256}),
        ("io.paragon.License.NodesOffline", {"nodes": []}),
    ]
    page_sentences = page.browser.execute_async_script(
        """
        const [cases, done] = arguments;
        import("./errors.js").then(m => done({
            names: Object.keys(m.SENTENCES),
            sentences: cases.map(([name, parameters]) => m.sentence(name, parameters)),
        }), e => done({error: String(e)}));
        """,
        cases,
    )
    assert "error" not in page_sentences, page_sentences
    assert sorted(page_sentences["names"]) == sorted(errors.ERRORS)
    for (name, parameters), shown in zip(cases, page_sentences["sentences"], strict=True):
        expected = errors.error_from_reply(name, json.loads(json.dumps(parameters))).sentence()
        assert shown == expected, name
