"""The audit log: every activation, reactivation, import and transfer attempt."""

from __future__ import annotations

from dataclasses import dataclass

from paragon_licensed import text
from paragon_licensed.daemon.store.db import Tx


@dataclass(frozen=True)
class AuditRow:
    at: float
    actor: str
    action: str
    tenant_id: str
    request_id: str
    outcome: str
    detail: str


def record(
    tx: Tx, actor: str, action: str, tenant_id: str, request_id: str, outcome: str, detail: str = ""
) -> None:
    tx.execute(
        "INSERT INTO audit (at, actor, action, tenant_id, request_id, outcome, detail) "
        "VALUES ({now}, ?, ?, ?, ?, ?, ?)",
        # The detail may quote outside text (a portal's message, a file's content): one clean line.
        (actor, action, tenant_id, request_id, outcome, text.clean(detail)),
    )


def for_tenant(tx: Tx, tenant_id: str, limit: int = 100) -> list[AuditRow]:
    """The tenant's entries and the installation-wide ones (imports of files naming no tenant of ours)."""
    rows = tx.all(
        "SELECT at, actor, action, tenant_id, request_id, outcome, detail FROM audit "
        "WHERE tenant_id = ? OR tenant_id = '' ORDER BY id DESC LIMIT ?",
        (tenant_id, limit),
    )
    return [AuditRow(*r) for r in rows]
