"""End to end: the offline flow and `ctl license import`, against the real daemon and portal.

The offline round trip goes through files exactly as an administrator carries
them: `ctl license reactivate --offline --out` (or `activate --offline`), the
portal's `offline process`, then `ctl license import`. Every kind of bad file is
refused with its own named reason, and refusing it changes nothing: the crafted
files are signed with the portal's own key (or a deliberately wrong one), so
each has exactly one property wrong.
"""

from __future__ import annotations

import json
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.daemon import DaemonProcess
from support.licenses import (
    TENANT,
    DaemonFactory,
    RawVarlink,
    Store,
    computer_id,
    craft,
    days,
    new_key,
    payload_of,
    private_key,
    public_keys,
    tamper,
    utc_now,
    with_kid,
)
from support.portal import PortalProcess

from paragon_licensed import licensefile as lf

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = pytest.mark.e2e


def offline_process(portal: PortalProcess, request: Path, response: Path) -> None:
    result = portal.cli(
        "offline", "process", "--db", str(portal.db_path), "--key", str(portal.key_path),
        str(request), "--out", str(response),
    )  # fmt: skip
    assert response.exists(), result.stderr


def header_and_block(text: str, label: str) -> tuple[list[str], list[str]]:
    """The '# ' header lines before the armored block, and the block's lines."""
    lines = text.splitlines()
    begin = lines.index(f"-----BEGIN {label}-----")
    return lines[:begin], lines[begin:]


# -- the offline round trip


def test_offline_reactivation_round_trip(
    portal: PortalProcess, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    portal.add_order("KEY-OFF", TENANT, product="Paragon Print", quantity=4)
    node = daemon_factory(portal)
    node.ctl("license", "activate", "--key", "KEY-OFF", check=True)
    before = node.ctl_json("license", "info")
    later = portal.add_order("KEY-OFF", TENANT, product="Paragon Scan")
    calls = len(portal.requests())

    request = tmp_path / "req.txt"
    result = node.ctl("license", "reactivate", "--offline", "--out", str(request))
    assert result.returncode == 0, result.stderr
    assert str(request) in result.stdout
    # The hint names the socket this call used, so it works as printed.
    assert f"paragon-licensed ctl --socket {node.socket} license import RESPONSE_FILE" in result.stdout

    text = request.read_text()
    header, block = header_and_block(text, lf.REQUEST_LABEL)
    assert header, text
    assert all(line.startswith("# ") or line == "" for line in header), header
    assert any("import" in line for line in header), header
    assert any(TENANT in line for line in header), header
    assert block[-1] == f"-----END {lf.REQUEST_LABEL}-----"
    body = lf.decode_request(text)
    assert body["kind"] == "reactivation"
    assert body["tenant_id"] == TENANT
    assert body["computer_ids"] == [computer_id(node)]
    assert body["build"] == "3.2.1"
    request_id = body["request_id"]
    assert len(portal.requests()) == calls, "an offline request must not call the portal"

    # The pending request is recorded, in the store and in the history.
    with Store(node) as store:
        assert [(r[0], r[1]) for r in store.pending_offline()] == [(request_id, "reactivation")]
    history = node.ctl_json("license", "info", "--history")["history"]
    assert any(h["request_id"] == request_id for h in history), history

    response = tmp_path / "resp.txt"
    offline_process(portal, request, response)
    [answered] = portal.requests(request_id=request_id)
    assert answered.source == "offline"
    assert answered.status == 200

    imported = node.ctl("license", "import", str(response))
    assert imported.returncode == 0, imported.stderr
    after = node.ctl_json("license", "info")
    assert after["license_id"] == answered.license_id
    assert after["license_id"] != before["license_id"]
    assert after["state"] == "active"
    assert {o["order_id"] for o in after["orders"]} == {o["order_id"] for o in before["orders"]} | {later}
    with Store(node) as store:
        assert store.pending_offline() == []
        installed = len(store.history())

    # Importing the same response again is harmless.
    again = node.ctl("license", "import", str(response))
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert node.ctl_json("license", "info") == after
    with Store(node) as store:
        assert len(store.history()) == installed
    notes = node.ctl_json("notifications")
    assert len([n for n in notes if n["title"] == "License imported"]) == 1, notes


def test_offline_first_activation_round_trip(
    portal: PortalProcess, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    order = portal.add_order("KEY-FIRST", TENANT, product="Paragon Print", quantity=2)
    node = daemon_factory(portal)
    request = tmp_path / "activation.txt"
    result = node.ctl("license", "activate", "--key", "KEY-FIRST", "--offline", "--out", str(request))
    assert result.returncode == 0, result.stderr
    # It carries the activation key: only its owner may read it.
    assert stat.S_IMODE(request.stat().st_mode) == 0o600
    text = request.read_text()
    header, _ = header_and_block(text, lf.REQUEST_LABEL)
    assert header
    assert all(line.startswith("# ") or line == "" for line in header)
    body = lf.decode_request(text)
    assert body["kind"] == "activation"
    assert body["activation_key"] == "KEY-FIRST"
    assert body["computer_ids"] == [computer_id(node)]
    assert node.tenant_state()["state"] == "unlicensed"
    assert portal.requests() == []
    with Store(node) as store:
        assert [r[0] for r in store.pending_offline()] == [body["request_id"]]

    response = tmp_path / "response.txt"
    offline_process(portal, request, response)
    imported = node.ctl("license", "import", str(response))
    assert imported.returncode == 0, imported.stderr
    info = node.ctl_json("license", "info")
    assert info["state"] == "active"
    assert [(o["order_id"], o["quantity"]) for o in info["orders"]] == [(order, 2)]
    assert info["license_id"] == portal.licenses(TENANT)[-1].license_id
    with Store(node) as store:
        assert store.pending_offline() == []


def test_an_answered_offline_request_is_not_taken_for_a_restore(
    portal: PortalProcess, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """The portal knows a newer license because of our own pending offline request: no restore alarm."""
    portal.add_order("KEY-PEND", TENANT)
    node = daemon_factory(portal)
    node.ctl("license", "activate", "--key", "KEY-PEND", check=True)
    issued = node.ctl_json("license", "info")["issued_at"]
    request, response = tmp_path / "req.txt", tmp_path / "resp.txt"
    node.ctl("license", "reactivate", "--offline", "--out", str(request), check=True)
    while utc_now().strftime("%Y-%m-%dT%H:%M:%SZ") <= issued:
        time.sleep(0.05)  # the response's license is issued at a later second
    offline_process(portal, request, response)
    answered = portal.licenses(TENANT)[-1].license_id

    # The administrator restarts the daemon before importing the response.
    node.stop()
    calls = len(portal.requests())
    log_mark = len(node.log())
    node.start()
    node.wait_until(
        lambda: (
            "current licenses checked on the portal" in node.log()[log_mark:]
            and node.status()["activity"] == "idle"
        ),
        timeout=30,
        what="the coordinator's start-up check against the portal",
    )
    time.sleep(1.0)  # a reactivation the check would trigger starts right after it
    notes = node.ctl_json("notifications")
    assert not [n for n in notes if "estore" in n["title"]], notes
    query = "/api/v1/licenses/current/query"
    posted = [r for r in portal.requests()[calls:] if r.method == "POST" and r.path != query]
    assert posted == [], f"the daemon reactivated by itself: {posted}"

    imported = node.ctl("license", "import", str(response))
    assert imported.returncode == 0, imported.stderr
    assert node.ctl_json("license", "info")["license_id"] == answered


# -- rejections


@dataclass
class Setup:
    node: DaemonProcess
    portal: PortalProcess
    tmp: Path
    known_kid: str  # a second key the daemon trusts
    first_license: str  # the document of the first activation, since superseded

    @property
    def current(self) -> lf.Payload:
        return payload_of(self.portal.licenses(TENANT)[-1].document, public_keys(self.portal))

    @property
    def current_document(self) -> str:
        return self.portal.licenses(TENANT)[-1].document


@pytest.fixture
def setup(portal: PortalProcess, daemon_factory: DaemonFactory, tmp_path: Path) -> Setup:
    """A node activated and then reactivated online; it also trusts a second portal key."""
    second = tmp_path / "second-key"
    _, kid = new_key(second)
    portal.add_order("KEY-IMP", TENANT, product="Paragon Print")
    node = daemon_factory(portal, public_keys=[portal.public_keys_glob, str(second / "*.pub")])
    node.ctl("license", "activate", "--key", "KEY-IMP", check=True)
    first = portal.licenses(TENANT)[-1].document
    # The reactivation's license is issued at a later second than the activation's.
    issued = payload_of(first, public_keys(portal)).issued_at
    while utc_now() <= issued:
        time.sleep(0.05)
    node.ctl("license", "reactivate", check=True)
    return Setup(node, portal, tmp_path, kid, first)


def newer(s: Setup, **changes: Any) -> lf.Payload:
    """The current payload, issued later, with ``changes``: a license that would otherwise install."""
    now = utc_now()
    fields: dict[str, Any] = {"issued_at": now, "valid_until": now + days(30), **changes}
    return msgspec.structs.replace(s.current, **fields)


def forged(s: Setup) -> str:
    key, _ = new_key(s.tmp / "forger")
    return craft(newer(s), key)


def tampered(s: Setup) -> str:
    return tamper(s.current_document, valid_until="2099-12-31T23:59:59Z")


def other_tenant(s: Setup) -> str:
    return craft(newer(s, tenant_id="other-tenant"), private_key(s.portal))


def other_cluster(s: Setup) -> str:
    return craft(newer(s, computer_ids=(str(uuid.uuid4()),)), private_key(s.portal))


def unknown_kid(s: Setup) -> str:
    return with_kid(craft(newer(s), private_key(s.portal)), "0123456789abcdef")


def kid_of_another_known_key(s: Setup) -> str:
    return with_kid(craft(newer(s), private_key(s.portal)), s.known_kid)


def issued_in_future(s: Setup) -> str:
    now = utc_now()
    return craft(newer(s, issued_at=now + days(10 / 1440), valid_until=now + days(30)), private_key(s.portal))


def expired(s: Setup) -> str:
    now = utc_now()
    return craft(newer(s, issued_at=now - days(31), valid_until=now - days(1)), private_key(s.portal))


def garbage(s: Setup) -> str:
    return "This is not a license.\n-----BEGIN PARAGON LICENSE-----\n!!!\n-----END PARAGON LICENSE-----\n"


def older(s: Setup) -> str:
    return s.first_license


# case -> (document, varlink error, reason parameter, what stderr must name)
CASES: dict[str, tuple[Callable[[Setup], str], str, str | None, str]] = {
    "forged": (forged, "InvalidLicense", "unknown_kid", "unknown_kid"),
    "tampered": (tampered, "InvalidLicense", "bad_signature", "bad_signature"),
    "other_tenant": (other_tenant, "InvalidLicense", "wrong_tenant", "wrong_tenant"),
    "other_cluster": (other_cluster, "IntegrityMismatch", None, "integrity key"),
    "unknown_kid": (unknown_kid, "InvalidLicense", "unknown_kid", "unknown_kid"),
    "wrong_known_kid": (kid_of_another_known_key, "InvalidLicense", "bad_signature", "bad_signature"),
    "issued_in_future": (issued_in_future, "InvalidLicense", "issued_in_future", "issued_in_future"),
    "expired": (expired, "InvalidLicense", "expired", "expired"),
    "garbage": (garbage, "InvalidLicense", "malformed", "malformed"),
    "superseded": (older, "InvalidLicense", "superseded", "superseded"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_file_is_refused_with_its_reason_and_changes_nothing(case: str, setup: Setup) -> None:
    make, error, reason, named = CASES[case]
    node = setup.node
    document = make(setup)
    path = setup.tmp / f"{case}.lic"
    path.write_text(document)

    before = node.ctl_json("license", "info")
    with Store(node) as store:
        row = store.tenant()
        assert row is not None
        assert row.license is not None
        stored_before = (row.license.license_id, row.license.document, len(store.history()))
        audit_before = len(store.audit_all())

    result = node.ctl("license", "import", str(path))
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    as_json = node.ctl("license", "import", str(path), "--json")
    assert as_json.returncode == 1
    assert named in as_json.stderr
    if as_json.stdout.strip():
        json.loads(as_json.stdout)

    # The daemon names the error to any varlink client, with its typed parameters.
    with RawVarlink(node.socket) as raw:
        reply = raw.call("io.paragon.License.ImportLicense", {"document": document})
    assert reply.get("error") == f"io.paragon.License.{error}", reply
    if reason is not None:
        assert reply["parameters"]["reason"] == reason
    else:
        ids = [computer_id(node)]
        assert reply["parameters"]["expected"] == lf.integrity_key(TENANT, ids)
        assert reply["parameters"]["actual"] == payload_of(document, public_keys(setup.portal)).integrity_key

    # Nothing changed.
    assert node.ctl_json("license", "info") == before
    assert node.tenant_state()["state"] == "active"
    with Store(node) as store:
        row = store.tenant()
        assert row is not None
        assert row.license is not None
        assert (row.license.license_id, row.license.document, len(store.history())) == stored_before
        assert len(store.audit_all()) > audit_before, "no audit entry at all for the refused import"

    # The tenant's history shows the failed attempts (ctl's and the raw client's).
    history = node.ctl_json("license", "info", "--history")["history"]
    failed = [h for h in history if h["action"] == "import" and h["outcome"].startswith("failed")]
    assert len(failed) == 3, f"failed imports in the history of {TENANT}: {failed}\nall: {history}"
    for entry in failed:
        assert entry["request_id"]
        assert error in entry["outcome"]
