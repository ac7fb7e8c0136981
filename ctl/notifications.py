"""`ctl notifications` and `ctl notifications ack ID...`."""

from __future__ import annotations

from paragon_licensed.ctl.main import Context
from paragon_licensed.ctl.output import emit_json, out, table, when


def list_notifications(ctx: Context) -> int:
    params = {"tenant": ctx.args.tenant, "unread_only": bool(ctx.args.unread)}
    notes = ctx.call("ListNotifications", params)["notifications"]
    if ctx.json:
        emit_json(notes)
        return 0
    if not notes:
        out("No notifications.")
        return 0
    rows = [
        (
            n["id"],
            when(n["at"]),
            n["severity"].upper(),
            n["tenant"] or "-",
            "" if n["acked"] else "new",
            f"{n['title']}: {n['text']}",
        )
        for n in notes
    ]
    out(table(("ID", "WHEN", "SEVERITY", "TENANT", "READ", "MESSAGE"), rows))
    return 0


def ack(ctx: Context) -> int:
    acked = ctx.call("AckNotifications", {"ids": ctx.args.ids})["acked"]
    if ctx.json:
        emit_json({"acked": acked})
    else:
        out(f"{acked} notification(s) marked as read.")
    return 0
