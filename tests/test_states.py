"""A tenant's state, decided by ``states.judge``: a pure function, tested with a table.

Each row gives the stored license (or none), the facts around it (clock, cluster,
build, whether the store answers) and the state and reason it must produce. The
signature check is handed in: here it returns the payload, or raises the rejection.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from paragon_licensed.daemon.localcopy import LOCAL_COPY
from paragon_licensed.daemon.states import Facts, judge
from paragon_licensed.daemon.store.tenants import LicenseRow, TenantRow
from paragon_licensed.licensefile import LicenseRejected, Payload, RejectReason

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0
A, B, C = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002", "cc-3"


def payload(**changes: Any) -> Payload:
    base = Payload(
        format=1,
        license_id="lic-1",
        support_id="SUP-1",
        tenant_id="acme",
        build="3.2.1",
        computer_ids=(A, B),
        integrity_key="ik",
        orders=(),
        issued_at=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=30),
        supersedes=None,
    )
    return msgspec.structs.replace(base, **changes)


def row(license: Payload | None = None, *, flag: str = "", flag_reason: str = "", **kw: Any) -> TenantRow:
    stored = None
    if license is not None:
        stored = LicenseRow(
            row=7,
            tenant_id="acme",
            license_id=license.license_id,
            document="DOC",
            build=license.build,
            integrity_key=license.integrity_key,
            issued_at=license.issued_at.timestamp(),
            valid_until=license.valid_until.timestamp(),
            installed_at=0.0,
            installed_by=kw.pop("installed_by", "test"),
            cause="activation",
        )
    return TenantRow(
        id="acme",
        admin_email="",
        created_at=0.0,
        flag=flag,
        flag_reason=flag_reason,
        flag_cause="",
        flag_since=None,
        grace_until=kw.pop("grace_until", None),
        retry_count=0,
        next_retry_at=None,
        license=stored,
    )


def facts(**changes: Any) -> Facts:
    base = Facts(
        now=NOW.timestamp(),
        cluster_ids=frozenset({A, B}),
        build="3.2.1",
        expiring_within=2 * DAY,
        store_opened=True,
    )
    return Facts(**{**base.__dict__, **changes})


def accept(license: Payload) -> Any:
    return lambda row_id, document: license


def reject(reason: RejectReason) -> Any:
    def inspect(row_id: int, document: str) -> Payload:
        raise LicenseRejected(reason, "the detail")

    return inspect


CASES = [
    ("no license", row(), facts(), None, "unlicensed", "no license yet: activate with"),
    ("valid", row(payload()), facts(), payload(), "active", "licensed until 2026-12-31 12:00 UTC"),
    (
        "expires within two days",
        row(payload(valid_until=NOW + timedelta(days=1))),
        facts(),
        payload(valid_until=NOW + timedelta(days=1)),
        "expiring",
        "the license expires on 2026-12-02",
    ),
    (
        "expires in three days",
        row(payload(valid_until=NOW + timedelta(days=3))),
        facts(),
        payload(valid_until=NOW + timedelta(days=3)),
        "active",
        "licensed until",
    ),
    (
        "expired",
        row(payload(valid_until=NOW - timedelta(seconds=1))),
        facts(),
        payload(valid_until=NOW - timedelta(seconds=1)),
        "expired",
        "the license expired on 2026-12-01",
    ),
    ("bad signature", row(payload()), facts(), "bad_signature", "invalid", "bad_signature: the detail"),
    (
        "another tenant's",
        row(payload(tenant_id="other")),
        facts(),
        payload(tenant_id="other"),
        "invalid",
        "wrong_tenant: the stored license is for tenant other",
    ),
    (
        "issued in the future",
        row(payload(issued_at=NOW + timedelta(hours=1))),
        facts(),
        payload(issued_at=NOW + timedelta(hours=1)),
        "invalid",
        "issued_in_future",
    ),
    (
        "a licensed node left",
        row(payload()),
        facts(cluster_ids=frozenset({A})),
        payload(),
        "needs_transfer",
        f"licensed computer ID {B} is no longer in the cluster",
    ),
    (
        "a node joined",
        row(payload()),
        facts(cluster_ids=frozenset({A, B, C})),
        payload(),
        "needs_reactivation",
        f"management node(s) with computer ID {C} joined",
    ),
    (
        "a new build",
        row(payload()),
        facts(build="3.3.0"),
        payload(),
        "needs_reactivation",
        "the product build changed from 3.2.1 to 3.3.0",
    ),
    ("build unknown", row(payload()), facts(build=None), payload(), "active", "licensed until"),
    (
        "flagged for reactivation (a restore)",
        row(payload(), flag="needs_reactivation", flag_reason="the store was restored"),
        facts(),
        payload(),
        "needs_reactivation",
        "the store was restored",
    ),
    (
        "flagged for transfer",
        row(payload(), flag="needs_transfer", flag_reason="the machine-id changed"),
        facts(),
        payload(),
        "needs_transfer",
        "the machine-id changed",
    ),
    (
        "store not open: the license's node set is trusted",
        row(payload()),
        facts(cluster_ids=None, store_opened=False),
        payload(),
        "active",
        "licensed until",
    ),
    (
        "a local copy while the store is down",
        row(payload(), installed_by=LOCAL_COPY),
        facts(cluster_ids=None, store_opened=False),
        payload(),
        "active",
        "from this node's verified local copy until the store answers",
    ),
]


@pytest.mark.parametrize(
    ("stored", "around", "checked", "state", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_judge(stored: TenantRow, around: Facts, checked: Any, state: str, reason: str) -> None:
    inspect = reject("bad_signature") if checked == "bad_signature" else accept(checked)
    view = judge(stored, around, inspect)
    assert view.state == state
    assert reason in view.reason, view.reason


def test_grace_is_shown_only_while_a_reactivation_is_needed() -> None:
    graced = row(
        payload(), flag="needs_reactivation", flag_reason="upgrade", grace_until=NOW.timestamp() + DAY
    )
    assert judge(graced, facts(), accept(payload())).grace_until == NOW.timestamp() + DAY
    settled = row(payload(), grace_until=NOW.timestamp() + DAY)
    assert judge(settled, facts(), accept(payload())).grace_until is None


def test_judging_changes_nothing_it_is_given() -> None:
    stored, around = row(payload()), facts()
    before = (repr(stored), repr(around))
    judge(stored, around, accept(payload()))
    assert (repr(stored), repr(around)) == before
