"""End to end: the automatic tenant license processing, run with `ctl tenants check`.

A real daemon, the reference portal and an aiosmtpd server. Tenants are put in
every state the check cares about: licenses issued by the portal, then
re-signed with another expiry (or another key, or another node's computer ID)
and placed in the daemon's store while it is stopped.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.daemon import DaemonProcess
from support.portal import PortalProcess
from support.smtp import SmtpServer
from support.tenant_check import (
    check_config,
    computer_id,
    craft,
    ctl_in_terminal,
    in_days,
    install,
    license_id,
    notifications,
    outcomes,
    payload_of,
    portal_key,
    read,
    run_check,
    seed_refused,
    stored_license,
    unknown_license,
    wait_for,
)

from paragon_licensed.daemon.store.db import Tx

pytest_plugins = ["support.portal", "support.smtp", "support.tenant_check"]
pytestmark = pytest.mark.e2e

ACTIVATIONS = "/api/v1/activations"
REACTIVATIONS = "/api/v1/reactivations"


def states(daemon: DaemonProcess) -> dict[str, str]:
    return {t["tenant"]: t["state"] for t in daemon.tenants()}


def summary_rows(output: str) -> dict[str, tuple[str, str]]:
    """The summary table of `ctl tenants check`: tenant -> (outcome, reason)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TENANT") and "OUTCOME" in line)
    rows: dict[str, tuple[str, str]] = {}
    for line in lines[start + 1 :]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) < 2 or cells[1] not in ("reactivated", "failed", "skipped"):
            break
        rows[cells[0]] = (cells[1], cells[-1] if len(cells) >= 4 else "")
    return rows


def test_check_reactivates_exactly_the_due_tenants(
    portal: PortalProcess, daemons: Callable[..., DaemonProcess]
) -> None:
    """Expired, expiring in 1 day, invalid and unlicensed are processed; 3 days and transfers left alone."""
    licensed = ["expired", "expiring-1d", "expiring-3d", "invalid", "active", "moved"]
    for tenant in licensed:
        portal.add_order(f"KEY-{tenant}", tenant)
    seeds: list[dict[str, Any]] = [{"id": t} for t in [*licensed, "nokey"]]
    seeds.append({"id": "late", "activation_key": "KEY-late"})  # its order is bought later
    daemon = daemons("node-1", check_config(portal, extra={"tenants": seeds}))
    daemon.start()
    ours = computer_id(daemon)
    for tenant in licensed:
        daemon.ctl("license", "activate", "--key", f"KEY-{tenant}", "--tenant", tenant, check=True)
    wait_for(lambda: portal.requests(path=ACTIVATIONS, tenant_id="late"), what="the seed's activation")
    daemon.stop()

    key = portal_key(portal)
    base = {t: payload_of(portal, stored_license(daemon, t).document) for t in licensed}  # type: ignore[union-attr]
    install(daemon, *craft(base["expired"], key, valid_until=datetime.now(UTC) - timedelta(hours=1)))
    install(daemon, *craft(base["expiring-1d"], key, valid_until=in_days(1)))
    install(daemon, *craft(base["expiring-3d"], key, valid_until=in_days(3)))
    install(daemon, *craft(base["invalid"], Ed25519PrivateKey.generate()))  # a key the daemon does not know
    install(daemon, *craft(base["moved"], key, computer_ids=[ours, str(uuid.uuid4())]))
    install(daemon, *unknown_license(portal, "refused", [ours], in_days(1)))  # the portal refuses it
    untouched = {t: license_id(daemon, t) for t in ("expiring-3d", "active", "moved")}

    daemon.start()
    # The coordinator tries the seed's key again at start-up; only then is its order bought.
    wait_for(lambda: len(portal.requests(path=ACTIVATIONS, tenant_id="late")) >= 2, what="2nd seed try")
    portal.add_order("KEY-late", "late")
    assert states(daemon) == {
        "expired": "expired",
        "expiring-1d": "expiring",
        "expiring-3d": "active",
        "invalid": "invalid",
        "active": "active",
        "moved": "needs_transfer",
        "refused": "expiring",
        "nokey": "unlicensed",
        "late": "unlicensed",
    }
    requests_before = len(portal.requests())
    seen = {n["id"] for n in notifications(daemon)}

    results = run_check(daemon)

    assert outcomes(results) == {
        "expired": "reactivated",
        "expiring-1d": "reactivated",
        "invalid": "reactivated",
        "late": "reactivated",  # activated with its seed's key
        "refused": "failed",
        "moved": "skipped",  # a transfer is never automatic
        "nokey": "skipped",  # never activated, and no key to do it with
    }
    by_tenant = {r["tenant"]: r for r in results}
    assert "integrity_mismatch" in by_tenant["refused"]["reason"]
    assert "transfer" in by_tenant["moved"]["reason"]
    assert "license activate --key KEY --tenant nokey" in by_tenant["nokey"]["reason"]
    renewed = ("expired", "expiring-1d", "invalid", "late")
    for tenant in renewed:
        assert by_tenant[tenant]["valid_until"] is not None
    after = states(daemon)
    assert {t: after[t] for t in renewed} == dict.fromkeys(renewed, "active")
    assert (after["nokey"], after["moved"], after["refused"]) == ("unlicensed", "needs_transfer", "expiring")
    assert {t: license_id(daemon, t) for t in untouched} == untouched

    # The portal saw one call for each processed tenant, and none for the others.
    calls = portal.requests()[requests_before:]
    assert sorted(r.tenant_id or "" for r in calls) == sorted([*renewed, "refused"])
    assert [r.path for r in calls if r.tenant_id == "late"] == [ACTIVATIONS]

    # The run's items are its record of the calls in flight: neither its activation nor its
    # reactivations write a second, pending-request record of their own.
    checked = [r.request_id for r in calls]

    def recorded_as_pending(tx: Tx) -> list[str]:
        rows = tx.all("SELECT request_id FROM offline_requests")
        return [str(r[0]) for r in rows if r[0] in checked]

    assert read(daemon, recorded_as_pending) == []

    notes = [n for n in notifications(daemon) if n["id"] not in seen]
    for tenant in ("expired", "expiring-1d", "invalid"):
        info = [n for n in notes if n["tenant"] == tenant and n["severity"] == "info"]
        assert [n["title"] for n in info] == ["License reactivated"], tenant
        assert "valid until" in info[0]["text"]
    assert [n["title"] for n in notes if n["tenant"] == "late" and n["severity"] == "info"] == [
        "License activated"
    ]
    errors = {n["title"]: n["text"] for n in notes if n["tenant"] == "refused" and n["severity"] == "error"}
    assert "integrity_mismatch" in errors["License reactivation failed"]
    assert not [n for n in notes if n["tenant"] in ("expiring-3d", "active", "moved", "nokey")]

    # Run it again as a person would, in a terminal: a progress bar, then the summary table.
    code, output = ctl_in_terminal(daemon, "tenants", "check")
    assert code == 1, output  # a tenant failed
    assert "\r[" in output, output
    assert "[" + "#" * 30 + "] 3/3" in output, output
    assert "0 reactivated, 1 failed, 2 skipped." in output
    rows = summary_rows(output)
    assert rows["refused"][0] == "failed", output
    assert "integrity_mismatch" in rows["refused"][1]
    assert rows.get("moved", ("",))[0] == "skipped", (
        f"the skipped tenants are missing from the summary:\n{output}"
    )
    assert rows.get("nokey", ("",))[0] == "skipped"


def test_portal_refusal_is_notified_and_mailed(
    portal_factory: Callable[..., PortalProcess],
    smtp: SmtpServer,
    daemons: Callable[..., DaemonProcess],
) -> None:
    """subscription_ended: an error notification with the portal's reason and what to do, and an e-mail."""
    portal = portal_factory(serve_args=["--license-days", "1"])
    portal.add_order("KEY-renewing", "renewing")
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    portal.add_order("KEY-ended", "ended", valid_until=end)
    seeds = [
        {"id": "renewing", "admin_email": "renewing-admin@example.com"},
        {"id": "ended", "admin_email": "ended-admin@example.com"},
    ]
    daemon = daemons("node-1", check_config(portal, smtp, extra={"tenants": seeds}))
    daemon.start()
    for tenant in ("renewing", "ended"):
        daemon.ctl("license", "activate", "--key", f"KEY-{tenant}", "--tenant", tenant, check=True)
    assert states(daemon) == {"renewing": "expiring", "ended": "expiring"}  # --license-days 1
    wait_for(lambda: datetime.now(UTC) > end + timedelta(seconds=1), what="the order's end")

    results = run_check(daemon)

    assert outcomes(results) == {"renewing": "reactivated", "ended": "failed"}
    reason = next(r["reason"] for r in results if r["tenant"] == "ended")
    refusal = portal.requests(path=REACTIVATIONS, tenant_id="ended")
    assert [(r.status, r.code) for r in refusal] == [(403, "subscription_ended")]
    assert "subscription_ended" in reason
    assert "renew the subscription" in reason

    errors = [n for n in notifications(daemon, "--tenant", "ended") if n["severity"] == "error"]
    assert len(errors) == 1
    assert "subscription_ended" in errors[0]["text"]
    assert "every order used by this installation" in errors[0]["text"]  # the portal's own words
    assert "renew the subscription, then reactivate" in errors[0]["text"]  # what to do

    mails = smtp.wait_for(lambda m: any("ended-admin@example.com" in x.recipients for x in m), what="digest")
    time.sleep(1.5)  # anything else would come by now
    mails = smtp.messages()
    assert [m.recipients for m in mails] == [("ended-admin@example.com",)]
    body = mails[0].body
    assert "ended: The License Portal refused the request (subscription_ended)" in body
    assert "renewing" not in body


def test_circuit_breaker_stops_the_run_with_one_notification(
    portal: PortalProcess, daemons: Callable[..., DaemonProcess]
) -> None:
    """The portal is down: one "License Portal unreachable" notification, the tenants skipped."""
    tenants = [f"t-{i:02d}" for i in range(24)]
    daemon = daemons("node-1", check_config(portal))
    seed_refused(daemon, portal, dict.fromkeys(tenants, ""))  # all due: their licenses expire tomorrow
    portal.stop()
    daemon.start()

    results = run_check(daemon)

    assert outcomes(results) == dict.fromkeys(tenants, "skipped")
    assert all("could not be reached" in r["reason"] for r in results), results

    def tried(tx: Tx) -> set[str]:
        rows = tx.all("SELECT DISTINCT tenant_id FROM audit WHERE action = 'tenant_check'")
        return {str(r[0]) for r in rows}

    attempted = read(daemon, tried)
    assert 5 <= len(attempted) < len(tenants), f"the run did not stop early: {len(attempted)} tried"

    def portal_notes() -> list[dict[str, Any]]:
        return [n for n in notifications(daemon) if n["title"] == "License Portal unreachable"]

    notes = notifications(daemon)
    assert [(n["tenant"], n["severity"], n["kind"]) for n in portal_notes()] == [
        (None, "error", "portal_unreachable")
    ]
    assert [n for n in notes if n["tenant"] is not None] == []  # no failure per tenant

    # Again, as a person would run it: the summary says why nothing was done, and the exit code is 1.
    code, output = ctl_in_terminal(daemon, "tenants", "check")
    assert len(portal_notes()) == 1  # still one: the same failure is not repeated within the interval
    assert "0 reactivated, 0 failed, 24 skipped." in output
    assert "unreachable" in output.lower() or "could not be reached" in output, output
    assert code == 1, f"a run stopped by an unreachable portal must not exit 0:\n{output}"
