"""The portal's public keys, found through the `portal.public_keys` globs and keyed by kid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paragon_licensed.daemon.config import Config
from paragon_licensed.licensefile import load_public_keys

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def load_keys(config: Config) -> dict[str, Ed25519PublicKey]:
    """Every key the globs match; an unreadable or invalid file raises KeyFileError."""
    return load_public_keys(config.portal.public_keys)
