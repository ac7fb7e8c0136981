"""Long loops on the event loop hand it back often enough for control calls to be answered.

A pass over every tenant (a node-set change, the periodic re-evaluation, the view's
sync) may take a second at a hundred thousand tenants; ``Pace.turn()`` yields once
``SLICE`` seconds of work have gone by, so no other task waits longer than that.
"""

from __future__ import annotations

import time

import anyio

SLICE = 0.010


class Pace:
    def __init__(self, slice_: float = SLICE) -> None:
        self.slice = slice_
        self._since = time.monotonic()

    async def turn(self) -> bool:
        """Yield if this slice is used up; True when it yielded (the world may have moved on)."""
        if time.monotonic() - self._since < self.slice:
            return False
        await anyio.sleep(0)
        self._since = time.monotonic()
        return True
