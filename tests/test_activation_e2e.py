"""End to end: online activation and reactivation against the reference portal, over HTTP.

The installed daemon and `paragon-license-portal serve` run as processes; the
tests drive them with `paragon-licensed ctl` and a raw varlink connection, and
check what the portal recorded in its request log. Also here: `ctl check`'s exit
codes and the audit trail of `ctl license info --history`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.daemon import DAEMON, DaemonProcess
from support.licenses import (
    TENANT,
    DaemonFactory,
    RawVarlink,
    Store,
    computer_id,
    craft,
    days,
    expected_integrity_key,
    payload_of,
    private_key,
    public_keys,
    utc_now,
)
from support.portal import PortalProcess

from paragon_licensed import licensefile as lf

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = pytest.mark.e2e

PortalFactory = Callable[..., PortalProcess]
ACTIVATIONS = "/api/v1/activations"
REACTIVATIONS = "/api/v1/reactivations"


def processed(portal: PortalProcess, path: str) -> list[Any]:
    """Requests the portal really handled on ``path`` (answered 200, not injected, not a replay)."""
    return portal.requests(path=path, status=200, injected=False, replay=False)


def rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ctl_ok(daemon: DaemonProcess, *args: str) -> str:
    result = daemon.ctl(*args)
    shown = f"ctl {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, shown
    assert "Traceback" not in result.stderr
    return result.stdout


# -- activation


def test_online_activation_installs_the_license_and_info_reports_it(
    portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    order = portal.add_order(
        "KEY-ACT", TENANT, product="Paragon Print", quantity=25, features={"color": "yes", "scan": "ocr"}
    )
    node = daemon_factory(portal)
    assert node.tenant_state()["state"] == "unlicensed"

    out = ctl_ok(node, "license", "activate", "--key", "KEY-ACT")
    assert "activated" in out

    state = node.tenant_state()
    assert state["state"] == "active"
    info = node.ctl_json("license", "info")
    ids = [computer_id(node)]
    assert info["tenant"] == TENANT
    assert info["state"] == "active"
    assert info["build"] == "3.2.1"
    assert info["computer_ids"] == ids
    assert info["integrity_key"] == expected_integrity_key(TENANT, ids)
    assert [(o["order_id"], o["product"], o["quantity"], o["features"]) for o in info["orders"]] == [
        (order, "Paragon Print", 25, {"color": "yes", "scan": "ocr"})
    ]
    assert rfc3339(info["orders"][0]["valid_until"]) > datetime.now(UTC) + timedelta(days=300)

    # What the portal issued is what the daemon reports.
    [issued] = portal.licenses(TENANT)
    assert info["license_id"] == issued.license_id
    assert info["support_id"] == payload_of(issued.document, public_keys(portal)).support_id
    assert info["support_id"] == state["support_id"]
    assert info["issued_at"] == issued.issued_at
    assert info["valid_until"] == issued.valid_until
    issued_at, valid_until = rfc3339(info["issued_at"]), rfc3339(info["valid_until"])
    assert abs((issued_at - datetime.now(UTC)).total_seconds()) < 600
    assert valid_until - issued_at == timedelta(days=30)  # the portal's default validity

    human = ctl_ok(node, "license", "info")
    for text in (
        info["support_id"],
        info["license_id"],
        info["integrity_key"],
        "3.2.1",
        order,
        "Paragon Print",
        "25",
        info["orders"][0]["valid_until"][:10],
        "color=yes",
        info["valid_until"][:10],
        info["issued_at"][:10],
        "active",
    ):
        assert text in human, f"{text!r} missing from:\n{human}"

    [call] = processed(portal, ACTIVATIONS)
    assert call.integrity_key == info["integrity_key"]
    assert call.computer_ids == ids


def test_reactivation_covers_every_order_bound_to_the_integrity_key(
    portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    first = portal.add_order("KEY-A", TENANT, product="Paragon Print")
    second_key = portal.add_order("KEY-B", TENANT, product="Paragon Scan", quantity=3)
    node = daemon_factory(portal)
    ctl_ok(node, "license", "activate", "--key", "KEY-A")
    ctl_ok(node, "license", "activate", "--key", "KEY-B")
    before = node.ctl_json("license", "info")
    assert {o["order_id"] for o in before["orders"]} == {first, second_key}

    # An order added on the portal after activation, to a key already bound here.
    later = portal.add_order("KEY-A", TENANT, product="Paragon Mobile", quantity=7, features={"seats": "7"})
    out = ctl_ok(node, "license", "reactivate")
    assert "reactivated" in out

    after = node.ctl_json("license", "info")
    assert after["license_id"] != before["license_id"]
    assert after["state"] == "active"
    assert after["integrity_key"] == before["integrity_key"]
    orders = {o["order_id"]: (o["product"], o["quantity"], o["features"]) for o in after["orders"]}
    assert orders == {
        first: ("Paragon Print", 1, {}),
        second_key: ("Paragon Scan", 3, {}),
        later: ("Paragon Mobile", 7, {"seats": "7"}),
    }
    assert len(processed(portal, REACTIVATIONS)) == 1
    # The new license replaces the one it was reactivated from.
    newest = payload_of(portal.licenses(TENANT)[-1].document, public_keys(portal))
    assert newest.license_id == after["license_id"]
    assert newest.supersedes == before["license_id"]


def test_ctl_prints_each_step_while_the_reactivation_runs(
    portal_factory: PortalFactory, daemon_factory: DaemonFactory
) -> None:
    portal = portal_factory(serve_args=["--latency", "3000"])
    portal.add_order("KEY-S", TENANT)
    node = daemon_factory(portal)
    ctl_ok(node, "license", "activate", "--key", "KEY-S")
    answered = len(processed(portal, REACTIVATIONS))

    proc = subprocess.Popen(
        [DAEMON, "ctl", "--socket", node.socket, "license", "reactivate"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        # The first step reached the terminal before the (slow) portal had answered.
        assert "reactivating" in first
        assert len(processed(portal, REACTIVATIONS)) == answered
        rest, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, errors
    lines = [first.rstrip("\n"), *rest.splitlines()]
    steps = [line.strip() for line in lines if line.startswith("  ")]
    assert len(steps) >= 3, lines
    assert "verifying" in steps[1]
    info = node.ctl_json("license", "info")
    assert f"license {info['license_id']} installed" in steps[2]
    assert any(line.startswith(f"Tenant {TENANT}: reactivated") for line in lines)


def test_varlink_reactivate_with_more_streams_steps_then_the_outcome(
    portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    portal.add_order("KEY-V", TENANT)
    node = daemon_factory(portal)
    ctl_ok(node, "license", "activate", "--key", "KEY-V")

    with RawVarlink(node.socket) as raw:
        replies = list(raw.stream("io.paragon.License.Reactivate", {"mode": "online"}))
        assert len(replies) >= 2, replies
        *steps, final = replies
        for reply in steps:
            assert reply.get("continues") is True, reply
            step = reply["parameters"]["step"]
            assert step["step"], step
            assert step["message"], step
            assert step["at"], step
        assert "continues" not in final or final["continues"] is False
        assert "error" not in final, final
        outcome = final["parameters"]["outcome"]
        assert outcome["tenant"] == TENANT
        assert outcome["license"]["state"] == "active"
        assert [r["parameters"]["step"]["step"] for r in steps] == ["portal", "verify", "installed"]

        # Without "more": one reply, the outcome.
        single = raw.call("io.paragon.License.Reactivate", {"mode": "online"})
        assert "continues" not in single, single
        assert single["parameters"]["outcome"]["license"]["license_id"] != outcome["license"]["license_id"]

    assert len(processed(portal, REACTIVATIONS)) == 2
    installed = single["parameters"]["outcome"]["license"]["license_id"]
    assert node.ctl_json("license", "info")["license_id"] == installed


def test_reactivation_with_fewer_orders_installs_and_warns_naming_the_missing_order(
    portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    node = daemon_factory(portal)
    lasting = portal.add_order("KEY-F", TENANT, product="Paragon Print")
    ends = utc_now() + timedelta(seconds=5)
    ending = portal.add_order("KEY-F", TENANT, product="Paragon Scan", valid_until=ends)
    ctl_ok(node, "license", "activate", "--key", "KEY-F")
    before = node.ctl_json("license", "info")
    assert {o["order_id"] for o in before["orders"]} == {lasting, ending}

    # The second order ends on the portal; the next license leaves it out.
    while datetime.now(UTC) <= ends + timedelta(seconds=1):
        time.sleep(0.2)
    result = node.ctl("license", "reactivate")
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1, result.stdout
    assert ending in warned[0]

    after = node.ctl_json("license", "info")
    assert after["license_id"] != before["license_id"]
    assert [o["order_id"] for o in after["orders"]] == [lasting]
    assert after["state"] == "active"
    notes = node.ctl_json("notifications")
    warnings = [n for n in notes if n["severity"] == "warning"]
    assert len(warnings) == 1, notes
    assert ending in warnings[0]["text"]
    assert lasting not in warnings[0]["text"]
    assert warnings[0]["tenant"] == TENANT


# -- ctl check


def test_check_exit_codes_follow_the_license_state(
    portal_factory: PortalFactory, daemon_factory: DaemonFactory
) -> None:
    portal = portal_factory()
    portal.add_order("KEY-C", TENANT)
    node = daemon_factory(portal)

    unlicensed = node.ctl("check")
    assert unlicensed.returncode == 2, unlicensed.stdout
    assert unlicensed.stdout.startswith("LICENSE CRITICAL")

    ctl_ok(node, "license", "activate", "--key", "KEY-C")
    active = node.ctl("check")
    assert active.returncode == 0, active.stdout
    assert active.stdout.startswith("LICENSE OK")
    as_json = node.ctl("check", "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["status"] == "ok"

    # A portal that issues one-day licenses: the tenant is expiring (within 2 days), under the
    # default --critical of 2 days; a WARNING when the critical threshold is lower.
    portal.restart(["--license-days", "1"])
    ctl_ok(node, "license", "reactivate")
    assert node.tenant_state()["state"] == "expiring"
    expiring = node.ctl("check")
    assert expiring.returncode == 2, expiring.stdout
    assert expiring.stdout.startswith("LICENSE CRITICAL")
    lenient = node.ctl("check", "--critical", "0")
    assert lenient.returncode == 1, lenient.stdout
    assert lenient.stdout.startswith("LICENSE WARNING")

    node.stop()
    down = node.ctl("check")
    assert down.returncode == 3, down.stdout
    assert down.stdout.startswith("LICENSE UNKNOWN")


def test_check_reports_an_expired_license_as_critical(
    portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    portal.add_order("KEY-E", TENANT)
    node = daemon_factory(portal)
    ctl_ok(node, "license", "activate", "--key", "KEY-E")
    base = payload_of(portal.licenses(TENANT)[-1].document, public_keys(portal))
    node.stop()
    # An expired license cannot be imported; it is put in the store while the daemon is down.
    now = utc_now()
    expired = craft(base, private_key(portal), issued_at=now - days(31), valid_until=now - days(1))
    with Store(node) as store:
        store.install(TENANT, expired, lf.inspect(expired, public_keys(portal)))
    node.start()
    assert node.tenant_state()["state"] == "expired"
    result = node.ctl("check")
    assert result.returncode == 2, result.stdout
    assert result.stdout.startswith("LICENSE CRITICAL")


# -- the audit trail


def test_history_lists_every_attempt_with_request_id_and_actor(
    portal: PortalProcess, daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    portal.add_order("KEY-H", TENANT)
    node = daemon_factory(portal, max_attempts=1)
    ctl_ok(node, "license", "activate", "--key", "KEY-H")
    ctl_ok(node, "license", "reactivate")
    refused = node.ctl("license", "activate", "--key", "NO-SUCH-KEY")
    assert refused.returncode == 1

    request = tmp_path / "request.txt"
    response = tmp_path / "response.txt"
    ctl_ok(node, "license", "reactivate", "--offline", "--out", str(request))
    portal.process_offline(request, response)
    ctl_ok(node, "license", "import", str(response))
    garbage = tmp_path / "garbage.lic"
    garbage.write_text("not a license\n")
    assert node.ctl("license", "import", str(garbage)).returncode == 1

    portal.stop()
    assert node.ctl("license", "reactivate").returncode == 1

    history = node.ctl_json("license", "info", "--history")["history"]
    me = f"uid={os.getuid()}("
    rows = [(h["action"], h["outcome"]) for h in history]

    def entries(action: str, outcome: str) -> list[dict[str, Any]]:
        return [h for h in history if h["action"] == action and h["outcome"].startswith(outcome)]

    [activation] = entries("activation", "installed")
    [refusal] = entries("activation", "failed")
    [reactivation] = entries("reactivation", "installed")
    [unreachable] = entries("reactivation", "failed")
    [imported] = entries("import", "installed")
    for entry in (activation, refusal, reactivation, unreachable, imported):
        assert entry["request_id"], entry
        assert me in entry["actor"], entry
        assert entry["tenant"] == TENANT
    assert "PortalRejected" in refusal["outcome"]
    assert "PortalUnreachable" in unreachable["outcome"]

    # The request IDs are the ones the portal saw.
    by_id = {r.request_id: r for r in portal.requests()}
    assert by_id[activation["request_id"]].path == ACTIVATIONS
    assert by_id[activation["request_id"]].status == 200
    assert by_id[refusal["request_id"]].code == "unknown_activation_key"
    assert by_id[reactivation["request_id"]].path == REACTIVATIONS
    offline_ids = [h["request_id"] for h in history if h["action"] == "offline_reactivation_request"]
    assert len(offline_ids) == 1
    assert by_id[offline_ids[0]].source == "offline"

    human = ctl_ok(node, "license", "info", "--history")
    for entry in history:
        assert entry["request_id"] in human
    assert "REQUEST ID" in human

    # The failed import of a file that is no license at all is an attempt too.
    failed_imports = entries("import", "failed")
    assert len(failed_imports) == 1, f"the failed import is missing from the tenant's history: {rows}"
    assert failed_imports[0]["request_id"]
    assert me in failed_imports[0]["actor"]
    assert "malformed" in failed_imports[0]["detail"] or "malformed" in failed_imports[0]["outcome"]
