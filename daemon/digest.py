"""The failure e-mail: one digest per recipient per run, listing every failed tenant and why."""

from __future__ import annotations

from paragon_licensed.daemon.timefmt import rfc3339
from paragon_licensed.interface.errors import CTL, PortalRejected, VarlinkError


def failure_key(tenant: str, error: VarlinkError) -> str:
    """What makes two failures "the same" for the reminder interval: tenant and cause."""
    code = error.parameters.get("code") if isinstance(error, PortalRejected) else None
    return f"{tenant}:{error.short_name}:{code}" if code else f"{tenant}:{error.short_name}"


def compose_digest(node: str, entries: list[tuple[int, str, str, str]]) -> tuple[str, str]:
    """(subject, body) for failures (id, tenant, failure_key, reason) going to one recipient."""
    tenants = sorted({tenant for _, tenant, _, _ in entries if tenant != "*"})
    portal_down = any(tenant == "*" for _, tenant, _, _ in entries)
    if tenants:
        subject = f"[paragon-licensed] License reactivation failed for {len(tenants)} tenant(s)"
    else:
        subject = "[paragon-licensed] License Portal unreachable: tenant licenses not renewed"
    lines = [
        f"The automatic tenant license processing on {node} ({rfc3339()}) could not renew every license.",
        "",
    ]
    if portal_down:
        reason = next(r for _, tenant, _, r in entries if tenant == "*")
        lines += ["The License Portal could not be reached, so the run stopped:", f"  {reason}", ""]
    if tenants:
        lines.append("Tenants whose license was not reactivated:")
        for _, tenant, _, reason in entries:
            if tenant != "*":
                lines.append(f"  - {tenant}: {reason}")
        lines.append("")
    lines += [
        "Each tenant's notification center has the details; to try again now, run:",
        f"  {CTL} tenants check",
        "To reactivate a tenant offline:",
        f"  {CTL} license reactivate --tenant TENANT --offline --out request.txt",
        "",
        "The same failure is mailed to the same address at most once per reminder interval "
        "(tenant_check.reminder_interval).",
    ]
    return subject, "\n".join(lines) + "\n"
