"""The time licenses are judged by: the system clock, unless it was set back.

The daemon keeps a high-water mark of trusted time: the latest system time it
saw, the latest `issued_at` it verified, the PostgreSQL server's clock, and the
marks other nodes wrote to the store, advanced by the monotonic clock while the
daemon runs. It is written to the store and to `state_dir/clock.json`, so a
restart remembers it. When the system clock is more than TOLERANCE behind the
mark, licenses are judged against the mark and status names the problem; moving
the clock back never makes a license valid again, and moving it forward (which
raises the mark) is not undone by moving it back.

Every license judgement reads the time through `now()`. For tests only, the
environment variable PARAGON_LICENSED_TEST_CLOCK_OFFSET_FILE names a file holding
seconds added to the system clock (re-read every heartbeat), so a test can move
the daemon's clock without touching the machine's.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import anyio

from paragon_licensed.daemon import log
from paragon_licensed.daemon.store.db import StoreUnavailableError, Tx
from paragon_licensed.daemon.timefmt import rfc3339

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon

TOLERANCE = 3600.0
PERSIST_EVERY = 60.0
OFFSET_FILE_ENV = "PARAGON_LICENSED_TEST_CLOCK_OFFSET_FILE"


class _Seam:
    """The one place the daemon's time comes from: the test offset and the installed clock."""

    offset = 0.0
    trusted: TrustedClock | None = None


_SEAM = _Seam()


def read_offset() -> float:
    """The test seam: seconds added to the system clock (0 unless a test set the variable)."""
    path = os.environ.get(OFFSET_FILE_ENV)
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                _SEAM.offset = float(file.read().strip() or 0)
        except (OSError, ValueError):
            pass  # a test writing the file at this moment: keep the last value
    return _SEAM.offset


def system_now() -> float:
    """The system clock (as moved by the test seam)."""
    return time.time() + _SEAM.offset


def now() -> float:
    """The time licenses are judged by: the system clock, or the high-water mark while the clock
    is set back."""
    trusted = _SEAM.trusted
    return trusted.now() if trusted is not None else system_now()


class TrustedClock:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self._base = 0.0  # the mark, as of _base_mono on the monotonic clock
        self._base_mono = time.monotonic()
        self.problem: str | None = None
        self._persisted = 0.0
        self._persisted_at = -PERSIST_EVERY
        self._step = 0.0  # system clock minus monotonic clock at the last sample

    def install(self) -> None:
        read_offset()
        self.raise_to(self.app.local.read_clock())
        self.sample()
        _SEAM.trusted = self

    @property
    def high_water(self) -> float:
        return self._base + (time.monotonic() - self._base_mono)

    def raise_to(self, moment: float) -> None:
        """A time known to have passed (a verified issued_at, a mark from the store)."""
        if moment > self.high_water:
            self._base, self._base_mono = moment, time.monotonic()

    def now(self) -> float:
        system = system_now()
        return self.high_water if self.problem is not None and system < self.high_water else system

    def sample(self) -> bool:
        """Compare the system clock with the mark; True when the problem appeared or went away,
        or the clock jumped (licenses are judged again at once, not at the next sweep)."""
        read_offset()
        system, mark = system_now(), self.high_water
        step, self._step = self._step, system - time.monotonic()
        jumped = abs(self._step - step) > 1.0
        before = self.problem
        if system >= mark - TOLERANCE:
            self.raise_to(system)
            self.problem = None
        else:
            behind = mark - system
            amount = f"{behind / 86400:.1f} days" if behind >= 86400 else f"{behind / 3600:.1f} hours"
            self.problem = (
                f"the system clock is {amount} behind the latest time seen ({rfc3339(mark)}): licenses "
                "are judged against that time; set the clock right (timedatectl, NTP)"
            )
        if (before is None) != (self.problem is None):
            if self.problem is not None:
                log.warning("system clock set back", detail=self.problem)
            else:
                log.info("system clock correct again")
            return True
        return jumped

    async def persist(self) -> None:
        """Write the mark down (state_dir and store) when it moved a minute or more; read the
        store's mark, which other nodes raise too."""
        mark = self.high_water
        if mark - self._persisted < PERSIST_EVERY and time.monotonic() - self._persisted_at < 600:
            return
        self._persisted_at = time.monotonic()
        if await anyio.to_thread.run_sync(self.app.local.write_clock, mark):
            self._persisted = mark
        if self.app.store_opened:
            try:
                stored = await self.app.db.write(_raise_stored_mark, mark)
            except StoreUnavailableError:
                return
            self.raise_to(stored)


def _raise_stored_mark(tx: Tx, mark: float) -> float:
    tx.execute("UPDATE meta SET clock_high_water = ? WHERE id = 1 AND clock_high_water < ?", (mark, mark))
    return float(tx.scalar("SELECT clock_high_water FROM meta WHERE id = 1") or 0.0)
