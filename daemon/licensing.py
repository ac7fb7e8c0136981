"""Activation, reactivation, transfer and import: ask the portal (or read a file), verify, install.

These run on the coordinator only. A license is installed only after its
signature, tenant, integrity key, build and times are verified, in one fenced
transaction together with its audit entry and notifications; a portal call is
made only while this node's lease is current.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from paragon_licensed.daemon import clock, log
from paragon_licensed.daemon.states import MAX_SKEW
from paragon_licensed.daemon.store import audit
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.db import StoreUnavailableError, Tx
from paragon_licensed.daemon.timefmt import rfc3339
from paragon_licensed.interface import wire
from paragon_licensed.interface.errors import (
    CTL,
    BuildUnknown,
    DuplicateComputerId,
    IntegrityMismatch,
    InvalidLicense,
    NodesOffline,
    NoSuchTenant,
    PortalRejected,
    PortalUnreachable,
    VarlinkError,
)
from paragon_licensed.licensefile import (
    LicenseRejected,
    Payload,
    RequestFileError,
    decode_request,
    encode_request,
    extract_license,
    inspect,
    integrity_key,
    request_header_lines,
    verify,
)
from paragon_licensed.text import clean

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon

Report = Callable[[str, str], Awaitable[None]]
# Written in the same transaction as the license it comes with (a tenant check's result, say).
Extra = Callable[[Tx, Payload], None] | None


@dataclass
class Installed:
    """What an install did, for the outcome and the caller's messages."""

    payload: Payload
    changed: bool
    warnings: list[str] = field(default_factory=list)


def order_summary(payload: Payload) -> str:
    return ", ".join(f"{o.order_id} ({o.product})" for o in payload.orders) or "no orders"


@dataclass(frozen=True, kw_only=True)
class PortalCall:
    """One licensing operation's portal call and what its result is checked against."""

    cause: str  # activation, reactivation, transfer, or the reactivation's cause
    path: str
    body: dict[str, Any]
    tenant: str
    ids: list[str]  # the computer IDs the license must be bound to
    build: str
    actor: str
    report: Report
    extra: Extra = None  # written in the install's transaction
    tracked: bool = False  # a pending request is recorded already (a tenant check's item)

    def __repr__(self) -> str:  # the body may hold an activation key
        return f"PortalCall(cause={self.cause!r}, path={self.path!r}, tenant={self.tenant!r})"


class Licensing:
    def __init__(self, app: Daemon) -> None:
        self.app = app

    # -- preconditions

    def build(self) -> str:
        build = self.app.build
        if build.value is None:
            raise BuildUnknown(key=build.key, reason=build.problem or "not set")
        return build.value

    def cluster_ids(self, require_online: bool = True) -> list[str]:
        """Every registered node's computer ID; the cluster must be whole to talk to the portal."""
        view = self.app.view
        nodes = view.node_list()
        by_id: dict[str, list[str]] = {}
        for node in nodes:
            by_id.setdefault(node.computer_id, []).append(node.name)
        for computer_id, names in by_id.items():
            if len(names) > 1:
                raise DuplicateComputerId(computer_id=computer_id, nodes=sorted(names))
        if require_online:
            offline = [n for n in nodes if not n.online and not n.this_node]
            if offline:
                raise NodesOffline(
                    nodes=[
                        {"name": n.name, "computer_id": n.computer_id, "last_seen": n.last_seen}
                        for n in offline
                    ]
                )
        return self.app.cluster_computer_ids()

    def tenant_row(self, tenant: str) -> tenant_q.TenantRow:
        view = self.app.view.tenants.get(tenant)
        if view is None:
            raise NoSuchTenant(tenant=tenant)
        return view.row

    # -- the operations

    async def activate(
        self,
        *,
        tenant: str,
        activation_key: str,
        request_id: str,
        actor: str,
        report: Report,
        extra: Extra = None,
        tracked: bool = False,
    ) -> wire.Outcome:
        self.tenant_row(tenant)
        build = self.build()
        ids = self.cluster_ids()
        body = {
            "activation_key": activation_key,
            "tenant_id": tenant,
            "computer_ids": ids,
            "build": build,
            "request_id": request_id,
        }
        await report(
            "portal", f"activating tenant {tenant} on the License Portal ({len(ids)} computer ID(s))"
        )
        call = PortalCall(
            cause="activation",
            path="/activations",
            body=body,
            tenant=tenant,
            ids=ids,
            build=build,
            actor=actor,
            report=report,
            extra=extra,
            tracked=tracked,
        )
        return await self._online(call)

    async def reactivate(
        self,
        *,
        tenant: str,
        request_id: str,
        actor: str,
        report: Report,
        cause: str = "reactivation",
        extra: Extra = None,
        tracked: bool = False,
    ) -> wire.Outcome:
        self.tenant_row(tenant)
        build = self.build()
        ids = self.cluster_ids()
        body = {"tenant_id": tenant, "computer_ids": ids, "build": build, "request_id": request_id}
        await report("portal", f"reactivating every order of tenant {tenant} on the License Portal")
        call = PortalCall(
            cause=cause,
            path="/reactivations",
            body=body,
            tenant=tenant,
            ids=ids,
            build=build,
            actor=actor,
            report=report,
            extra=extra,
            tracked=tracked,
        )
        return await self._online(call)

    async def transfer(
        self, *, tenant: str, replace: str, request_id: str, actor: str, report: Report
    ) -> wire.Outcome:
        row = self.tenant_row(tenant)
        build = self.build()
        ids = self.cluster_ids()
        old_ids = self.licensed_ids(row)
        if replace not in old_ids:
            raise InvalidLicense(
                reason="not_licensed_here",
                detail=f"computer ID {replace} is not in tenant {tenant}'s license "
                f"({', '.join(old_ids) or 'no license'}); `{CTL} license info` shows the licensed IDs",
            )
        body = {
            "tenant_id": tenant,
            "old_computer_ids": old_ids,
            "new_computer_ids": ids,
            "request_id": request_id,
        }
        await report("portal", f"transferring tenant {tenant} from computer ID {replace} to this cluster")
        call = PortalCall(
            cause="transfer",
            path="/transfers",
            body=body,
            tenant=tenant,
            ids=ids,
            build=build,
            actor=actor,
            report=report,
        )
        return await self._online(call)

    def licensed_ids(self, row: tenant_q.TenantRow) -> list[str]:
        if row.license is None:
            return []
        try:
            payload = self.app.verifier.inspect(row.license.row, row.license.document)
        except LicenseRejected:
            return []
        return list(payload.computer_ids)

    async def _online(self, call: PortalCall) -> wire.Outcome:
        try:
            outcome = await self._online_call(call)
        except VarlinkError as exc:
            self.app.metrics.operation(call.cause, exc.short_name)
            raise
        self.app.metrics.operation(call.cause, "success")
        return outcome

    async def _online_call(self, call: PortalCall) -> wire.Outcome:
        app = self.app
        cause, tenant, actor = call.cause, call.tenant, call.actor
        request_id = str(call.body["request_id"])
        recorded = json.dumps({k: v for k, v in call.body.items() if k != "activation_key"}, sort_keys=True)

        def pending(tx: Tx) -> None:
            # Recorded before the call, under the lease (fenced): a crash after the portal answered
            # leaves a pending request, so a newer license on the portal is not taken for a restore.
            tenant_q.record_offline_request(tx, request_id, tenant, f"online:{cause}", recorded)

        if not call.tracked:  # a tenant check's item is its pending record already
            await app.group_commit.write(pending, fence=app.cluster.fence())
        try:
            answer = await app.portal.post(call.path, call.body, what=cause, guard=app.cluster.fence)
        except (PortalRejected, PortalUnreachable) as exc:
            await self._record_failure(tenant, cause, request_id, actor, exc)
            raise
        document = answer.get("license")
        if not isinstance(document, str):
            error = InvalidLicense(reason="malformed", detail="the portal's answer holds no license")
            await self._record_failure(tenant, cause, request_id, actor, error)
            raise error
        await call.report("verify", "verifying the license's signature, tenant and integrity key")
        try:
            payload = self._verify(document, tenant, call.ids, call.build)
        except VarlinkError as exc:
            await self._record_failure(tenant, cause, request_id, actor, exc)
            raise
        installed = await self.install(tenant, document, payload, cause, actor, request_id, call.extra)
        await call.report(
            "installed",
            f"license {payload.license_id} installed, valid until {rfc3339(payload.valid_until.timestamp())}",
        )
        return self.outcome(tenant, installed)

    def _verify(self, document: str, tenant: str, ids: list[str], build: str | None) -> Payload:
        expected = integrity_key(tenant, ids)
        try:
            payload = verify(
                document,
                self.app.verifier.keys,
                tenant_id=tenant,
                integrity_key=expected,
                now=datetime.fromtimestamp(clock.now(), UTC),
                max_skew=timedelta(seconds=MAX_SKEW),
            )
        except LicenseRejected as exc:
            if exc.reason == "integrity_mismatch":
                raise IntegrityMismatch(expected=exc.expected or expected, actual=exc.actual or "") from None
            raise InvalidLicense(reason=exc.reason, detail=f"{exc.detail}. {exc.explanation}") from None
        if build is not None and payload.build != build:
            raise InvalidLicense(
                reason="build_mismatch",
                detail=f"the license is for build {payload.build}, this installation runs {build}; "
                f"reactivate (`{CTL} license reactivate`)",
            )
        return payload

    async def import_document(self, *, document: str, actor: str, report: Report) -> wire.Outcome:
        """Install a license file or offline response after the same checks as an online answer."""
        request_id = f"import-{uuid.uuid4()}"
        try:
            text = extract_license(document)
            payload = inspect(text, self.app.verifier.keys)
        except LicenseRejected as exc:
            request = describe_request(document)
            if request is not None:  # the request file itself, imported by mistake
                error = InvalidLicense(
                    reason="request_file",
                    detail=f"this is the offline {request} it is the file to take to the License "
                    "Portal's offline activation page (/offline on the portal), which answers with the "
                    "response file to import here",
                )
            else:
                error = InvalidLicense(reason=exc.reason, detail=f"{exc.detail}. {exc.explanation}")
            await self._record_failure("", "import", request_id, actor, error)
            raise error from None
        tenant = payload.tenant_id
        if tenant not in self.app.view.tenants:
            error = InvalidLicense(
                reason="wrong_tenant",
                detail=f"the license is for tenant {tenant}, which this installation does not have",
            )
            # Not one of ours: recorded as an installation-wide attempt, shown in every history.
            await self._record_failure("", "import", request_id, actor, error)
            raise error
        await report("verify", f"verifying the license for tenant {tenant}")
        try:
            payload = self._verify(text, tenant, self.cluster_ids(require_online=False), self.app.build.value)
            self._not_older(tenant, payload)
        except VarlinkError as exc:
            await self._record_failure(tenant, "import", request_id, actor, exc)
            raise
        installed = await self.install(tenant, text, payload, "import", actor, request_id)
        if installed.changed:
            await report("installed", f"license {payload.license_id} installed for tenant {tenant}")
        else:
            already = f"license {payload.license_id} is already installed for tenant {tenant}"
            await report("unchanged", already)
        return self.outcome(tenant, installed)

    def _not_older(self, tenant: str, payload: Payload) -> None:
        current = self.app.view.tenants[tenant].payload
        if (
            current is not None
            and current.license_id != payload.license_id
            and payload.issued_at < current.issued_at
        ):
            raise InvalidLicense(
                reason="superseded",
                detail=f"a newer license ({current.license_id}, issued "
                f"{rfc3339(current.issued_at.timestamp())}) is installed; import the newest license file",
            )

    def offline_request(
        self, tenant: str, kind: str, activation_key: str | None, replace: str | None
    ) -> tuple[wire.OfflineRequest, dict[str, Any]]:
        """The request document for the portal's offline page, and the body it carries."""
        row = self.tenant_row(tenant)
        build = self.build()
        ids = self.cluster_ids()
        request_id = str(uuid.uuid4())
        body: dict[str, Any] = {"kind": kind, "tenant_id": tenant, "request_id": request_id}
        if kind == "activation":
            if not activation_key:
                raise InvalidLicense(
                    reason="no_activation_key", detail="an offline activation needs --key ACTIVATION_KEY"
                )
            body |= {"activation_key": activation_key, "computer_ids": ids, "build": build}
        elif kind == "reactivation":
            body |= {"computer_ids": ids, "build": build}
        else:
            old_ids = self.licensed_ids(row)
            if not replace or replace not in old_ids:
                raise InvalidLicense(
                    reason="not_licensed_here",
                    detail=f"computer ID {replace} is not in tenant {tenant}'s license",
                )
            body |= {"old_computer_ids": old_ids, "new_computer_ids": ids, "build": build}
        header = request_header_lines(tenant, kind, datetime.now(UTC))
        document = encode_request(body, header)
        return wire.OfflineRequest(tenant=tenant, kind=kind, request_id=request_id, document=document), body  # type: ignore[arg-type]

    async def record_offline_request(
        self, request: wire.OfflineRequest, body: dict[str, Any], actor: str
    ) -> None:
        """Remember a pending offline request (without its activation key) in the audit trail."""
        recorded = json.dumps({k: v for k, v in body.items() if k != "activation_key"}, sort_keys=True)

        def write(tx: Tx) -> None:
            tenant_q.record_offline_request(tx, request.request_id, request.tenant, request.kind, recorded)
            audit.record(
                tx, actor, f"offline_{request.kind}_request", request.tenant, request.request_id, "written"
            )

        await self.app.db.write(write)

    # -- storing results

    async def install(
        self,
        tenant: str,
        document: str,
        payload: Payload,
        cause: str,
        actor: str,
        request_id: str,
        extra: Extra = None,
    ) -> Installed:
        app = self.app
        previous = app.view.tenants.get(tenant)
        old = previous.payload if previous is not None else None
        warnings = []
        if old is not None and old.license_id != payload.license_id:
            missing = sorted({o.order_id for o in old.orders} - {o.order_id for o in payload.orders})
            if missing:
                warnings.append(
                    f"the new license no longer covers order(s) {', '.join(missing)} (ended or removed "
                    "on the portal); contact the vendor if they should still be active"
                )

        def write(tx: Tx) -> tuple[bool, tenant_q.TenantRow | None]:
            changed = tenant_q.install_license(
                tx,
                tenant,
                payload.license_id,
                document,
                payload.build,
                payload.integrity_key,
                payload.issued_at.timestamp(),
                payload.valid_until.timestamp(),
                actor,
                cause,
                [(o.order_id, o.product) for o in payload.orders],
            )
            audit.record(
                tx,
                actor,
                cause,
                tenant,
                request_id,
                "installed" if changed else "unchanged",
                f"license {payload.license_id}, {len(payload.orders)} order(s), valid until "
                f"{rfc3339(payload.valid_until.timestamp())}",
            )
            if extra is not None:
                extra(tx, payload)
            if changed:
                tenant_q.complete_offline_requests(tx, tenant)
                msg_q.notify(tx, tenant, "info", cause, *success_message(cause, payload))
                for warning in warnings:
                    msg_q.notify(
                        tx, tenant, "warning", "orders_missing", "License covers fewer orders", warning
                    )
            return changed, tenant_q.get_tenant(tx, tenant)

        changed, row = await app.group_commit.write(write, fence=app.cluster.fence())
        log.info(
            "license installed" if changed else "license already installed",
            tenant=tenant,
            license=payload.license_id,
            cause=cause,
            request_id=request_id,
            orders=len(payload.orders),
        )
        if row is not None and row.license is not None:
            app.verifier.remember(row.license.row, payload)  # verified above: no second signature check
            app.take_tenant(row)
        return Installed(payload, changed, warnings)

    async def _record_failure(
        self, tenant: str, cause: str, request_id: str, actor: str, error: VarlinkError
    ) -> None:
        log.warning(
            f"{cause} failed",
            tenant=tenant,
            request_id=request_id,
            error=error.short_name,
            reason=error.sentence(),
        )

        def write(tx: Tx) -> None:
            audit.record(
                tx, actor, cause, tenant, request_id, f"failed: {error.short_name}", error.sentence()
            )
            if isinstance(error, PortalRejected):
                tenant_q.complete_request(tx, request_id)  # refused: the portal issued nothing

        with contextlib.suppress(StoreUnavailableError):  # the caller's error matters more
            await self.app.db.write(write)

    def outcome(self, tenant: str, installed: Installed) -> wire.Outcome:
        license_info = license_to_wire(self.app, tenant)
        return wire.Outcome(
            tenant=tenant, warnings=installed.warnings, license=license_info, changed=installed.changed
        )


def describe_request(document: str) -> str | None:
    """What an offline request file asks ("reactivation request for tenant T;"), if it is one."""
    try:
        body = decode_request(document)
    except RequestFileError:
        return None
    return f"{body['kind']} request for tenant {clean(body.get('tenant_id', '?'), 100)};"


def success_message(cause: str, payload: Payload) -> tuple[str, str]:
    """(title, text) of the notification a successful operation leaves."""
    until = rfc3339(payload.valid_until.timestamp())[:10]
    orders = f"{len(payload.orders)} order(s): {order_summary(payload)}"
    if cause.startswith("upgrade:"):
        build = cause.split(":", 1)[1]
        return (
            "License reactivated after upgrade",
            f"Reactivated after upgrade to {build}, valid until {until}; {orders}.",
        )
    if cause == "restore":
        return (
            "License reactivated after restore",
            f"Reactivated after restore, valid until {until}; {orders}.",
        )
    titles = {
        "activation": "License activated",
        "import": "License imported",
        "transfer": "License transferred",
    }
    # The text follows the title on one line ("License reactivated: Now valid until ..."):
    # it must not say the title again.
    return titles.get(cause, "License reactivated"), f"Now valid until {until}; {orders}."


def license_to_wire(
    app: Daemon, tenant: str, history: list[wire.AuditEntry] | None = None
) -> wire.License | None:
    view = app.view.tenants.get(tenant)
    if view is None or view.payload is None:
        return None
    p = view.payload
    return wire.License(
        tenant=tenant,
        state=view.state,
        reason=view.reason,
        license_id=p.license_id,
        support_id=p.support_id,
        build=p.build,
        computer_ids=list(p.computer_ids),
        integrity_key=p.integrity_key,
        orders=[
            wire.Order(
                order_id=o.order_id,
                product=o.product,
                features=dict(o.features),
                quantity=o.quantity,
                valid_until=rfc3339(o.valid_until.timestamp()),
            )
            for o in p.orders
        ],
        issued_at=rfc3339(p.issued_at.timestamp()),
        valid_until=rfc3339(p.valid_until.timestamp()),
        supersedes=p.supersedes,
        history=history or [],
    )
