"""``paragon-licensed identity``: this node's computer ID computed locally, and its sources.

The output names where the inputs came from, never the raw machine-id or product UUID.
"""

from __future__ import annotations

import json
import sys

from paragon_licensed.daemon.config import Config
from paragon_licensed.daemon.identity import Identity, IdentityError, read_identity_sync

STRENGTH_TEXT = {"hardware": "hardware", "software": "software only"}


def identity_document(identity: Identity) -> dict[str, object]:
    """The `--json` document; its field names are stable."""
    return {
        "computer_id": identity.computer_id,
        "strength": identity.strength,
        "sources": {
            "machine_id": identity.machine_id_source,
            "product_uuid": identity.product_uuid_source,
        },
        "warnings": list(identity.warnings),
    }


def identity_lines(identity: Identity) -> list[str]:
    """The human form: one aligned line per fact."""
    rows = [
        ("computer ID", identity.computer_id),
        ("strength", STRENGTH_TEXT[identity.strength]),
        ("machine-id from", identity.machine_id_source),
        ("product UUID from", identity.product_uuid_source or "none"),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


def print_identity(config: Config, as_json: bool) -> int:
    """Print the identity; 0 (a software-only identity is a warning), or 2 without a machine-id."""
    try:
        identity = read_identity_sync(config.identity)
    except IdentityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if as_json:
        # The warnings travel inside the document, where a script reading it finds them.
        print(json.dumps(identity_document(identity), indent=2))
        return 0
    for line in identity_lines(identity):
        print(line)
    for warning in identity.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
