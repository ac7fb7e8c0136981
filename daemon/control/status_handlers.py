"""Handlers that report: identity, status and nodes. They answer from memory."""

from __future__ import annotations

import msgspec

from paragon_licensed.daemon.control.server import CallContext
from paragon_licensed.interface import wire


async def get_identity(ctx: CallContext, params: wire.Empty) -> wire.GetIdentityOut:
    identity = ctx.app.identity
    return wire.GetIdentityOut(
        identity=wire.Identity(
            computer_id=identity.computer_id,
            strength=identity.strength,
            sources=wire.IdentitySources(
                machine_id=identity.machine_id_source, product_uuid=identity.product_uuid_source
            ),
            warnings=list(identity.warnings),
        )
    )


async def get_status(ctx: CallContext, params: wire.Empty) -> msgspec.Raw:
    """The encoded wire.GetStatusOut (see View.status_reply)."""
    return ctx.app.view.status_reply()


async def list_nodes(ctx: CallContext, params: wire.Empty) -> wire.ListNodesOut:
    return wire.ListNodesOut(nodes=ctx.app.view.node_list())
