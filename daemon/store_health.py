"""Whether the store answers, as this node sees it: one owner for the availability and its reason.

Every part that talks to the store reports what happened here (the heartbeat, the
start-up, any operation that met an outage); status, ctl check and the tenants'
states read it. A change is logged once, not at every failed attempt.
"""

from __future__ import annotations

from collections.abc import Callable

from paragon_licensed.daemon import log

NOT_YET = "not connected yet"


class StoreHealth:
    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._on_change = on_change  # e.g. drop the cached status reply
        self.problem: str | None = NOT_YET
        # Migrated and this node registered: from then on the node set is read from the store.
        self.opened = False

    @property
    def available(self) -> bool:
        return self.problem is None

    def failed(self, reason: object) -> None:
        """An attempt met an outage: the store is unavailable, for this reason."""
        if self.problem is None or self.problem == NOT_YET:
            log.warning("store unavailable", reason=reason)
        self.problem = str(reason)
        self._on_change()

    def answered(self) -> None:
        """An attempt went through: the store is available (again)."""
        if self.problem is None:
            return
        if self.problem != NOT_YET:  # it had failed, not merely not been asked yet
            log.info("store available again")
        self.problem = None
        self._on_change()

    def mark_opened(self) -> None:
        self.opened = True
        self._on_change()
