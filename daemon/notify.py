"""The notification center as the control interface shows it."""

from __future__ import annotations

from paragon_licensed.daemon.store.messages import NotificationRow
from paragon_licensed.daemon.timefmt import rfc3339
from paragon_licensed.interface import wire

_SEVERITIES: dict[str, wire.Severity] = {"info": "info", "warning": "warning", "error": "error"}


def notification_to_wire(row: NotificationRow) -> wire.Notification:
    return wire.Notification(
        id=row.id,
        tenant=row.tenant_id,
        at=rfc3339(row.created_at),
        severity=_SEVERITIES.get(row.severity, "info"),
        kind=row.kind,
        title=row.title,
        text=row.body,
        acked=row.acked_at is not None,
    )
