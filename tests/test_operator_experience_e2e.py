"""End to end: what a new administrator reads, exactly, on the way through the tour.

Each test runs the real `paragon-licensed ctl` (or the program itself) against a real
daemon and the reference portal and compares its output line for line, in human form
and as JSON: the offline hints, notification texts, importing twice or the wrong
file, a tenant check with nothing due, check-config without a file, an unreachable
socket, the help texts, a consistent status, folders created under a umask of 0, and
the portal's refusal of a first activation.
"""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.daemon import DAEMON, DaemonProcess, toml
from support.licenses import TENANT, DaemonFactory, start_and_settle
from support.portal import PortalProcess

from paragon_licensed.daemon.dirs import make_dirs

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = pytest.mark.e2e


def ctl(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """ctl as an administrator types it: with --config, not --socket."""
    command = [DAEMON, "ctl", "--config", str(daemon.config_path), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def node(portal: PortalProcess, daemon_factory: DaemonFactory) -> DaemonProcess:
    portal.add_order("KEY-UX", TENANT)
    daemon = daemon_factory(portal)
    daemon.ctl("license", "activate", "--key", "KEY-UX", check=True)
    return daemon


def test_the_offline_hint_names_the_page_and_the_config(node: DaemonProcess, portal: PortalProcess) -> None:
    request = node.root / "request.txt"
    result = ctl(node, "license", "reactivate", "--offline", "--out", str(request))
    assert result.returncode == 0, result.stderr
    page = portal.url.replace("/api/v1", "/offline")
    assert result.stdout.splitlines() == [
        f"Offline reactivation request for tenant {TENANT} written to {request}.",
        "Next, on a machine that reaches the License Portal, upload it on the portal's offline",
        f"activation page, {page}, and save the response it gives you.",
        "Then import the response here with:",
        f"  paragon-licensed ctl --config {node.config_path} license import RESPONSE_FILE",
    ]
    as_json = json.loads(
        ctl(node, "--json", "license", "reactivate", "--offline", "--out", str(request)).stdout
    )
    assert as_json["file"] == str(request)
    assert as_json["tenant"] == TENANT


def test_a_notification_does_not_repeat_its_title(node: DaemonProcess) -> None:
    node.ctl("license", "reactivate", check=True)
    notes = node.ctl_json("notifications")
    reactivated = [n for n in notes if n["title"] == "License reactivated"]
    assert reactivated, notes
    assert reactivated[0]["text"].startswith("Now valid until ")
    table = ctl(node, "notifications").stdout
    assert "License reactivated: Now valid until " in table
    assert "License reactivated: License reactivated" not in table


def _stored_document(node: DaemonProcess) -> str:
    from support.tenant_check import read

    def latest(tx: Any) -> str:
        return str(tx.scalar("SELECT document FROM licenses ORDER BY id DESC LIMIT 1"))

    return read(node, latest)


def test_importing_the_same_license_twice_says_once_that_nothing_changed(node: DaemonProcess) -> None:
    license_file = node.root / "license.txt"
    license_file.write_text(_stored_document(node))
    license_id = node.ctl_json("license", "info")["license_id"]
    result = ctl(node, "license", "import", str(license_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"  verifying the license for tenant {TENANT}",
        f"  license {license_id} is already installed for tenant {TENANT}",
        f"Tenant {TENANT}: nothing changed.",
    ]
    assert result.stderr == ""
    outcome = json.loads(ctl(node, "--json", "license", "import", str(license_file)).stdout)
    assert outcome["changed"] is False
    assert outcome["warnings"] == []


def test_importing_the_request_file_says_what_to_do_with_it(node: DaemonProcess) -> None:
    request = node.root / "request.txt"
    ctl(node, "license", "reactivate", "--offline", "--out", str(request))
    before = node.ctl_json("license", "info")
    result = ctl(node, "license", "import", str(request))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"this is the offline reactivation request for tenant {TENANT}" in result.stderr
    assert "offline activation page (/offline on the portal)" in result.stderr
    assert "not a readable Paragon license" not in result.stderr
    assert node.ctl_json("license", "info") == before


def test_a_tenant_check_with_nothing_due_says_so_and_when_the_next_run_is(node: DaemonProcess) -> None:
    result = ctl(node, "tenants", "check")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1 tenant was looked at; none was due (expired, expiring or not properly licensed)."
    assert lines[1].startswith("The next scheduled run is at 20")
    assert lines[1].endswith(" UTC.")
    assert len(lines) == 2, result.stdout
    as_json = json.loads(ctl(node, "--json", "tenants", "check").stdout)
    assert as_json["results"] == []
    assert as_json["note"] is None
    assert as_json["looked_at"] == 1
    next_run = datetime.fromisoformat(as_json["next_run"].replace("Z", "+00:00"))
    # The first scheduled run comes after a random splay of up to an hour in these tests.
    assert datetime.now(UTC) - timedelta(seconds=5) < next_run < datetime.now(UTC) + timedelta(hours=1)


def test_check_config_without_a_file_says_there_is_none() -> None:
    default = "/etc/paragon-licensed/paragon-licensed.toml"
    assert not Path(default).exists(), f"{default} exists on this machine; the test needs it absent"
    env = {k: v for k, v in os.environ.items() if k != "PARAGON_LICENSED_CONFIG"}
    result = subprocess.run([DAEMON, "check-config"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"no configuration file at {default}: the built-in defaults apply and are valid ("
    )
    assert "configuration is valid" not in result.stdout


def test_an_unreachable_socket_is_named_with_where_it_came_from(tmp_path: Path) -> None:
    socket = tmp_path / "nowhere" / "io.paragon.License"
    config = tmp_path / "node.toml"
    config.write_text(toml({"control": {"socket": str(socket)}}))
    result = subprocess.run(
        [DAEMON, "ctl", "--config", str(config), "status"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 69
    assert f"cannot reach paragon-licensed on {socket} (from control.socket in {config})" in result.stderr
    assert "use another --socket PATH" in result.stderr
    assert "--config FILE" not in result.stderr
    bare = subprocess.run(
        [DAEMON, "ctl", "--socket", str(socket), "status"], capture_output=True, text=True, check=False
    )
    assert f"cannot reach paragon-licensed on {socket} (from --socket)" in bare.stderr


def test_both_help_texts_have_one_look() -> None:
    for command in ([DAEMON, "--help"], [DAEMON, "ctl", "--help"]):
        text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        lines = text.splitlines()
        assert lines[0].startswith("Usage: paragon-licensed"), text
        assert "Options:" in lines, text
        assert "Commands:" in lines, text
        commands = []
        for line in lines[lines.index("Commands:") + 1 :]:
            if line and not line.startswith(" "):
                break  # the next section
            commands.append(line)
        # A command's line is indented a little; a wrapped summary's continuation, a lot.
        own = [line for line in commands if line.strip() and len(line) - len(line.lstrip()) <= 4]
        summaries = [line.split(None, 1)[1] for line in own if len(line.split(None, 1)) == 2]
        assert summaries, text
        assert all(s[0].isupper() for s in summaries), summaries
        assert not any(s.endswith("...") for s in summaries), summaries


def test_status_never_contradicts_itself_about_the_coordinator(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "nodes", config={"tenants": [{"id": TENANT}]})
    daemon.start()
    try:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (seen and seen[-1]["is_coordinator"]):
            seen.append(daemon.status())
        for _ in range(20):  # and for a while after it took over
            seen.append(daemon.status())
        assert seen[-1]["is_coordinator"]
        for status in seen:
            own = [n for n in status["nodes"] if n["this_node"]]
            assert status["is_coordinator"] == (status["coordinator"] == daemon.name), status
            assert all(n["coordinator"] == status["is_coordinator"] for n in own), status
    finally:
        daemon.stop()


def test_folders_are_created_with_their_mode_under_a_umask_of_zero(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    previous = os.umask(0)
    try:
        make_dirs(target, 0o755)
    finally:
        os.umask(previous)
    for level in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert stat.S_IMODE(level.stat().st_mode) == 0o755, level


def test_the_daemon_creates_the_socket_folders_with_their_mode(tmp_path: Path) -> None:
    socket = tmp_path / "run" / "deep" / "io.paragon.License"
    daemon = DaemonProcess(
        tmp_path / "nodes", config={"control": {"socket": str(socket)}}, socket=str(socket)
    )
    previous = os.umask(0)
    try:
        start_and_settle(daemon)
    finally:
        os.umask(previous)
    try:
        for level in (tmp_path / "run", tmp_path / "run" / "deep"):
            assert stat.S_IMODE(level.stat().st_mode) == 0o755, level
    finally:
        daemon.stop()


def test_a_refused_first_activation_names_no_support_id(portal: PortalProcess) -> None:
    import requests

    portal.add_order("KEY-OLD", "ended", valid_until=(datetime.now(UTC) - timedelta(days=3)).date())
    body = {"activation_key": "KEY-OLD", "tenant_id": "ended", "computer_ids": [uuid4()], "build": "1"}
    details = []
    with requests.Session() as http:
        http.trust_env = False
        for _ in range(2):
            answer = http.post(
                portal.url + "/activations", json={**body, "request_id": str(uuid4())}, timeout=10
            )
            assert answer.status_code == 403
            assert answer.json()["code"] == "subscription_ended"
            details.append(answer.json()["detail"])
    assert details[0] == details[1]
    assert "tenant ended" in details[0]
    assert "support ID" not in details[0]


def uuid4() -> str:
    import uuid

    return str(uuid.uuid4())


def test_json_watch_prints_json_lines(node: DaemonProcess) -> None:
    """One JSON object per event, on a line of its own, as docs/control.md and --help say."""
    watch = subprocess.Popen(
        [DAEMON, "ctl", "--socket", node.socket, "--json", "watch"], stdout=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    try:
        assert watch.stdout is not None
        # The watch is subscribed some time after it starts: reactivate until it has seen one.
        for _ in range(20):
            node.ctl("license", "reactivate", check=True)
            if select.select([watch.stdout], [], [], 2.0)[0]:
                break
        lines = [watch.stdout.readline()]
    finally:
        watch.terminate()
        watch.wait(timeout=30)
        if watch.stdout is not None:
            watch.stdout.close()
    events = [json.loads(line) for line in lines]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    kinds = {"notification", "state_changed", "nodes_changed", "coordinator_changed"}
    assert all(isinstance(e, dict) and e["kind"] in kinds for e in events), events
