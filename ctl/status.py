"""`ctl status`, `ctl identity` and `ctl check` (the monitoring-plugin exit codes)."""

from __future__ import annotations

from typing import Any

from paragon_licensed.ctl.client import Busy, Unreachable
from paragon_licensed.ctl.main import Context
from paragon_licensed.ctl.output import date, emit_json, fields, human, out, table
from paragon_licensed.interface.errors import VarlinkError

CHECK_OK, CHECK_WARNING, CHECK_CRITICAL, CHECK_UNKNOWN = 0, 1, 2, 3
_SEVERITY = {"active": CHECK_OK, "expiring": CHECK_WARNING}
# Faults the daemon survives, each a sentence: they make a check a WARNING at least.
_FAULTS = (("state_problem", "State folder"), ("clock_problem", "Clock"))


def status(ctx: Context) -> int:
    reply = ctx.call("GetStatus")["status"]
    if ctx.json:
        emit_json(reply)
        return 0
    out(_summary(reply))
    if len(reply["nodes"]) > 1:
        out()
        out(nodes_table(reply["nodes"]))
    out()
    out(tenants_table(reply["tenants"]))
    return 0


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


def tenants_table(tenants: list[dict[str, Any]]) -> str:
    if not tenants:
        return "No tenants yet: add one with `paragon-licensed ctl tenants set TENANT`."
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


def check(ctx: Context) -> int:
    """One line and an exit code, as monitoring plugins (Nagios, Icinga) expect."""
    try:
        reply = ctx.call("GetStatus")["status"]
    except Unreachable as exc:
        return _report(CHECK_UNKNOWN, f"daemon unreachable on {exc.path}: {exc.reason}", ctx, [])
    except Busy as exc:
        return _report(CHECK_UNKNOWN, f"daemon busy on {exc.path}: {exc.reason}", ctx, [])
    except VarlinkError as exc:
        return _report(CHECK_UNKNOWN, exc.sentence(), ctx, [])
    tenants = reply["tenants"]
    faults = [f"store unavailable: {reply['store_problem']}"] if reply.get("store_problem") else []
    faults += [str(reply[key]) for key, _ in _FAULTS if reply.get(key)]
    wanted = ctx.args.tenant
    if wanted is not None:
        tenants = [t for t in tenants if t["tenant"] == wanted]
        if not tenants:
            return _report(CHECK_UNKNOWN, f"no tenant {wanted}", ctx, [])
    if not tenants:
        return _report(CHECK_CRITICAL, "no tenant is configured", ctx, [])
    worst = max(_tenant_code(t) for t in tenants)
    problems = [t for t in tenants if _tenant_code(t) == worst and worst != CHECK_OK]
    if worst == CHECK_OK:
        soonest = min(tenants, key=lambda t: t["days_left"] if t["days_left"] is not None else 1 << 30)
        message = f"{len(tenants)} tenant(s) licensed; soonest expiry {date(soonest['valid_until'])}"
    else:
        message = "; ".join(f"{t['tenant']} {human(t['state'])}: {t['reason']}" for t in problems)
    if faults:
        worst = max(worst, CHECK_WARNING)
        message = "; ".join([message, *faults])
    return _report(worst, message, ctx, tenants)


def _tenant_code(tenant: dict[str, Any]) -> int:
    state = tenant["state"]
    if state == "needs_reactivation" and (tenant.get("grace_days_left") or 0) >= 0 and tenant["grace_until"]:
        return CHECK_WARNING
    return _SEVERITY.get(state, CHECK_CRITICAL)


def _report(code: int, message: str, ctx: Context, tenants: list[dict[str, Any]]) -> int:
    label = ("OK", "WARNING", "CRITICAL", "UNKNOWN")[code]
    if ctx.json:
        emit_json({"status": label.lower(), "exit_code": code, "message": message, "tenants": tenants})
    else:
        out(f"LICENSE {label} - {message}")
    return code
