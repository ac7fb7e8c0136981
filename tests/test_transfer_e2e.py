"""End to end: a new OS installation or new hardware under a licensed node, and the transfer flow.

The identity files are rewritten while the daemon is stopped, as a reinstall or a
motherboard swap would change /etc/machine-id or the DMI product UUID. The
portal's request log proves that the daemon made no activation, reactivation or
transfer call by itself; the transfer then runs through ctl, online or offline.
"""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.daemon import DAEMON
from support.portal import PORTAL_BIN, PortalProcess
from support.scenarios import CTL, QUERY, TENANT, TRANSFERS, Installation

from paragon_licensed.licensefile import integrity_key

pytest_plugins = ["support.portal", "support.scenarios"]
pytestmark = pytest.mark.e2e

Make = Callable[..., Installation]


def raw_forms(value: str) -> set[str]:
    """Every spelling a raw machine-id or product UUID could be printed in."""
    bare = value.replace("-", "").lower()
    dashed = f"{bare[:8]}-{bare[8:12]}-{bare[12:16]}-{bare[16:20]}-{bare[20:]}"
    return {form for v in (bare, dashed) for form in (v, v.upper())}


def reinstall_os(inst: Installation) -> list[str]:
    """A new machine-id (the OS was reinstalled); returns the old and the new raw value."""
    old = inst.machine_id_file.read_text().strip()
    new = uuid.uuid4().hex
    inst.machine_id_file.write_text(new + "\n")
    return [old, new]


def replace_hardware(inst: Installation) -> list[str]:
    """A new product UUID (the hardware was replaced); returns the old and the new raw value."""
    old = inst.product_uuid_file.read_text().strip()
    new = str(uuid.uuid4())
    inst.product_uuid_file.write_text(new + "\n")
    return [old, new]


def assert_needs_transfer(inst: Installation, old_id: str, changed: str, unchanged: str) -> None:
    """needs_transfer, saying which part changed and naming the transfer command."""
    command = f"{CTL} license transfer --replace {old_id}"
    tenant = inst.wait_state("needs_transfer")
    assert changed in tenant["reason"], tenant
    assert unchanged not in tenant["reason"], tenant
    assert command in tenant["reason"], tenant
    human = inst.daemon.ctl("status", check=True).stdout
    assert "needs transfer" in human
    assert changed in human
    assert command in human

    errors = [n for n in inst.new_notifications() if n["severity"] == "error"]
    assert len(errors) == 1, inst.new_notifications()
    assert errors[0]["tenant"] == TENANT
    assert changed in errors[0]["text"]
    assert command in errors[0]["text"]

    check = inst.daemon.ctl("check")
    assert check.returncode == 2, check.stdout


def assert_no_raw_identity(inst: Installation, raw_values: list[str]) -> None:
    shown = "\n".join(
        [
            inst.daemon.ctl("status", check=True).stdout,
            inst.daemon.ctl("status", "--json", check=True).stdout,
            inst.daemon.ctl("notifications", "--json", check=True).stdout,
            inst.daemon.ctl("notifications", check=True).stdout,
            inst.daemon.ctl("identity", "--json", check=True).stdout,
            inst.daemon.ctl("license", "info", "--history", check=True).stdout,
            inst.daemon.log(),
        ]
    )
    for value in raw_values:
        for form in raw_forms(value):
            assert form not in shown, f"raw identity value {value} printed"


def assert_no_portal_post(inst: Installation) -> None:
    """The daemon called nothing but (perhaps) the current-license check since the restart."""
    calls = inst.requests_since()
    assert {r.path for r in calls} <= {QUERY}, [(r.method, r.path) for r in calls]


@pytest.mark.parametrize(
    ("change", "changed", "unchanged"),
    [
        (reinstall_os, "machine-id", "product UUID"),
        (replace_hardware, "product UUID", "machine-id"),
    ],
    ids=["os-reinstall", "hardware-change"],
)
@pytest.mark.timeout(150)
def test_identity_change_needs_a_transfer_without_portal_calls_then_transfer_activates(
    portal: PortalProcess,
    installations: Make,
    change: Callable[[Installation], list[str]],
    changed: str,
    unchanged: str,
) -> None:
    inst = installations(portal, orders=2)
    old_id = inst.computer_id()
    before = inst.license()
    inst.stop()
    raw = change(inst)
    inst.start()

    new_id = inst.computer_id()
    assert new_id != old_id
    assert_needs_transfer(inst, old_id, changed, unchanged)
    inst.wait_log("tenant check finished")
    assert_no_portal_post(inst)
    grace = inst.tenant()

    # Another restart: still needs a transfer, still no call, nothing notified twice.
    inst.restart()
    inst.wait_log("tenant check finished")
    tenant = inst.wait_state("needs_transfer")
    assert tenant["reason"] == grace["reason"]
    assert_no_portal_post(inst)
    assert inst.new_notifications() == []

    inst.mark()
    result = inst.daemon.ctl("license", "transfer", "--replace", old_id)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "transferred" in result.stdout
    tenant = inst.wait_state("active")
    lic = inst.license()
    assert lic["computer_ids"] == [new_id]
    assert lic["integrity_key"] == integrity_key(TENANT, [new_id])
    assert lic["integrity_key"] != before["integrity_key"]
    assert sorted(o["order_id"] for o in lic["orders"]) == sorted(inst.orders)
    transfers = inst.requests_since(path=TRANSFERS)
    assert len(transfers) == 1
    assert transfers[0].computer_ids == [old_id]
    assert transfers[0].new_computer_ids == [new_id]
    assert transfers[0].status == 200
    assert any(n["title"] == "License transferred" for n in inst.new_notifications())
    assert_no_raw_identity(inst, raw)


@pytest.mark.timeout(150)
def test_second_transfer_past_the_portal_limit_shows_the_portals_message(
    portal_factory: Callable[..., PortalProcess], installations: Make
) -> None:
    portal = portal_factory(serve_args=["--transfer-limit", "1"])
    inst = installations(portal, orders=1)
    first_id = inst.computer_id()
    inst.stop()
    reinstall_os(inst)
    inst.start()
    inst.wait_state("needs_transfer")
    inst.daemon.ctl("license", "transfer", "--replace", first_id, check=True)
    inst.wait_state("active")

    second_id = inst.computer_id()
    inst.stop()
    replace_hardware(inst)
    inst.start()
    inst.wait_state("needs_transfer")
    inst.mark()
    result = inst.daemon.ctl("license", "transfer", "--replace", second_id)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "transfer_limit_reached" in result.stderr
    assert f"tenant {TENANT} may transfer its license 1 times in 365 days" in result.stderr
    assert "Traceback" not in result.stderr
    refused = inst.requests_since(path=TRANSFERS)
    assert [(r.status, r.code) for r in refused] == [(409, "transfer_limit_reached")]
    assert inst.tenant()["state"] == "needs_transfer"
    assert inst.license()["computer_ids"] == [second_id]


def test_offline_transfer_request_answered_by_the_portal_and_imported(
    portal: PortalProcess, installations: Make, tmp_path: Path
) -> None:
    inst = installations(portal, orders=2)
    old_id = inst.computer_id()
    inst.stop()
    reinstall_os(inst)
    inst.start()
    inst.wait_state("needs_transfer")
    new_id = inst.computer_id()

    request = tmp_path / "transfer-request.txt"
    result = inst.daemon.ctl("license", "transfer", "--replace", old_id, "--offline", "--out", str(request))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert stat.S_IMODE(os.stat(request).st_mode) == 0o600
    assert inst.posts_since() == [], "an offline transfer calls nothing"

    response = tmp_path / "transfer-response.txt"
    subprocess.run(
        [
            str(PORTAL_BIN), "offline", "process", "--db", str(portal.db_path), "--key", str(portal.key_path),
            str(request), "--out", str(response),
        ],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    offline = portal.requests(path=TRANSFERS)
    assert [(r.source, r.status) for r in offline] == [("offline", 200)]
    assert offline[0].computer_ids == [old_id]
    assert offline[0].new_computer_ids == [new_id]

    imported = subprocess.run(
        [DAEMON, "ctl", "--socket", inst.daemon.socket, "license", "import", str(response)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert imported.returncode == 0, (imported.stdout, imported.stderr)
    inst.wait_state("active")
    lic = inst.license()
    assert lic["computer_ids"] == [new_id]
    assert lic["integrity_key"] == integrity_key(TENANT, [new_id])
    assert lic["license_id"] == offline[0].license_id
    assert sorted(o["order_id"] for o in lic["orders"]) == sorted(inst.orders)
