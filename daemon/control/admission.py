"""Who may hold a connection: a share for each user, and slots kept for the administrators.

Every local user may connect (reading is open to all), so one user must not be
able to take every connection: each uid other than root and the daemon's own
user holds at most ``max_connections_per_user``, streaming calls included, and
the last ``reserved_connections`` of ``max_connections`` go only to root, the
daemon's user and members of the admin group. Whoever floods the socket, the
administrators' `ctl status` gets a slot.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from paragon_licensed.daemon.control.peer import Peer


@dataclass(frozen=True)
class Refusal:
    """Why a connection was refused: the limit's scope ("user" or "total") and its size."""

    scope: str
    limit: int


class Admission:
    """Counts the open connections, in total and per uid; ``admit`` and ``release`` pair up."""

    def __init__(self, limits: Callable[[], tuple[int, int, int]]) -> None:
        # (max_connections, max_connections_per_user, reserved_connections), read at each
        # admission so that a reload applies to the next connection.
        self._limits = limits
        self._per_uid: Counter[int] = Counter()
        self.active = 0
        self.refused = 0

    @staticmethod
    def is_root(peer: Peer) -> bool:
        return peer.uid in (0, os.getuid())

    def needs_group_lookup(self, peer: Peer) -> bool:
        """Whether admitting this peer depends on its admin group membership (a blocking lookup)."""
        total, _, reserved = self._limits()
        return not self.is_root(peer) and self.active >= total - reserved

    def admit(self, peer: Peer, admin: bool = False) -> Refusal | None:
        """Take a slot for the peer, or say which limit refuses it."""
        total, per_user, reserved = self._limits()
        refusal: Refusal | None = None
        if self.is_root(peer):
            if self.active >= total:
                refusal = Refusal("total", total)
        elif self._per_uid[peer.uid] >= per_user:
            refusal = Refusal("user", per_user)
        elif self.active >= (total if admin else total - reserved):
            refusal = Refusal("total", total if admin else total - reserved)
        if refusal is not None:
            self.refused += 1
            return refusal
        self.active += 1
        self._per_uid[peer.uid] += 1
        return None

    def release(self, peer: Peer) -> None:
        self.active -= 1
        self._per_uid[peer.uid] -= 1
        if self._per_uid[peer.uid] <= 0:
            del self._per_uid[peer.uid]
