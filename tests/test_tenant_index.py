"""TenantIndex: names in order overall and per state, counts, attention, pages and the soonest
expiry, kept right as tenants come and change (checked against a plain recomputation)."""

from __future__ import annotations

import random

from paragon_licensed.daemon.tenant_index import ATTENTION, STATES, TenantIndex
from paragon_licensed.interface import wire


def walk(index: TenantIndex, state: wire.State | None, limit: int) -> list[str]:
    seen: list[str] = []
    after = ""
    while True:
        page, _ = index.page(state, after, limit)
        if not page:
            return seen
        seen += page
        after = page[-1]


def test_counts_attention_pages_and_expiry_agree_with_a_recomputation() -> None:
    rng = random.Random(7)
    index = TenantIndex()
    truth: dict[str, tuple[wire.State, float | None]] = {}
    for step in range(3000):
        name = f"t{rng.randrange(800):04d}"
        chosen: wire.State = rng.choice(STATES)
        until = float(rng.randrange(10**6)) if rng.random() < 0.9 else None
        index.put(name, chosen, until)
        truth[name] = (chosen, until)
        if step % 500 == 0:
            index.rebuild((n, s, u) for n, (s, u) in truth.items())
    names = sorted(truth)
    assert index.names == names
    assert index.counts() == {s: sum(1 for v in truth.values() if v[0] == s) for s in STATES}
    needing = [n for n in names if truth[n][0] in ATTENTION]
    assert index.attention(50) == (needing[:50], len(needing))
    filters: list[wire.State | None] = [None, *STATES]
    for state in filters:
        expected = [n for n in names if state is None or truth[n][0] == state]
        assert walk(index, state, 37) == expected
        assert index.page(state, "", 10)[1] == len(expected)
    licensed = [(u, n) for n, (s, u) in truth.items() if s in ("active", "expiring") and u is not None]
    assert index.soonest_expiry() == (min(licensed)[1] if licensed else None)
    assert index.expiring_before(500_000.0) == [n for u, n in sorted(licensed) if u <= 500_000.0]


def test_a_walk_returns_every_tenant_present_throughout_exactly_once_while_others_change() -> None:
    index = TenantIndex()
    index.rebuild((f"t{i:05d}", "active", 1.0) for i in range(0, 2000, 2))
    seen: list[str] = []
    after = ""
    added = 0
    while True:
        page, _ = index.page(None, after, 100)
        if not page:
            break
        seen += page
        after = page[-1]
        # Between pages: new tenants on both sides of the cursor, states changing everywhere.
        if added < 15:
            for name in (f"t{added * 2 + 1:05d}", f"t{1999 - added * 2:05d}", f"u{added:05d}"):
                index.put(name, "unlicensed", None)
        index.put(f"t{(added * 6) % 2000:05d}", "expired", None)
        added += 1
    original = [f"t{i:05d}" for i in range(0, 2000, 2)]
    assert len(seen) == len(set(seen))
    assert set(original) <= set(seen)
    assert {f"u{i:05d}" for i in range(15)} <= set(seen)  # added ahead of the cursor: seen too
    assert seen == sorted(seen)


def test_an_empty_index() -> None:
    index = TenantIndex()
    assert index.counts() == dict.fromkeys(STATES, 0)
    assert index.attention(50) == ([], 0)
    assert index.page("active", "", 10) == ([], 0)
    assert index.soonest_expiry() is None
