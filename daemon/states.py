"""A tenant's license state, decided from its stored license, the cluster and the clock.

States: unlicensed, active, expiring, expired, invalid, needs_reactivation and
needs_transfer. The rules, in order: no license is unlicensed; a license that
fails its signature or is another tenant's is invalid; a licensed computer ID
that is no longer in the cluster needs a transfer; a new node, a new build or a
restore needs a reactivation (the previous license counts during the grace
period); otherwise the validity decides.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from paragon_licensed.daemon import clock
from paragon_licensed.daemon.localcopy import is_local_copy
from paragon_licensed.daemon.store.tenants import TenantRow
from paragon_licensed.daemon.timefmt import days_left, rfc3339
from paragon_licensed.interface import wire
from paragon_licensed.interface.errors import CTL
from paragon_licensed.licensefile import LicenseRejected, Payload

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon

MAX_SKEW = 300.0
_ENCODE = msgspec.json.Encoder().encode
# States in which a tenant counts as properly licensed (for monitoring and the tenant check).
LICENSED = frozenset({"active", "expiring"})


@dataclass(frozen=True)
class TenantView:
    tenant: str
    state: wire.State
    reason: str
    admin_email: str
    row: TenantRow
    payload: Payload | None = None
    grace_until: float | None = None

    @property
    def valid_until(self) -> float | None:
        return self.payload.valid_until.timestamp() if self.payload else None

    @functools.cached_property
    def wire_state(self) -> wire.TenantState:
        """The control interface's form, computed once per evaluation (status is asked often)."""
        return self.to_wire()

    @functools.cached_property
    def wire_json(self) -> msgspec.Raw:
        """`wire_state` encoded once: a status of thousands of tenants is mostly copied, not encoded."""
        return msgspec.Raw(_ENCODE(self.wire_state))

    def to_wire(self) -> wire.TenantState:
        valid_until = self.valid_until
        return wire.TenantState(
            tenant=self.tenant,
            state=self.state,
            reason=self.reason,
            admin_email=self.admin_email,
            valid_until=rfc3339(valid_until) if valid_until is not None else None,
            days_left=days_left(valid_until) if valid_until is not None else None,
            grace_until=rfc3339(self.grace_until) if self.grace_until is not None else None,
            grace_days_left=days_left(self.grace_until) if self.grace_until is not None else None,
            support_id=self.payload.support_id if self.payload else None,
        )

    def summary(self) -> wire.Tenant:
        valid_until = self.valid_until
        return wire.Tenant(
            tenant=self.tenant,
            admin_email=self.admin_email,
            state=self.state,
            valid_until=rfc3339(valid_until) if valid_until is not None else None,
            support_id=self.payload.support_id if self.payload else None,
        )


@dataclass(frozen=True)
class Facts:
    """Everything besides the tenant's row that its state depends on."""

    now: float
    # The computer IDs of every registered node; None before the store answers, when the node
    # set is unknown and the last verified license is trusted.
    cluster_ids: frozenset[str] | None
    build: str | None  # the installed product build, when known
    expiring_within: float  # seconds before expiry a license counts as expiring
    store_opened: bool


Inspect = Callable[[int, str], Payload]  # (stored row, document) -> payload, or LicenseRejected


def facts(app: Daemon, now: float | None = None) -> Facts:
    """The daemon's current facts, taken once for a pass over many tenants."""
    return Facts(
        now=clock.now() if now is None else now,
        cluster_ids=frozenset(app.cluster_computer_ids()) if app.store_opened else None,
        build=app.build.value,
        expiring_within=app.config.tenant_check.expiring_within,
        store_opened=app.store_opened,
    )


def evaluate(app: Daemon, row: TenantRow, now: float | None = None, known: Facts | None = None) -> TenantView:
    """The tenant's state from the daemon's current facts (the adapter around ``judge``)."""
    view = judge(row, known or facts(app, now), app.verifier.inspect)
    if view.payload is not None and view.state != "invalid":
        app.clock.raise_to(view.payload.issued_at.timestamp())  # a verified license was issued by then
    return view


def judge(row: TenantRow, facts: Facts, inspect: Inspect) -> TenantView:
    """A tenant's state and the sentence explaining it: a pure function of its inputs."""
    now = facts.now

    def view(state: wire.State, reason: str, payload: Payload | None = None) -> TenantView:
        grace = row.grace_until if state == "needs_reactivation" else None
        if is_local_copy(row.license):
            reason += (
                "; from this node's verified local copy: the store has no license for this tenant"
                if facts.store_opened
                else "; from this node's verified local copy until the store answers"
            )
        return TenantView(row.id, state, reason, row.admin_email, row, payload, grace)

    license_row = row.license
    if license_row is None:
        return view(
            "unlicensed",
            f"no license yet: activate with `{CTL} license activate --key KEY --tenant {row.id}`",
        )
    try:
        payload = inspect(license_row.row, license_row.document)
    except LicenseRejected as exc:
        return view("invalid", f"{exc.reason}: {exc.detail}. {exc.explanation}")
    if payload.tenant_id != row.id:
        return view("invalid", f"wrong_tenant: the stored license is for tenant {payload.tenant_id}")
    if payload.issued_at.timestamp() > now + MAX_SKEW:
        return view(
            "invalid",
            f"issued_in_future: issued at {rfc3339(payload.issued_at.timestamp())}; check this node's clock",
            payload,
        )

    licensed = set(payload.computer_ids)
    cluster = set(facts.cluster_ids) if facts.cluster_ids is not None else licensed
    if row.flag == "needs_transfer" or licensed - cluster:
        gone = sorted(licensed - cluster)
        reason = row.flag_reason or (
            f"licensed computer ID {', '.join(gone)} is no longer in the cluster: "
            f"`{CTL} license transfer --replace {gone[0]}`"
        )
        return view("needs_transfer", reason, payload)
    if row.flag == "needs_reactivation":
        return view("needs_reactivation", row.flag_reason, payload)
    if cluster - licensed:
        joined = ", ".join(sorted(cluster - licensed))
        return view(
            "needs_reactivation",
            f"management node(s) with computer ID {joined} joined: reactivation runs once every "
            "node is online",
            payload,
        )
    if facts.build is not None and payload.build != facts.build:
        return view(
            "needs_reactivation",
            f"the product build changed from {payload.build} to {facts.build}: reactivate",
            payload,
        )

    remaining = payload.valid_until.timestamp() - now
    until = _date(payload.valid_until)
    if remaining <= 0:
        return view("expired", f"the license expired on {until}: reactivate", payload)
    if remaining <= facts.expiring_within:
        return view("expiring", f"the license expires on {until}", payload)
    return view("active", f"licensed until {until}", payload)


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
