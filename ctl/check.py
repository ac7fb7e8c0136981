"""`ctl check`: a monitoring plugin (the Monitoring Plugins guidelines).

Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one status line
"LICENSE <STATE> - <message> | <performance data>". UNKNOWN means "cannot
tell": a usage error, an unreadable configuration, a daemon that does not
answer. A monitor reads 2 as "the license is gone", so nothing else may exit 2.
With --json the same report is one JSON document, errors included.
"""

from __future__ import annotations

from paragon_licensed.ctl.client import Busy, Client, ConfigUnreadable, TooLarge, Unreachable
from paragon_licensed.ctl.main import Context
from paragon_licensed.ctl.output import date, emit_json, human, out
from paragon_licensed.interface.errors import VarlinkError

TYPE_CHECKING = False  # typing costs ctl a few milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
PER_TENANT_PERFDATA = 10  # above this many tenants: the minimum and the counts per state
_FAULTS = (("state_problem", "state folder"), ("clock_problem", "clock"), ("build_problem", "build"))


def check(ctx: Context) -> int:
    """One line and an exit code, as monitoring plugins (Nagios, Icinga) expect."""
    warning, critical = ctx.args.warning, ctx.args.critical
    if critical > warning:
        return usage_error(f"--critical {critical:g} is more days than --warning {warning:g}", ctx.json)
    try:
        with ctx.connect() as client:
            reply = client.call("GetStatus")["status"]
            tenants = _to_judge(client, ctx.args.tenant, reply)
    except ConfigUnreadable as exc:
        message = f"configuration unreadable: {exc}; name a readable one with --config"
        return report(ctx.json, UNKNOWN, message)
    except Unreachable as exc:
        return report(
            ctx.json,
            UNKNOWN,
            f"daemon unreachable on {exc.path}: {exc.reason}; is paragon-licensed running "
            "(`systemctl status paragon-licensed`), and is this its socket (--socket, --config)?",
        )
    except Busy as exc:
        return report(ctx.json, UNKNOWN, f"daemon busy on {exc.path}: {exc.reason}")
    except (VarlinkError, TooLarge) as exc:
        sentence = exc.sentence() if isinstance(exc, VarlinkError) else str(exc)
        return report(ctx.json, UNKNOWN, sentence)
    wanted = ctx.args.tenant
    if wanted is not None and not tenants:
        return report(ctx.json, UNKNOWN, f"no tenant {wanted}: `paragon-licensed ctl tenants` lists them")
    counts = _counted(tenants) if wanted is not None else reply["tenant_states"]
    perf = perfdata(tenants, counts, reply["nodes"], warning, critical)
    if not tenants:
        return report(ctx.json, CRITICAL, "no tenant is configured", perf)
    judged = [(judge(t, warning, critical), t) for t in tenants]
    worst = max(code for (code, _), _ in judged)
    if worst == OK:
        message = _all_licensed(tenants, sum(counts.values()))
    else:
        message = "; ".join(text for (code, text), _ in judged if code == worst)
        unlisted = reply["attention_total"] - len(reply["attention"])
        if wanted is None and unlisted > 0 and worst == CRITICAL:
            message += (
                f"; and {unlisted} more tenants need attention (`paragon-licensed ctl tenants --state ...`)"
            )
    faults = cluster_faults(reply)
    if faults:
        worst = max(worst, WARNING)
        message = "; ".join([message, *faults])
    return report(ctx.json, worst, message, perf, tenants)


def _to_judge(client: Client, wanted: str | None, reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The tenants to judge: the one asked for; every tenant of a small node; otherwise those
    that need attention and the licensed one that expires first (if it is fine, so are the rest)."""
    if wanted is not None:
        tenants: list[dict[str, Any]] = client.call("ListTenants", {"tenant": wanted})["tenants"]
        return tenants
    if reply["tenant_total"] <= PER_TENANT_PERFDATA:
        return (
            client.call("ListTenants", {"limit": PER_TENANT_PERFDATA})["tenants"]
            if reply["tenant_total"]
            else []
        )
    soonest = reply.get("soonest_expiry")
    listed = {t["tenant"] for t in reply["attention"]}
    return list(reply["attention"]) + ([soonest] if soonest and soonest["tenant"] not in listed else [])


def _counted(tenants: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tenants:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return counts


def judge(tenant: dict[str, Any], warning: float, critical: float) -> tuple[int, str]:
    """A tenant's code and, when it is not OK, the words for the status line."""
    name, state = tenant["tenant"], tenant["state"]
    if state in ("active", "expiring"):
        days = tenant["days_left"]
        left = f"{name} license expires {date(tenant['valid_until'])} ({days} days left)"
        if days < critical:
            return CRITICAL, left
        if days < warning:
            return WARNING, left
        return OK, ""
    grace_days = tenant.get("grace_days_left")
    if state == "needs_reactivation" and tenant.get("grace_until") and grace_days is not None:
        words = f"{name} in grace until {date(tenant['grace_until'])}: {tenant['reason']}"
        return (CRITICAL if grace_days < critical else WARNING), words
    return CRITICAL, f"{name} {human(state)}: {tenant['reason']}"


def cluster_faults(reply: dict[str, Any]) -> list[str]:
    """What keeps the cluster from working normally although every license is fine: a WARNING."""
    faults = []
    if not reply["store_available"]:
        faults.append(f"store unavailable: {reply['store_problem']}")
    for node in reply["nodes"]:
        if not node["online"]:
            faults.append(
                f"node {node['name']} offline for {node['seconds_since_seen']:.0f}s (no reactivation can run "
                f"until it is back, or `paragon-licensed ctl nodes forget {node['name']}` if it is gone)"
            )
        if node.get("problem"):
            faults.append(f"node {node['name']}: {node['problem']}")
    if reply["store_available"] and reply["coordinator"] is None:
        faults.append("no coordinator holds the lease: `paragon-licensed ctl nodes` shows the nodes")
    faults += [f"{label}: {reply[key]}" for key, label in _FAULTS if reply.get(key)]
    return faults


def _all_licensed(tenants: list[dict[str, Any]], total: int) -> str:
    soonest = min(tenants, key=lambda t: t["days_left"])
    if total == 1:
        return (
            f"{soonest['tenant']} licensed until {date(soonest['valid_until'])} ({soonest['days_left']} days)"
        )
    return (
        f"{total} tenants licensed; soonest expiry {soonest['tenant']} "
        f"{date(soonest['valid_until'])} ({soonest['days_left']} days)"
    )


def perfdata(
    tenants: list[dict[str, Any]],
    counts: dict[str, int],
    nodes: list[dict[str, Any]],
    warning: float,
    critical: float,
) -> str:
    """Days left per tenant (or their minimum and the counts per state), and the nodes online."""
    thresholds = f";{_number(warning)}:;{_number(critical)}:"
    licensed = [t for t in tenants if t["days_left"] is not None]
    items = []
    if sum(counts.values()) <= PER_TENANT_PERFDATA:
        items += [f"'days_left_{t['tenant']}'={t['days_left']}{thresholds}" for t in licensed]
    else:
        if licensed:
            items.append(f"days_left_min={min(t['days_left'] for t in licensed)}{thresholds}")
        items += [f"tenants_{state}={n}" for state, n in sorted(counts.items()) if n]
    online = sum(1 for n in nodes if n["online"])
    items += [f"nodes_online={online}", f"nodes_offline={len(nodes) - online}"]
    return " ".join(items)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def report(
    as_json: bool,
    code: int,
    message: str,
    perf: str = "",
    tenants: list[dict[str, Any]] | None = None,
) -> int:
    label = LABELS[code]
    # The status line is one line: a '|' in a message would start the performance data early.
    line = f"LICENSE {label} - {' '.join(message.split()).replace('|', '/')}"
    if perf:
        line += f" | {perf}"
    if as_json:
        emit_json(
            {
                "status": label.lower(),
                "exit_code": code,
                "message": message,
                "line": line,
                "perfdata": perf,
                "tenants": tenants or [],
            }
        )
    else:
        out(line)
    return code


def usage_error(message: str, as_json: bool) -> int:
    """argparse's complaint about the check command's arguments, as an UNKNOWN (3), not 2."""
    return report(as_json, UNKNOWN, f"usage: {message}; see `paragon-licensed ctl check --help`")
