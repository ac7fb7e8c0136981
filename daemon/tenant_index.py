"""Tenant names in order, overall and per state: counts, the tenants that need attention and
pages of tenants, answered without sorting or scanning a hundred thousand of them.

Every list is kept sorted as tenants come and change state (``bisect``), so a page is a
slice after a cursor and a count is a length. Paging by name (the cursor is the last
name returned) hands out every tenant present for the whole walk exactly once, however
the others change in between.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar, get_args

from paragon_licensed.interface import wire

STATES: tuple[wire.State, ...] = get_args(wire.State)
# The states an administrator has to look at: everything but a plain active license.
ATTENTION: tuple[wire.State, ...] = tuple(s for s in STATES if s != "active")
LICENSED = frozenset({"active", "expiring"})
T = TypeVar("T", bound=Any)


class TenantIndex:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.state_of: dict[str, wire.State] = {}
        self.by_state: dict[wire.State, list[str]] = {state: [] for state in STATES}
        # (valid until, name) of every licensed tenant (active or expiring), soonest first.
        self.expiry: list[tuple[float, str]] = []
        self.expiry_of: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.names)

    def rebuild(self, tenants: Iterable[tuple[str, wire.State, float | None]]) -> None:
        """Start again from every tenant's (name, state, valid until)."""
        self.state_of = {}
        self.expiry_of = {}
        for name, state, valid_until in tenants:
            self.state_of[name] = state
            if state in LICENSED and valid_until is not None:
                self.expiry_of[name] = valid_until
        self.names = sorted(self.state_of)
        self.by_state = {state: [] for state in STATES}
        for name in self.names:  # in order: every per-state list comes out sorted
            self.by_state[self.state_of[name]].append(name)
        self.expiry = sorted((until, name) for name, until in self.expiry_of.items())

    def put(self, name: str, state: wire.State, valid_until: float | None) -> None:
        """One tenant's state and license expiry, new or changed."""
        old = self.state_of.get(name)
        if old != state:
            if old is None:
                bisect.insort(self.names, name)
            else:
                _remove(self.by_state[old], name)
            bisect.insort(self.by_state[state], name)
            self.state_of[name] = state
        until = valid_until if state in LICENSED else None
        known = self.expiry_of.get(name)
        if known == until:
            return
        if known is not None:
            _remove(self.expiry, (known, name))
            del self.expiry_of[name]
        if until is not None:
            bisect.insort(self.expiry, (until, name))
            self.expiry_of[name] = until

    def expiring_before(self, moment: float) -> list[str]:
        """The licensed tenants whose license ends at ``moment`` or earlier, soonest first."""
        end = bisect.bisect_right(self.expiry, (moment, "\U0010ffff"))
        return [name for _, name in self.expiry[:end]]

    def soonest_expiry(self) -> str | None:
        """The licensed tenant whose license runs out first."""
        return self.expiry[0][1] if self.expiry else None

    def counts(self) -> dict[str, int]:
        """How many tenants are in each state (every state, zeros included)."""
        return {state: len(names) for state, names in self.by_state.items()}

    def attention(self, limit: int) -> tuple[list[str], int]:
        """The first ``limit`` tenants, by name, that are not simply active, and how many there are."""
        lists = [self.by_state[state] for state in ATTENTION]
        total = sum(len(names) for names in lists)
        return list(itertools.islice(heapq.merge(*lists), limit)), total

    def page(self, state: wire.State | None, after: str, limit: int) -> tuple[list[str], int]:
        """Up to ``limit`` names after ``after`` (all tenants, or those in ``state``), and the total."""
        names = self.names if state is None else self.by_state[state]
        start = bisect.bisect_right(names, after) if after else 0
        return names[start : start + limit], len(names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)


def _remove(items: list[T], item: T) -> None:
    at = bisect.bisect_left(items, item)
    if at < len(items) and items[at] == item:
        del items[at]
