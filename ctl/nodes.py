"""`ctl nodes` and `ctl nodes forget NAME`."""

from __future__ import annotations

from paragon_licensed.ctl.main import Context
from paragon_licensed.ctl.output import emit_json, out
from paragon_licensed.ctl.status import nodes_table


def list_nodes(ctx: Context) -> int:
    nodes = ctx.call("ListNodes")["nodes"]
    if ctx.json:
        emit_json(nodes)
        return 0
    out(nodes_table(nodes))
    for node in nodes:
        if node.get("problem"):
            out(f"warning: {node['name']}: {node['problem']}")
    return 0


def forget(ctx: Context) -> int:
    reply = ctx.call("ForgetNode", {"name": ctx.args.name})
    if ctx.json:
        emit_json(reply)
        return 0
    node = reply["node"]
    out(f"Node {node['name']} (computer ID {node['computer_id']}) was removed from the cluster.")
    if reply["affected_tenants"]:
        out(f"Tenants licensed on it: {', '.join(reply['affected_tenants'])}. Transfer their license with:")
        out(f"  paragon-licensed ctl license transfer --replace {node['computer_id']}")
    return 0
