"""Tenants, their licenses (history kept), the orders used per integrity key, and meta."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from paragon_licensed.daemon.store.db import Tx


@dataclass(frozen=True)
class LicenseRow:
    row: int
    tenant_id: str
    license_id: str
    document: str
    build: str
    integrity_key: str
    issued_at: float
    valid_until: float
    installed_at: float
    installed_by: str
    cause: str


@dataclass(frozen=True)
class TenantRow:
    id: str
    admin_email: str
    created_at: float
    flag: str  # "", "needs_reactivation" or "needs_transfer"
    flag_reason: str
    flag_cause: str  # restore, upgrade, identity, nodes: what the flag is about
    flag_since: float | None
    grace_until: float | None
    retry_count: int
    next_retry_at: float | None
    license: LicenseRow | None


@dataclass(frozen=True)
class Meta:
    store_id: str
    generation: int
    cloud_admin_email: str


_LICENSE_COLUMNS = (
    "l.id, l.tenant_id, l.license_id, l.document, l.build, l.integrity_key, l.issued_at, "
    "l.valid_until, l.installed_at, l.installed_by, l.cause"
)
_TENANT_SELECT = (
    "SELECT t.id, t.admin_email, t.created_at, t.flag, t.flag_reason, t.flag_cause, t.flag_since, "
    f"t.grace_until, t.retry_count, t.next_retry_at, {_LICENSE_COLUMNS} "
    "FROM tenants t LEFT JOIN licenses l ON l.id = t.license_row"
)


def _tenant(row: tuple[Any, ...]) -> TenantRow:
    license_row = LicenseRow(*row[10:]) if row[10] is not None else None
    return TenantRow(
        id=row[0],
        admin_email=row[1],
        created_at=row[2],
        flag=row[3],
        flag_reason=row[4],
        flag_cause=row[5],
        flag_since=row[6],
        grace_until=row[7],
        retry_count=row[8],
        next_retry_at=row[9],
        license=license_row,
    )


def touch(tx: Tx, tenant_id: str) -> int:
    """Count a change of one tenant: the store's generation moves and the tenant remembers it."""
    generation = tx.bump_generation()
    tx.execute("UPDATE tenants SET updated_gen = ? WHERE id = ?", (generation, tenant_id))
    return generation


def changed_since(tx: Tx, generation: int) -> list[TenantRow]:
    """The tenants changed after `generation` (all of them for 0)."""
    return [
        _tenant(r) for r in tx.all(_TENANT_SELECT + " WHERE t.updated_gen > ? ORDER BY t.id", (generation,))
    ]


def meta(tx: Tx) -> Meta:
    row = tx.one("SELECT store_id, generation, cloud_admin_email FROM meta WHERE id = 1")
    assert row is not None, "the store has no meta row: migrations did not run"
    return Meta(str(row[0]), int(row[1]), str(row[2]))


def generation(tx: Tx) -> int:
    return int(tx.scalar("SELECT generation FROM meta WHERE id = 1"))


def set_cloud_admin_email(tx: Tx, email: str) -> None:
    tx.execute("UPDATE meta SET cloud_admin_email = ? WHERE id = 1", (email,))
    tx.bump_generation()


def ensure_tenant(tx: Tx, tenant_id: str, admin_email: str = "") -> bool:
    """Create a tenant if it does not exist (seeds never overwrite what ctl changed)."""
    if tx.scalar("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)):
        return False
    tx.execute(
        "INSERT INTO tenants (id, admin_email, created_at) VALUES (?, ?, {now})",
        (tenant_id, admin_email),
    )
    touch(tx, tenant_id)
    return True


def set_admin_email(tx: Tx, tenant_id: str, email: str) -> bool:
    changed = tx.execute("UPDATE tenants SET admin_email = ? WHERE id = ?", (email, tenant_id)) > 0
    if changed:
        touch(tx, tenant_id)
    return changed


def get_tenant(tx: Tx, tenant_id: str) -> TenantRow | None:
    row = tx.one(_TENANT_SELECT + " WHERE t.id = ?", (tenant_id,))
    return _tenant(row) if row else None


def all_tenants(tx: Tx) -> list[TenantRow]:
    return [_tenant(r) for r in tx.all(_TENANT_SELECT + " ORDER BY t.id")]


def tenant_ids(tx: Tx) -> list[str]:
    return [str(r[0]) for r in tx.all("SELECT id FROM tenants ORDER BY id")]


def install_license(
    tx: Tx,
    tenant_id: str,
    license_id: str,
    document: str,
    build: str,
    integrity_key: str,
    issued_at: float,
    valid_until: float,
    installed_by: str,
    cause: str,
    orders: Iterable[tuple[str, str]] = (),
) -> bool:
    """Make a verified license the tenant's current one; False when it already was.

    The previous licenses stay in the history. The tenant's reactivation flag and
    retry schedule are cleared, and the orders it covers are recorded against its
    integrity key.
    """
    existing = tx.scalar(
        "SELECT id FROM licenses WHERE tenant_id = ? AND license_id = ?", (tenant_id, license_id)
    )
    current = tx.scalar("SELECT license_row FROM tenants WHERE id = ?", (tenant_id,))
    if existing is not None and existing == current:
        return False
    if existing is None:
        existing = tx.scalar(
            "INSERT INTO licenses (tenant_id, license_id, document, build, integrity_key, issued_at, "
            "valid_until, installed_at, installed_by, cause) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, {now}, ?, ?) RETURNING id",
            (
                tenant_id,
                license_id,
                document,
                build,
                integrity_key,
                issued_at,
                valid_until,
                installed_by,
                cause,
            ),
        )
    tx.execute(
        "UPDATE tenants SET license_row = ?, flag = '', flag_reason = '', flag_cause = '', "
        "flag_since = NULL, grace_until = NULL, retry_count = 0, next_retry_at = NULL WHERE id = ?",
        (existing, tenant_id),
    )
    for order_id, product in orders:
        tx.execute(
            "INSERT INTO orders_used (integrity_key, order_id, tenant_id, product, first_seen, "
            "last_seen) VALUES (?, ?, ?, ?, {now}, {now}) ON CONFLICT (integrity_key, order_id) "
            "DO UPDATE SET last_seen = {now}",
            (integrity_key, order_id, tenant_id, product),
        )
    touch(tx, tenant_id)
    return True


def set_flag(
    tx: Tx,
    tenant_id: str,
    flag: str,
    cause: str,
    reason: str,
    grace_until: float | None = None,
    next_retry_at: float | None = None,
) -> bool:
    """Mark a tenant as needing reactivation or a transfer; False when it already was, for this cause.

    The first time it was flagged, the retry count and the grace period are kept
    while the flag stays the same.
    """
    current = tx.one("SELECT flag, flag_cause FROM tenants WHERE id = ?", (tenant_id,))
    if current is None:
        return False
    if (current[0], current[1]) == (flag, cause):
        return False
    tx.execute(
        "UPDATE tenants SET flag = ?, flag_cause = ?, flag_reason = ?, "
        "flag_since = CASE WHEN flag = ? THEN flag_since ELSE {now} END, "
        "grace_until = CASE WHEN flag = ? THEN coalesce(grace_until, ?) ELSE ? END, "
        "next_retry_at = ?, retry_count = CASE WHEN flag = ? THEN retry_count ELSE 0 END WHERE id = ?",
        (flag, cause, reason, flag, flag, grace_until, grace_until, next_retry_at, flag, tenant_id),
    )
    touch(tx, tenant_id)
    return True


def schedule_retry(
    tx: Tx, tenant_id: str, cause: str, reason: str, grace_until: float, next_retry_at: float
) -> int:
    """Record a failed reactivation: keep (or start) the grace period, count it, set the next try.

    Returns how many attempts have failed since the tenant was flagged.
    """
    tx.execute(
        "UPDATE tenants SET flag = 'needs_reactivation', "
        "flag_cause = CASE WHEN flag = 'needs_reactivation' AND flag_cause <> '' THEN flag_cause ELSE ? END, "
        "flag_reason = ?, flag_since = coalesce(flag_since, {now}), "
        "grace_until = coalesce(grace_until, ?), retry_count = retry_count + 1, next_retry_at = ? "
        "WHERE id = ?",
        (cause, reason, grace_until, next_retry_at, tenant_id),
    )
    touch(tx, tenant_id)
    return int(tx.scalar("SELECT retry_count FROM tenants WHERE id = ?", (tenant_id,)))


def clear_flag(tx: Tx, tenant_id: str) -> None:
    tx.execute(
        "UPDATE tenants SET flag = '', flag_reason = '', flag_cause = '', flag_since = NULL, "
        "grace_until = NULL, retry_count = 0, next_retry_at = NULL WHERE id = ?",
        (tenant_id,),
    )
    touch(tx, tenant_id)


def license_history(tx: Tx, tenant_id: str, limit: int = 50) -> list[LicenseRow]:
    rows = tx.all(
        f"SELECT {_LICENSE_COLUMNS} FROM licenses l WHERE l.tenant_id = ? ORDER BY l.id DESC LIMIT ?",
        (tenant_id, limit),
    )
    return [LicenseRow(*r) for r in rows]


def license_ids(tx: Tx, tenant_id: str) -> set[str]:
    """Every license this store ever installed for the tenant."""
    return {str(r[0]) for r in tx.all("SELECT license_id FROM licenses WHERE tenant_id = ?", (tenant_id,))}


def orders_used(tx: Tx, integrity_key: str) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in tx.all(
            "SELECT order_id, product FROM orders_used WHERE integrity_key = ? ORDER BY order_id",
            (integrity_key,),
        )
    ]


def record_offline_request(tx: Tx, request_id: str, tenant_id: str, kind: str, body: str) -> None:
    """A request sent (online) or handed out (offline) whose license is not installed yet."""
    tx.execute(
        "INSERT INTO offline_requests (request_id, tenant_id, kind, created_at, body) "
        "VALUES (?, ?, ?, {now}, ?) ON CONFLICT (request_id) DO NOTHING",
        (request_id, tenant_id, kind, body),
    )


def complete_request(tx: Tx, request_id: str) -> None:
    tx.execute(
        "UPDATE offline_requests SET completed_at = {now} WHERE request_id = ? AND completed_at IS NULL",
        (request_id,),
    )


def complete_offline_requests(tx: Tx, tenant_id: str) -> None:
    tx.execute(
        "UPDATE offline_requests SET completed_at = {now} WHERE tenant_id = ? AND completed_at IS NULL",
        (tenant_id,),
    )


def pending_offline_requests(tx: Tx, tenant_id: str) -> list[tuple[str, str, float]]:
    return [
        (str(r[0]), str(r[1]), float(r[2]))
        for r in tx.all(
            "SELECT request_id, kind, created_at FROM offline_requests "
            "WHERE tenant_id = ? AND completed_at IS NULL ORDER BY created_at",
            (tenant_id,),
        )
    ]
