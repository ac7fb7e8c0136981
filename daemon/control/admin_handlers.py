"""Handlers for nodes, tenants, the cloud administrator, notifications and the event stream."""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec

from paragon_licensed.daemon import log
from paragon_licensed.daemon.control.license_handlers import actor
from paragon_licensed.daemon.control.server import CallContext
from paragon_licensed.daemon.job_kinds import TenantCheckJob
from paragon_licensed.daemon.notify import notification_to_wire
from paragon_licensed.daemon.store import audit
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store import nodes as node_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.db import Tx
from paragon_licensed.interface import wire
from paragon_licensed.interface.errors import CTL, InvalidParameter, NodeOnline, NoSuchNode, NoSuchTenant

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


async def forget_node(ctx: CallContext, params: wire.ForgetNodeIn) -> wire.ForgetNodeOut:
    app = ctx.app
    node = next((n for n in app.view.node_list() if n.name == params.name), None)
    if node is None:
        raise NoSuchNode(name=params.name)
    if node.online:
        raise NodeOnline(name=node.name, last_seen=node.last_seen)
    affected = sorted(
        name
        for name, view in app.view.tenants.items()
        if view.payload is not None and node.computer_id in view.payload.computer_ids
    )
    text = (
        f"Management node {node.name} (computer ID {node.computer_id}) was removed from the cluster. "
        f"Transfer the license to the remaining nodes: `{CTL} license transfer --replace {node.computer_id}`."
    )

    def write(tx: Tx) -> None:
        node_q.forget(tx, node.name)
        tx.bump_generation()
        for tenant in affected:
            msg_q.notify(tx, tenant, "warning", "node_forgotten", "Node removed: transfer needed", text)
            audit.record(tx, actor(ctx), "forget_node", tenant, "", "done", text)

    await app.db.write(write)
    log.info("node forgotten", node=node.name, by=actor(ctx), tenants=",".join(affected))
    app.events.emit("nodes_changed", f"node {node.name} was forgotten")
    await app.refresh()
    return wire.ForgetNodeOut(node=node, affected_tenants=affected)


async def list_tenants(ctx: CallContext, params: wire.ListTenantsIn) -> wire.ListTenantsOut:
    view = ctx.app.view
    if params.tenant is not None:
        one = view.tenants.get(params.tenant)
        found = [one.wire_state] if one is not None and params.state in (None, one.state) else []
        return wire.ListTenantsOut(tenants=found, total=len(found))
    limit = params.limit or wire.DEFAULT_PAGE
    names, total = view.names(params.state, params.cursor or "", limit + 1)
    more = len(names) > limit
    names = names[:limit]
    return wire.ListTenantsOut(
        tenants=[view.tenants[name].wire_state for name in names],
        total=total,
        next_cursor=names[-1] if more else None,
    )


async def set_tenant(ctx: CallContext, params: wire.SetTenantIn) -> wire.SetTenantOut:
    app = ctx.app
    if not _TENANT.match(params.tenant):
        raise InvalidParameter(parameter="tenant")
    email = params.admin_email
    if email is not None and email and not _EMAIL.match(email):
        raise InvalidParameter(parameter="admin_email")

    def write(tx: Tx) -> None:
        created = tenant_q.ensure_tenant(tx, params.tenant, email or "")
        if email is not None and not created:
            tenant_q.set_admin_email(tx, params.tenant, email)
        audit.record(
            tx,
            actor(ctx),
            "set_tenant",
            params.tenant,
            "",
            "created" if created else "updated",
            f"admin e-mail {email!r}" if email is not None else "",
        )

    await app.db.write(write)
    log.info("tenant set", tenant=params.tenant, by=actor(ctx))
    await app.refresh()
    return wire.SetTenantOut(tenant=app.view.tenants[params.tenant].summary())


async def set_cloud_admin_email(ctx: CallContext, params: wire.SetCloudAdminEmailIn) -> wire.Empty:
    if params.email and not _EMAIL.match(params.email):
        raise InvalidParameter(parameter="email")
    await ctx.app.db.write(tenant_q.set_cloud_admin_email, params.email)
    log.info("cloud administrator e-mail set", by=actor(ctx))
    await ctx.app.refresh()
    return wire.Empty()


async def list_notifications(ctx: CallContext, params: wire.ListNotificationsIn) -> wire.ListNotificationsOut:
    if params.tenant is not None and params.tenant not in ctx.app.view.tenants:
        raise NoSuchTenant(tenant=params.tenant)
    rows = await ctx.app.db.read(msg_q.notifications, params.tenant, bool(params.unread_only))
    return wire.ListNotificationsOut(notifications=[notification_to_wire(r) for r in rows])


async def ack_notifications(ctx: CallContext, params: wire.AckNotificationsIn) -> wire.AckNotificationsOut:
    acked = await ctx.app.db.write(msg_q.ack, params.ids)
    return wire.AckNotificationsOut(acked=acked)


async def watch(ctx: CallContext, params: wire.Empty) -> wire.WatchOut:
    """Stream events until the caller goes away (the server cancels this call then)."""
    async with ctx.app.events.subscribe() as events:
        async for event in events:
            await ctx.emit(wire.WatchOut(event=event))
    raise InvalidParameter(parameter="more")  # the event stream never ends by itself


async def run_tenant_check(ctx: CallContext, params: wire.Empty) -> wire.RunTenantCheckOut:
    """Run the tenant license processing now, on the coordinator, streaming its progress."""

    async def emit(step: dict[str, Any]) -> None:
        if step.get("step") == "progress":
            await ctx.emit(
                wire.RunTenantCheckOut(
                    progress=wire.CheckProgress(
                        done=int(step["done"]),
                        total=int(step["total"]),
                        tenant=step.get("tenant"),
                        outcome=step.get("outcome"),
                    )
                )
            )

    # A run over many tenants legitimately takes long, and resumes after a failover: no deadline.
    run = TenantCheckJob(run_id=str(uuid.uuid4()))
    job_id = await ctx.app.jobs.submit(run, "", actor(ctx), timeout=None)
    result = await ctx.app.jobs.wait(job_id, emit, timeout=None)
    return wire.RunTenantCheckOut(
        results=msgspec.convert(result["results"], list[wire.CheckResult]),
        note=result["note"] or None,
        looked_at=result.get("looked_at"),
        next_run=result.get("next_run"),
    )
