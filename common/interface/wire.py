"""The typed parameters and replies of ``io.paragon.License``, as msgspec Structs.

They mirror the ``io.paragon.License.varlink`` file field for field (a test
compares them); this module imports only msgspec, the standard library and the
stdlib-only ``errors`` module, so any client may use it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

State = Literal[
    "unlicensed", "active", "expiring", "expired", "invalid", "needs_reactivation", "needs_transfer"
]
Strength = Literal["hardware", "software"]
Mode = Literal["online", "offline"]
Kind = Literal["activation", "reactivation", "transfer"]
Severity = Literal["info", "warning", "error"]
# ListTenants: tenants per page when the caller names no limit, and the most it may ask for.
DEFAULT_PAGE = 1000
MAX_PAGE = 10000
CheckOutcome = Literal["reactivated", "failed", "skipped"]
EventKind = Literal["state_changed", "notification", "nodes_changed", "coordinator_changed"]


class Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every wire Struct: immutable, and a parameter it does not know is an error."""


# Types


class IdentitySources(Struct, frozen=True):
    machine_id: str
    product_uuid: str | None = None


class Identity(Struct, frozen=True):
    computer_id: str
    strength: Strength
    sources: IdentitySources
    warnings: list[str]


class Node(Struct, frozen=True):
    name: str
    computer_id: str
    build: str
    version: str
    online: bool
    last_seen: str
    seconds_since_seen: float
    coordinator: bool
    this_node: bool
    problem: str | None = None


class TenantState(Struct, frozen=True):
    tenant: str
    state: State
    reason: str
    admin_email: str
    valid_until: str | None = None
    days_left: int | None = None
    grace_until: str | None = None
    grace_days_left: int | None = None
    support_id: str | None = None


class Status(Struct, frozen=True):
    node: str
    computer_id: str
    identity_strength: Strength
    deployment: Literal["single_tenant", "multi_tenant"]
    store_backend: Literal["sqlite", "postgresql"]
    store_available: bool
    version: str
    is_coordinator: bool
    activity: str
    nodes: list[Node]
    tenant_total: int
    tenant_states: dict[str, int]
    attention: list[TenantState]
    attention_total: int
    soonest_expiry: TenantState | None = None
    build: str | None = None
    build_problem: str | None = None
    store_problem: str | None = None
    coordinator: str | None = None
    state_problem: str | None = None
    clock_problem: str | None = None


class Order(Struct, frozen=True):
    order_id: str
    product: str
    features: dict[str, str]
    quantity: int
    valid_until: str


class AuditEntry(Struct, frozen=True):
    at: str
    actor: str
    action: str
    tenant: str
    outcome: str
    request_id: str
    detail: str


class License(Struct, frozen=True):
    tenant: str
    state: State
    reason: str
    license_id: str
    support_id: str
    build: str
    computer_ids: list[str]
    integrity_key: str
    orders: list[Order]
    issued_at: str
    valid_until: str
    history: list[AuditEntry]
    supersedes: str | None = None


class Step(Struct, frozen=True):
    at: str
    step: str
    message: str


class Outcome(Struct, frozen=True):
    tenant: str
    warnings: list[str]
    license: License | None = None
    changed: bool | None = None


class OfflineRequest(Struct, frozen=True):
    tenant: str
    kind: Kind
    request_id: str
    document: str


class Tenant(Struct, frozen=True):
    tenant: str
    admin_email: str
    state: State
    valid_until: str | None = None
    support_id: str | None = None


class CheckResult(Struct, frozen=True):
    tenant: str
    outcome: CheckOutcome
    reason: str
    valid_until: str | None = None


class CheckProgress(Struct, frozen=True):
    done: int
    total: int
    tenant: str | None = None
    outcome: str | None = None


class Notification(Struct, frozen=True):
    id: int
    at: str
    severity: Severity
    kind: str
    title: str
    text: str
    acked: bool
    tenant: str | None = None


class Event(Struct, frozen=True):
    at: str
    kind: EventKind
    message: str
    tenant: str | None = None
    state: str | None = None
    notification: Notification | None = None


class OfflineNode(Struct, frozen=True):
    name: str
    computer_id: str
    last_seen: str


# Method parameters (In) and replies (Out)


class Empty(Struct, frozen=True):
    pass


class GetIdentityOut(Struct, frozen=True):
    identity: Identity


class GetStatusOut(Struct, frozen=True):
    status: Status


class GetLicenseIn(Struct, frozen=True):
    tenant: str | None = None
    history: bool | None = None


class GetLicenseOut(Struct, frozen=True):
    license: License


class ActivateIn(Struct, frozen=True):
    activation_key: str
    tenant: str | None = None

    def __repr__(self) -> str:
        return f"ActivateIn(tenant={self.tenant!r}, activation_key='***')"


class OperationOut(Struct, frozen=True, omit_defaults=True):
    step: Step | None = None
    outcome: Outcome | None = None


class ReactivateIn(Struct, frozen=True):
    tenant: str | None = None
    mode: Mode | None = None


class ReactivateOut(Struct, frozen=True, omit_defaults=True):
    step: Step | None = None
    outcome: Outcome | None = None
    request: OfflineRequest | None = None


class CreateOfflineRequestIn(Struct, frozen=True):
    kind: Kind
    tenant: str | None = None
    activation_key: str | None = None
    replace_computer_id: str | None = None

    def __repr__(self) -> str:
        return f"CreateOfflineRequestIn(kind={self.kind!r}, tenant={self.tenant!r})"


class CreateOfflineRequestOut(Struct, frozen=True):
    request: OfflineRequest


class ImportLicenseIn(Struct, frozen=True):
    document: str


class TransferIn(Struct, frozen=True):
    replace_computer_id: str
    mode: Mode | None = None
    tenant: str | None = None


class TransferOut(Struct, frozen=True, omit_defaults=True):
    step: Step | None = None
    outcomes: list[Outcome] | None = None
    requests: list[OfflineRequest] | None = None


class ListNodesOut(Struct, frozen=True):
    nodes: list[Node]


class ForgetNodeIn(Struct, frozen=True):
    name: str


class ForgetNodeOut(Struct, frozen=True):
    node: Node
    affected_tenants: list[str]


class ListTenantsIn(Struct, frozen=True):
    tenant: str | None = None
    state: State | None = None
    cursor: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] | None = None


class ListTenantsOut(Struct, frozen=True):
    tenants: list[TenantState]
    total: int
    next_cursor: str | None = None


class SetTenantIn(Struct, frozen=True):
    tenant: str
    admin_email: str | None = None


class SetTenantOut(Struct, frozen=True):
    tenant: Tenant


class SetCloudAdminEmailIn(Struct, frozen=True):
    email: str


class RunTenantCheckOut(Struct, frozen=True, omit_defaults=True):
    progress: CheckProgress | None = None
    results: list[CheckResult] | None = None
    note: str | None = None
    looked_at: int | None = None
    next_run: str | None = None


class ListNotificationsIn(Struct, frozen=True):
    tenant: str | None = None
    unread_only: bool | None = None


class ListNotificationsOut(Struct, frozen=True):
    notifications: list[Notification]


# A notification id is a 64-bit row id: a larger number is an invalid parameter, not a store error.
NotificationId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class AckNotificationsIn(Struct, frozen=True):
    ids: list[NotificationId]


class AckNotificationsOut(Struct, frozen=True):
    acked: int


class WatchOut(Struct, frozen=True):
    event: Event
