"""Tenant check runs, their items, and the failures waiting for the run's digest e-mails."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store.db import Tx


@dataclass(frozen=True)
class Item:
    run_id: str
    tenant_id: str
    request_id: str
    kind: str  # reactivate or activate
    state: str  # pending, reactivated, failed, skipped
    reason: str
    valid_until: float | None


@dataclass(frozen=True)
class Run:
    id: str
    trigger: str
    started_at: float
    total: int
    finished: bool = False
    note: str = ""


def start(
    tx: Tx,
    run_id: str,
    trigger: str,
    items: Iterable[tuple[str, str, str]],
    skipped: Iterable[tuple[str, str]],
) -> int:
    """Record a run: the tenants to process (tenant, request_id, kind) and those skipped (tenant, why)."""
    pending = list(items)
    left_out = list(skipped)
    tx.execute(
        "INSERT INTO check_runs (id, trigger, started_at, total) VALUES (?, ?, {now}, ?)",
        (run_id, trigger, len(pending) + len(left_out)),
    )
    for tenant, request_id, kind in pending:
        tx.execute(
            "INSERT INTO check_items (run_id, tenant_id, request_id, kind, state) "
            "VALUES (?, ?, ?, ?, 'pending')",
            (run_id, tenant, request_id, kind),
        )
    for tenant, why in left_out:
        tx.execute(
            "INSERT INTO check_items (run_id, tenant_id, request_id, kind, state, reason) "
            "VALUES (?, ?, '', 'none', 'skipped', ?)",
            (run_id, tenant, why),
        )
    return len(pending)


def get(tx: Tx, run_id: str) -> Run | None:
    row = tx.one(
        "SELECT id, trigger, started_at, total, finished_at IS NOT NULL, note FROM check_runs WHERE id = ?",
        (run_id,),
    )
    return Run(row[0], row[1], row[2], row[3], bool(row[4]), row[5]) if row else None


def pending_for(tx: Tx, tenant_id: str) -> bool:
    """Whether an unfinished run still has this tenant to do (its request may be in flight)."""
    return bool(
        tx.scalar(
            "SELECT 1 FROM check_items i JOIN check_runs r ON r.id = i.run_id "
            "WHERE i.tenant_id = ? AND i.state = 'pending' AND r.finished_at IS NULL LIMIT 1",
            (tenant_id,),
        )
    )


def unfinished(tx: Tx) -> list[Run]:
    rows = tx.all(
        "SELECT id, trigger, started_at, total FROM check_runs WHERE finished_at IS NULL ORDER BY started_at"
    )
    return [Run(*r) for r in rows]


def items(tx: Tx, run_id: str) -> list[Item]:
    rows = tx.all(
        "SELECT run_id, tenant_id, request_id, kind, state, reason, valid_until FROM check_items "
        "WHERE run_id = ? ORDER BY tenant_id",
        (run_id,),
    )
    return [Item(*r) for r in rows]


def settle(
    tx: Tx, run_id: str, tenant: str, state: str, reason: str, valid_until: float | None = None
) -> None:
    tx.execute(
        "UPDATE check_items SET state = ?, reason = ?, valid_until = ? WHERE run_id = ? AND tenant_id = ?",
        (state, reason, valid_until, run_id, tenant),
    )


def finish(tx: Tx, run_id: str, note: str = "") -> None:
    tx.execute("UPDATE check_runs SET finished_at = {now}, note = ? WHERE id = ?", (note, run_id))


def add_failure(
    tx: Tx, run_id: str, recipient: str, tenant: str, failure_key: str, reason: str, interval: float
) -> bool:
    """Queue a failure for the run's digest, unless it was mailed to this recipient within interval."""
    if not msg_q.reminder_due(tx, recipient, failure_key, interval):
        return False
    already = tx.scalar(
        "SELECT 1 FROM mail_pending WHERE recipient = ? AND failure_key = ? AND mailed_at IS NULL",
        (recipient, failure_key),
    )
    if already:
        return False
    tx.execute(
        "INSERT INTO mail_pending (run_id, recipient, tenant_id, failure_key, reason, created_at) "
        "VALUES (?, ?, ?, ?, ?, {now})",
        (run_id, recipient, tenant, failure_key, reason),
    )
    return True


def open_failures(tx: Tx) -> dict[str, list[tuple[int, str, str, str]]]:
    """Failures not mailed yet, by recipient: (id, tenant, failure_key, reason)."""
    grouped: dict[str, list[tuple[int, str, str, str]]] = {}
    for row in tx.all(
        "SELECT id, recipient, tenant_id, failure_key, reason FROM mail_pending "
        "WHERE mailed_at IS NULL ORDER BY id"
    ):
        grouped.setdefault(str(row[1]), []).append((int(row[0]), str(row[2]), str(row[3]), str(row[4])))
    return grouped


def mark_mailed(tx: Tx, ids: Iterable[int]) -> None:
    for pending_id in ids:
        tx.execute("UPDATE mail_pending SET mailed_at = {now} WHERE id = ?", (pending_id,))
