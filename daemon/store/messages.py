"""The notification center, the e-mail outbox and the reminder bookkeeping.

Callers write these in the same transaction as the result they report, so a
crash never keeps a result without its notification, or the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from paragon_licensed.daemon.store.db import Tx


@dataclass(frozen=True)
class NotificationRow:
    id: int
    tenant_id: str | None
    created_at: float
    severity: str
    kind: str
    title: str
    body: str
    acked_at: float | None


@dataclass(frozen=True)
class MailRow:
    id: int
    created_at: float
    recipient: str
    subject: str
    body: str
    attempts: int


_NOTIFICATION_COLUMNS = "id, tenant_id, created_at, severity, kind, title, body, acked_at"


def notify(tx: Tx, tenant_id: str | None, severity: str, kind: str, title: str, body: str) -> int:
    return int(
        tx.scalar(
            "INSERT INTO notifications (tenant_id, created_at, severity, kind, title, body) "
            "VALUES (?, {now}, ?, ?, ?, ?) RETURNING id",
            (tenant_id, severity, kind, title, body),
        )
    )


def notifications(
    tx: Tx, tenant_id: str | None = None, unread_only: bool = False, limit: int = 500
) -> list[NotificationRow]:
    where, params = ["1 = 1"], []
    if tenant_id is not None:
        where.append("tenant_id = ?")
        params.append(tenant_id)
    if unread_only:
        where.append("acked_at IS NULL")
    rows = tx.all(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE {' AND '.join(where)} "
        "ORDER BY id DESC LIMIT ?",
        (*params, limit),
    )
    return [NotificationRow(*r) for r in rows]


def notifications_after(tx: Tx, last_id: int, limit: int = 500) -> list[NotificationRow]:
    rows = tx.all(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE id > ? ORDER BY id LIMIT ?",
        (last_id, limit),
    )
    return [NotificationRow(*r) for r in rows]


def last_notification_id(tx: Tx) -> int:
    return int(tx.scalar("SELECT coalesce(max(id), 0) FROM notifications"))


def last_notification(tx: Tx, tenant_id: str | None, kind: str) -> NotificationRow | None:
    # One condition on tenant_id or the other, so that the (tenant_id, id) index serves it.
    params: tuple[str, ...] = (kind,) if tenant_id is None else (kind, tenant_id)
    who = "tenant_id IS NULL" if tenant_id is None else "tenant_id = ?"
    row = tx.one(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE kind = ? AND {who} "
        "ORDER BY id DESC LIMIT 1",
        params,
    )
    return NotificationRow(*row) if row else None


def ack(tx: Tx, ids: Sequence[int]) -> int:
    count = 0
    for notification_id in ids:
        count += tx.execute(
            "UPDATE notifications SET acked_at = {now} WHERE id = ? AND acked_at IS NULL",
            (notification_id,),
        )
    return count


def enqueue_mail(tx: Tx, recipient: str, subject: str, body: str) -> int:
    return int(
        tx.scalar(
            "INSERT INTO outbox (created_at, recipient, subject, body, next_attempt_at) "
            "VALUES ({now}, ?, ?, ?, {now}) RETURNING id",
            (recipient, subject, body),
        )
    )


def due_mail(tx: Tx, limit: int = 50) -> list[MailRow]:
    rows = tx.all(
        "SELECT id, created_at, recipient, subject, body, attempts FROM outbox "
        "WHERE sent_at IS NULL AND next_attempt_at <= {now} ORDER BY id LIMIT ?",
        (limit,),
    )
    return [MailRow(*r) for r in rows]


def next_mail_due_in(tx: Tx) -> float | None:
    value = tx.scalar("SELECT min(next_attempt_at) - {now} FROM outbox WHERE sent_at IS NULL")
    return None if value is None else float(value)


def mark_sent(tx: Tx, mail_id: int) -> bool:
    return (
        tx.execute(
            "UPDATE outbox SET sent_at = {now}, attempts = attempts + 1 WHERE id = ? AND sent_at IS NULL",
            (mail_id,),
        )
        > 0
    )


def mark_failed(tx: Tx, mail_id: int, error: str, retry_in: float) -> None:
    tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = {now} + ? "
        "WHERE id = ? AND sent_at IS NULL",
        (error[:500], retry_in, mail_id),
    )


def sent_mail(tx: Tx, limit: int = 100) -> list[MailRow]:
    rows = tx.all(
        "SELECT id, created_at, recipient, subject, body, attempts FROM outbox "
        "WHERE sent_at IS NOT NULL ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [MailRow(*r) for r in rows]


def reminder_due(tx: Tx, recipient: str, failure_key: str, interval: float) -> bool:
    """Whether this failure may be mailed to this recipient again (at most once per interval)."""
    last = tx.scalar(
        "SELECT last_sent_at FROM mail_reminders WHERE recipient = ? AND failure_key = ?",
        (recipient, failure_key),
    )
    return last is None or float(tx.now()) - float(last) >= interval


def remember_reminder(tx: Tx, recipient: str, failure_key: str) -> None:
    tx.execute(
        "INSERT INTO mail_reminders (recipient, failure_key, last_sent_at) VALUES (?, ?, {now}) "
        "ON CONFLICT (recipient, failure_key) DO UPDATE SET last_sent_at = {now}",
        (recipient, failure_key),
    )
