"""Signature checks of stored licenses, cached: a stored license never changes, so each
is verified once per daemon (and again when the portal keys are reloaded)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from paragon_licensed.licensefile import LicenseRejected, Payload, inspect

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_MAX_CACHED = 100_000


class Verifier:
    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.keys = dict(keys)
        self._cache: dict[int, Payload | LicenseRejected] = {}

    def set_keys(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.keys = dict(keys)
        self._cache.clear()

    def remember(self, row: int, payload: Payload) -> None:
        """A license this daemon has just verified itself, stored as `row`."""
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[row] = payload

    def forget(self, row: int) -> None:
        """A stored license no tenant uses any more (replaced by a newer one)."""
        self._cache.pop(row, None)

    def inspect(self, row: int, document: str) -> Payload:
        """The payload of stored license `row`, or its LicenseRejected raised again."""
        result = self._cache.get(row)
        if result is None:
            try:
                result = inspect(document, self.keys)
            except LicenseRejected as exc:
                result = exc
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[row] = result
        if isinstance(result, LicenseRejected):
            raise result
        return result
