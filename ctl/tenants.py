"""`ctl tenants`, `ctl tenants set`, `ctl tenants check` and `ctl cloud set-admin-email`."""

from __future__ import annotations

import sys

from paragon_licensed.ctl.main import Context
from paragon_licensed.ctl.output import date, emit_json, human, out, table, when

TYPE_CHECKING = False  # typing costs ctl a few milliseconds at every start
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def list_tenants(ctx: Context) -> int:
    """Every tenant, a page at a time as they come (or one page with --limit/--cursor)."""
    params: dict[str, Any] = {"state": ctx.args.state} if ctx.args.state else {}
    if ctx.args.tenant:
        params["tenant"] = ctx.args.tenant
    if ctx.args.limit is not None or ctx.args.cursor is not None:
        params |= {"limit": ctx.args.limit, "cursor": ctx.args.cursor}
        page = ctx.call("ListTenants", {k: v for k, v in params.items() if v is not None})
        if ctx.json:
            emit_json(page)
            return 0
        _print_page(page["tenants"], first=True, filtered=bool(ctx.args.state or ctx.args.tenant))
        if page.get("next_cursor"):
            out(f"More: --cursor {page['next_cursor']} ({page['total']} in all).")
        return 0
    everyone: list[dict[str, Any]] = []
    with ctx.connect() as client:
        for number, tenants in enumerate(_pages(client, params)):
            if ctx.json:
                everyone.extend(tenants)
            else:
                _print_page(tenants, first=number == 0, filtered=bool(ctx.args.state or ctx.args.tenant))
    if ctx.json:
        emit_json(everyone)
    return 0


def _pages(client: Any, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """ListTenants page after page, each asked for once the previous one is handled."""
    cursor = None
    while True:
        page = client.call("ListTenants", params | ({"cursor": cursor} if cursor else {}))
        yield page["tenants"]
        cursor = page.get("next_cursor")
        if not cursor:
            return


# Fixed columns, so that pages printed one after another line up (longer values push on).
_WIDTHS = (20, 18, 11, 14, 0)


def _print_page(tenants: list[dict[str, Any]], first: bool, filtered: bool) -> None:
    """One page as table rows; the first page brings the header (or says there is nobody)."""
    if not tenants:
        if first:
            out("No tenant matches." if filtered else _NO_TENANTS)
        return
    rows = [
        (
            t["tenant"],
            human(t["state"]),
            date(t["valid_until"]),
            t["support_id"] or "",
            t["admin_email"] or "-",
        )
        for t in tenants
    ]
    text = table(("TENANT", "STATE", "VALID UNTIL", "SUPPORT ID", "ADMIN E-MAIL"), rows, at_least=_WIDTHS)
    out(text if first else text.split("\n", 1)[1])


_NO_TENANTS = "No tenants yet: add one with `paragon-licensed ctl tenants set TENANT`."


def set_tenant(ctx: Context) -> int:
    params: dict[str, Any] = {"tenant": ctx.args.tenant}
    if ctx.args.admin_email is not None:
        params["admin_email"] = ctx.args.admin_email
    tenant = ctx.call("SetTenant", params)["tenant"]
    if ctx.json:
        emit_json(tenant)
        return 0
    email = tenant["admin_email"] or "not set"
    out(f"Tenant {tenant['tenant']}: {human(tenant['state'])}, administrator e-mail {email}.")
    return 0


def set_cloud_admin_email(ctx: Context) -> int:
    ctx.call("SetCloudAdminEmail", {"email": ctx.args.email})
    if ctx.json:
        emit_json({"email": ctx.args.email})
    else:
        out(f"Cloud administrator e-mail set to {ctx.args.email or '(none)'}.")
    return 0


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def check(ctx: Context) -> int:
    """Run the tenant license processing now: a progress bar, then a summary table."""
    results: list[dict[str, Any]] = []
    note = ""
    final: dict[str, Any] = {}
    interactive = sys.stdout.isatty() and not ctx.json
    shown = False
    with ctx.connect(timeout=None) as client:
        for reply in client.stream("RunTenantCheck"):
            progress = reply.get("progress")
            if progress and progress["total"] and not ctx.json:  # no bar for a run with nothing due
                shown = True
                line = _bar(progress["done"], progress["total"])
                if interactive:
                    sys.stdout.write("\r" + line)
                    sys.stdout.flush()
                elif progress["done"] in (0, progress["total"]):
                    out(line)
            if reply.get("results") is not None:
                final = reply
                results = reply["results"]
                note = reply.get("note") or ""
    if interactive and shown:
        out()
    looked_at, next_run = final.get("looked_at"), final.get("next_run")
    if ctx.json:
        emit_json({"results": results, "note": note or None, "looked_at": looked_at, "next_run": next_run})
    elif not results and not note:
        if looked_at is None:
            out("No tenant was due (expired, expiring or not properly licensed).")
        else:
            tenants = f"{looked_at} tenant was" if looked_at == 1 else f"{looked_at} tenants were"
            out(f"{tenants} looked at; none was due (expired, expiring or not properly licensed).")
        if next_run:
            out(f"The next scheduled run is at {when(next_run)}.")
    else:
        counts = {
            k: sum(1 for r in results if r["outcome"] == k) for k in ("reactivated", "failed", "skipped")
        }
        if results:
            rows = [(r["tenant"], r["outcome"], date(r["valid_until"]), r["reason"]) for r in results]
            out(table(("TENANT", "OUTCOME", "VALID UNTIL", "REASON"), rows))
        out(f"{counts['reactivated']} reactivated, {counts['failed']} failed, {counts['skipped']} skipped.")
        if note:
            out(f"The check stopped early: {note}")
    return 1 if note or any(r["outcome"] == "failed" for r in results) else 0
