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
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from paragon_licensed.daemon.control.peer import Peer


class ConnectionRate:
    """A token bucket per uid (control.connection_rate_per_user, a burst of twice that).

    Above its rate a user's new connections are closed as they are accepted, before any
    work is spent on them: a user opening and closing connections in a loop cannot fill
    the listen queue in front of the administrators' calls.
    """

    def __init__(self, rate: Callable[[], float], users: int = 4096) -> None:
        self._rate = rate  # read at each connection, so that a reload applies
        self.users = users
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()
        self.dropped = 0

    def allow(self, uid: int) -> bool:
        rate = self._rate()
        burst = 2 * rate
        now = time.monotonic()
        tokens, last = self._buckets.get(uid, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        allowed = tokens >= 1.0
        self._buckets[uid] = (tokens - 1.0 if allowed else tokens, now)
        self._buckets.move_to_end(uid)
        while len(self._buckets) > self.users:
            self._buckets.popitem(last=False)
        self.dropped += not allowed
        return allowed


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
