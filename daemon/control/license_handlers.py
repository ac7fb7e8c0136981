"""Handlers for the license: info, activation, reactivation, offline requests, import and transfer.

Changing operations become jobs for the coordinator; the handler follows the
job and streams its steps to a caller that asked for "more".
"""

from __future__ import annotations

from typing import Any

import msgspec

from paragon_licensed.daemon.control.server import CallContext
from paragon_licensed.daemon.job_kinds import ActivateJob, ImportJob, JobSpec, ReactivateJob, TransferJob
from paragon_licensed.daemon.licensing import license_to_wire
from paragon_licensed.daemon.store import audit
from paragon_licensed.daemon.timefmt import rfc3339
from paragon_licensed.interface import wire
from paragon_licensed.interface.errors import (
    InvalidParameter,
    NoSuchTenant,
    NotActivated,
    StoreUnavailable,
    TenantRequired,
)


def resolve_tenant(ctx: CallContext, tenant: str | None) -> str:
    """The named tenant, or the only one there is."""
    tenants = ctx.app.view.tenants
    if not tenants and not ctx.app.store_opened:
        raise StoreUnavailable(reason=ctx.app.store_problem or "the store is not open yet")
    if tenant is not None:
        if tenant not in tenants:
            raise NoSuchTenant(tenant=tenant)
        return tenant
    if len(tenants) == 1:
        return next(iter(tenants))
    raise TenantRequired(tenants=sorted(tenants))


def actor(ctx: CallContext) -> str:
    return f"{ctx.peer.describe()} on {ctx.app.node}"


async def _run_job(ctx: CallContext, spec: JobSpec, tenant: str) -> wire.Outcome:
    async def emit(step: dict[str, Any]) -> None:
        await ctx.emit(wire.OperationOut(step=msgspec.convert(step, wire.Step)))

    timeout = ctx.app.config.control.operation_timeout
    job_id = await ctx.app.jobs.submit(spec, tenant, actor(ctx), timeout=timeout)
    result = await ctx.app.jobs.wait(job_id, emit, timeout=timeout)
    await ctx.app.refresh()  # the coordinator may be another node: show its result here at once
    return msgspec.convert(result, wire.Outcome)


async def get_license(ctx: CallContext, params: wire.GetLicenseIn) -> wire.GetLicenseOut:
    tenant = resolve_tenant(ctx, params.tenant)
    history: list[wire.AuditEntry] = []
    if params.history:
        rows = await ctx.app.db.read(audit.for_tenant, tenant)
        history = [
            wire.AuditEntry(
                at=rfc3339(r.at),
                actor=r.actor,
                action=r.action,
                tenant=r.tenant_id,
                outcome=r.outcome,
                request_id=r.request_id,
                detail=r.detail,
            )
            for r in rows
        ]
    info = license_to_wire(ctx.app, tenant, history)
    if info is None:
        raise NotActivated(tenant=tenant)
    return wire.GetLicenseOut(license=info)


async def activate(ctx: CallContext, params: wire.ActivateIn) -> wire.OperationOut:
    tenant = resolve_tenant(ctx, params.tenant)
    if not params.activation_key.strip():
        raise InvalidParameter(parameter="activation_key")
    outcome = await _run_job(ctx, ActivateJob(activation_key=params.activation_key.strip()), tenant)
    return wire.OperationOut(outcome=outcome)


async def reactivate(ctx: CallContext, params: wire.ReactivateIn) -> wire.ReactivateOut:
    tenant = resolve_tenant(ctx, params.tenant)
    if params.mode == "offline":
        request = await _offline(ctx, tenant, "reactivation", None, None)
        return wire.ReactivateOut(request=request)
    outcome = await _run_job(ctx, ReactivateJob(), tenant)
    return wire.ReactivateOut(outcome=outcome)


async def _offline(
    ctx: CallContext, tenant: str, kind: str, key: str | None, replace: str | None
) -> wire.OfflineRequest:
    request, body = ctx.app.licensing.offline_request(tenant, kind, key, replace)
    await ctx.app.licensing.record_offline_request(request, body, actor(ctx))
    return request


async def create_offline_request(
    ctx: CallContext, params: wire.CreateOfflineRequestIn
) -> wire.CreateOfflineRequestOut:
    tenant = resolve_tenant(ctx, params.tenant)
    request = await _offline(ctx, tenant, params.kind, params.activation_key, params.replace_computer_id)
    return wire.CreateOfflineRequestOut(request=request)


async def import_license(ctx: CallContext, params: wire.ImportLicenseIn) -> wire.OperationOut:
    outcome = await _run_job(ctx, ImportJob(document=params.document), "")
    return wire.OperationOut(outcome=outcome)


async def transfer(ctx: CallContext, params: wire.TransferIn) -> wire.TransferOut:
    app = ctx.app
    replace = params.replace_computer_id.strip().lower()
    if params.tenant is not None:
        tenants = [resolve_tenant(ctx, params.tenant)]
    else:
        tenants = [
            name
            for name, view in sorted(app.view.tenants.items())
            if view.payload is not None and replace in view.payload.computer_ids
        ]
        if not tenants:
            raise InvalidParameter(parameter="replace_computer_id")
    if params.mode == "offline":
        requests = [await _offline(ctx, tenant, "transfer", None, replace) for tenant in tenants]
        return wire.TransferOut(requests=requests)
    outcomes = [await _run_job(ctx, TransferJob(replace=replace), tenant) for tenant in tenants]
    return wire.TransferOut(outcomes=outcomes)
