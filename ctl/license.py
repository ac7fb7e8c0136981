"""`ctl license ...`: info, activate, reactivate, request, import and transfer."""

from __future__ import annotations

import os
import sys
import urllib.parse

from paragon_licensed.ctl.main import Context
from paragon_licensed.ctl.output import date, emit_json, err, fields, human, out, table, when
from paragon_licensed.interface.errors import EXIT_USAGE

TYPE_CHECKING = False  # typing costs ctl a few milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

MAX_FILE = 1024 * 1024


def info(ctx: Context) -> int:
    params: dict[str, Any] = {"tenant": ctx.args.tenant, "history": bool(ctx.args.history)}
    lic = ctx.call("GetLicense", params)["license"]
    if ctx.json:
        emit_json(lic)
        return 0
    out(describe(lic))
    if ctx.args.history:
        out()
        rows = [
            (when(h["at"]), h["action"], h["outcome"], h["actor"], h["request_id"], h["detail"])
            for h in lic["history"]
        ]
        out(
            table(("WHEN", "ACTION", "OUTCOME", "BY", "REQUEST ID", "DETAIL"), rows)
            if rows
            else "No history."
        )
    return 0


def describe(lic: dict[str, Any]) -> str:
    summary = fields(
        [
            ("Tenant", lic["tenant"]),
            ("State", f"{human(lic['state'])} ({lic['reason']})"),
            ("Support ID", lic["support_id"]),
            ("License ID", lic["license_id"]),
            ("Build", lic["build"]),
            ("Issued", when(lic["issued_at"])),
            ("Valid until", when(lic["valid_until"])),
            ("Integrity key", lic["integrity_key"]),
            ("Computer IDs", ", ".join(lic["computer_ids"])),
        ]
    )
    orders = table(
        ("ORDER", "PRODUCT", "QUANTITY", "VALID UNTIL", "FEATURES"),
        [
            (
                o["order_id"],
                o["product"],
                o["quantity"],
                date(o["valid_until"]),
                ", ".join(f"{k}={v}" for k, v in sorted(o["features"].items())),
            )
            for o in lic["orders"]
        ],
    )
    return f"{summary}\n\n{orders}"


def _operation(ctx: Context, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Call a streaming operation, show each step as it happens, return the final reply."""
    final: dict[str, Any] = {}
    with ctx.connect(timeout=None) as client:
        for reply in client.stream(method, params):
            step = reply.get("step")
            if step and not ctx.json:
                out(f"  {step['message']}")
                sys.stdout.flush()
            if "step" not in reply or len(reply) > 1:
                final = reply
    return final


def _show_outcomes(ctx: Context, outcomes: list[dict[str, Any]], verb: str) -> int:
    if ctx.json:
        emit_json(outcomes[0] if len(outcomes) == 1 else outcomes)
        return 0
    for outcome in outcomes:
        lic = outcome.get("license")
        if outcome.get("changed") is False:
            out(f"Tenant {outcome['tenant']}: nothing changed.")
        elif lic:
            out(
                f"Tenant {outcome['tenant']}: {verb}. License {lic['license_id']}, "
                f"{len(lic['orders'])} order(s), valid until {when(lic['valid_until'])}."
            )
        for warning in outcome.get("warnings", []):
            out(f"warning: {warning}")
    return 0


def _write_request(ctx: Context, request: dict[str, Any], path: str) -> None:
    """Write the request file for the administrator to carry to the portal (0600: it may hold a key)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(request["document"])
    os.replace(tmp, path)
    if ctx.json:
        emit_json({"file": os.path.abspath(path), **{k: v for k, v in request.items() if k != "document"}})
        return
    out(f"Offline {request['kind']} request for tenant {request['tenant']} written to {path}.")
    out("Next, on a machine that reaches the License Portal, upload it on the portal's offline")
    out(f"activation page, {offline_page(ctx)}, and save the response it gives you.")
    out("Then import the response here with:")
    out(f"  {ctx.command_prefix()} license import RESPONSE_FILE")


def offline_page(ctx: Context) -> str:
    """The portal's offline activation page, from portal.url when the configuration is known."""
    url = ctx.portal_url()
    if not url:
        return "/offline on the License Portal"
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/offline", "", ""))


def _need_out(ctx: Context) -> str | None:
    if not ctx.args.out:
        err("error: --offline needs --out FILE (where to write the request for the portal)")
        return None
    return str(ctx.args.out)


def activate(ctx: Context) -> int:
    if ctx.args.offline:
        path = _need_out(ctx)
        if path is None:
            return EXIT_USAGE
        params = {"kind": "activation", "tenant": ctx.args.tenant, "activation_key": ctx.args.key}
        _write_request(ctx, ctx.call("CreateOfflineRequest", params)["request"], path)
        return 0
    reply = _operation(ctx, "Activate", {"tenant": ctx.args.tenant, "activation_key": ctx.args.key})
    return _show_outcomes(ctx, [reply["outcome"]], "activated")


def reactivate(ctx: Context) -> int:
    if ctx.args.offline:
        path = _need_out(ctx)
        if path is None:
            return EXIT_USAGE
        reply = ctx.call("Reactivate", {"tenant": ctx.args.tenant, "mode": "offline"})
        _write_request(ctx, reply["request"], path)
        return 0
    reply = _operation(ctx, "Reactivate", {"tenant": ctx.args.tenant, "mode": "online"})
    return _show_outcomes(ctx, [reply["outcome"]], "reactivated")


def request(ctx: Context) -> int:
    params = {
        "kind": ctx.args.kind,
        "tenant": ctx.args.tenant,
        "activation_key": ctx.args.key,
        "replace_computer_id": ctx.args.replace,
    }
    _write_request(ctx, ctx.call("CreateOfflineRequest", params)["request"], ctx.args.out)
    return 0


def import_file(ctx: Context) -> int:
    try:
        with open(ctx.args.file, encoding="utf-8") as handle:
            document = handle.read(MAX_FILE + 1)
    except (OSError, UnicodeDecodeError) as exc:
        err(f"error: cannot read {ctx.args.file}: {getattr(exc, 'strerror', None) or exc}")
        return EXIT_USAGE
    if len(document) > MAX_FILE:
        err(f"error: {ctx.args.file} is larger than 1 MiB: it is not a license or response file")
        return EXIT_USAGE
    reply = _operation(ctx, "ImportLicense", {"document": document})
    return _show_outcomes(ctx, [reply["outcome"]], "license imported")


def transfer(ctx: Context) -> int:
    params: dict[str, Any] = {"replace_computer_id": ctx.args.replace, "tenant": ctx.args.tenant}
    if ctx.args.offline:
        path = _need_out(ctx)
        if path is None:
            return EXIT_USAGE
        requests = ctx.call("Transfer", {**params, "mode": "offline"})["requests"]
        for req in requests:
            target = path if len(requests) == 1 else f"{path}.{req['tenant']}"
            _write_request(ctx, req, target)
        return 0
    reply = _operation(ctx, "Transfer", {**params, "mode": "online"})
    return _show_outcomes(ctx, reply["outcomes"], "transferred")
