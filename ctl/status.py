"""`ctl status` and `ctl identity` (`ctl check`, the monitoring plugin, is in check.py)."""

from __future__ import annotations

from paragon_licensed.ctl.main import Context
from paragon_licensed.ctl.output import date, emit_json, fields, human, out, table

TYPE_CHECKING = False  # typing costs ctl a few milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

# Faults the daemon survives, each a sentence (`ctl check` makes them a WARNING at least).
_FAULTS = (("state_problem", "State folder"), ("clock_problem", "Clock"))


def status(ctx: Context) -> int:
    with ctx.connect() as client:
        reply = client.call("GetStatus")["status"]
        if ctx.json:
            emit_json(reply)
            return 0
        total, listed = reply["tenant_total"], reply["attention"]
        if 0 < total <= FEW:
            # A small node: every tenant, the active ones included (one page, same connection).
            listed = client.call("ListTenants", {"limit": FEW})["tenants"]
    out(_summary(reply))
    if len(reply["nodes"]) > 1:
        out()
        out(nodes_table(reply["nodes"]))
    out()
    out(tenants_table(listed, total))
    more = reply["attention_total"] - len(reply["attention"])
    if total > FEW and more > 0:
        out(f"... and {more} more that need attention: paragon-licensed ctl tenants --state STATE")
    return 0


# Up to this many tenants, status lists them all; beyond, only those that need attention.
FEW = 10


def _summary(s: dict[str, Any]) -> str:
    role = "coordinator" if s["is_coordinator"] else f"coordinator is {s['coordinator'] or 'nobody yet'}"
    store = s["store_backend"] + (
        ", available" if s["store_available"] else f", UNAVAILABLE: {s['store_problem']}"
    )
    return fields(
        [
            ("Node", f"{s['node']} ({role})"),
            ("Computer ID", f"{s['computer_id']} ({s['identity_strength']} identity)"),
            ("Build", s["build"] or f"unknown: {s['build_problem']}"),
            ("Deployment", human(s["deployment"]).replace(" ", "-")),
            ("Store", store),
            ("Daemon", f"{s['version']}, {s['activity']}"),
            ("Tenants", _counts(s)),
        ]
        + [(label, f"PROBLEM: {s[key]}") for key, label in _FAULTS if s.get(key)]
    )


def nodes_table(nodes: list[dict[str, Any]]) -> str:
    rows = [
        (
            n["name"] + (" (this node)" if n["this_node"] else ""),
            n["computer_id"],
            "online" if n["online"] else "OFFLINE",
            f"{n['seconds_since_seen']:.0f}s ago",
            n["build"],
            "yes" if n["coordinator"] else "",
        )
        for n in nodes
    ]
    return table(("NODE", "COMPUTER ID", "STATE", "LAST SEEN", "BUILD", "COORDINATOR"), rows)


def _counts(s: dict[str, Any]) -> str:
    """ "3: 2 active, 1 expired" (the states with no tenant left out)."""
    counts = ", ".join(f"{n} {human(state)}" for state, n in s["tenant_states"].items() if n)
    return f"{s['tenant_total']}: {counts}" if counts else "none"


def tenants_table(tenants: list[dict[str, Any]], total: int) -> str:
    if not total:
        return "No tenants yet: add one with `paragon-licensed ctl tenants set TENANT`."
    if not tenants:
        return "Every tenant is active."
    rows = []
    for t in tenants:
        days = "" if t["days_left"] is None else str(t["days_left"])
        if t.get("grace_days_left") is not None:
            days = f"grace {t['grace_days_left']}d"
        rows.append((t["tenant"], human(t["state"]), date(t["valid_until"]), days, t["reason"]))
    return table(("TENANT", "STATE", "VALID UNTIL", "DAYS", "DETAIL"), rows)


def identity(ctx: Context) -> int:
    reply = ctx.call("GetIdentity")["identity"]
    if ctx.json:
        emit_json(reply)
        return 0
    sources = reply["sources"]
    out(
        fields(
            [
                ("Computer ID", reply["computer_id"]),
                ("Strength", "hardware" if reply["strength"] == "hardware" else "software only"),
                ("machine-id from", sources["machine_id"]),
                ("product UUID from", sources["product_uuid"] or "none usable"),
            ]
        )
    )
    for warning in reply["warnings"]:
        out(f"warning: {warning}")
    return 0
