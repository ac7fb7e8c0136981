"""End to end: an upgrade while the License Portal is down, the grace period, and the retries.

The portal process is stopped during the restart after the build changed; the
daemon must keep the previous license for the grace period, say how to
reactivate offline, keep the grace period across restarts, and reactivate by
itself (the retry schedule shortened by configuration) once the portal answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from support.portal import PortalProcess
from support.scenarios import CTL, NEW_BUILD, REACTIVATIONS, TENANT, Installation

pytest_plugins = ["support.portal", "support.scenarios"]
pytestmark = pytest.mark.e2e

Make = Callable[..., Installation]
FAST_RETRIES = {
    "reactivation": {"retry_schedule": ["1s", "2s"], "retry_jitter": 0.0},
    "portal": {"max_attempts": 2, "backoff": "0.1s"},
}


def upgrade_with_portal_down(inst: Installation, portal: PortalProcess) -> dict[str, Any]:
    """Stop the daemon and the portal, change the build, start the daemon; the tenant in grace."""
    inst.stop()
    portal.stop()
    inst.set_build(NEW_BUILD)
    inst.start()
    tenant: dict[str, Any] = inst.daemon.wait_until(
        lambda: (t := inst.tenant())["state"] == "needs_reactivation" and t["grace_until"] and t,
        30,
        what="needs_reactivation with a grace period",
    )
    return tenant


def failed_notes(inst: Installation) -> list[dict[str, Any]]:
    return [n for n in inst.notifications() if n["title"] == "Reactivation failed"]


@pytest.mark.timeout(150)
def test_portal_down_during_upgrade_grace_then_reactivates_by_itself(
    portal: PortalProcess, installations: Make
) -> None:
    inst = installations(portal, orders=2, config=FAST_RETRIES)
    before = inst.license()
    tenant = upgrade_with_portal_down(inst, portal)
    pid = inst.started[-1]

    assert tenant["grace_days_left"] in (13, 14), tenant
    assert f"upgrade to {NEW_BUILD}" in tenant["reason"], tenant
    human = inst.daemon.ctl("status", check=True).stdout
    assert "needs reactivation" in human
    assert f"grace {tenant['grace_days_left']}d" in human

    # The previous license still counts: a warning for monitoring, not critical.
    check = inst.daemon.ctl("check")
    assert check.returncode == 1, check.stdout
    assert check.stdout.startswith("LICENSE WARNING")
    checked = json.loads(inst.daemon.ctl("check", "--json").stdout)
    assert checked["exit_code"] == 1

    notes = failed_notes(inst)
    assert len(notes) == 1, inst.notifications()
    text = notes[0]["text"]
    assert notes[0]["tenant"] == TENANT
    assert f"`{CTL} license reactivate --tenant {TENANT} --offline --out request.txt`" in text
    assert f"`{CTL} license import response.txt`" in text

    # The portal comes back: the daemon reactivates on its own schedule, without a restart.
    portal.start()
    inst.wait_state("active", timeout=60)
    assert inst.daemon.proc is not None
    assert inst.daemon.proc.pid == pid, "no restart"
    assert inst.daemon.proc.poll() is None
    lic = inst.license()
    assert lic["build"] == NEW_BUILD
    assert sorted(o["order_id"] for o in lic["orders"]) == sorted(inst.orders)
    assert lic["integrity_key"] == before["integrity_key"]
    assert inst.tenant()["grace_until"] is None
    done = [n for n in inst.new_notifications() if n["title"] == "License reactivated after upgrade"]
    assert len(done) == 1, inst.new_notifications()
    assert f"Reactivated after upgrade to {NEW_BUILD}" in done[0]["text"]
    ok = [r for r in inst.requests_since(path=REACTIVATIONS) if r.status == 200]
    assert len(ok) == 1, [(r.status, r.code) for r in inst.requests_since()]
    assert ok[0].license_id == lic["license_id"]
    assert inst.daemon.ctl("check").returncode == 0


@pytest.mark.timeout(150)
def test_grace_period_survives_a_restart(portal: PortalProcess, installations: Make) -> None:
    inst = installations(portal, orders=1, config=FAST_RETRIES)
    tenant = upgrade_with_portal_down(inst, portal)
    inst.wait_log("reactivation failed; grace period running")
    # grace_until is shown to the second: let one pass, so a grace period started anew would differ.
    time.sleep(1.1)

    inst.restart()
    inst.wait_log("reactivation failed; grace period running")  # it keeps trying after the restart
    after = inst.wait_state("needs_reactivation")
    assert after["grace_until"] == tenant["grace_until"], (tenant, after)
    assert after["grace_days_left"] == tenant["grace_days_left"]
    assert len(failed_notes(inst)) == 1, "a restart does not announce the same failure again"
    assert inst.daemon.ctl("check").returncode == 1
