"""End to end: the coordinator's take-over check of the portal's current licenses, for many tenants.

The portal is seeded with tenants activated for this node through its own service
code, in the test process; their licenses are installed into the daemon's store
before its first start. Then the portal reactivates a few of them by itself, so it
holds licenses the store never saw: what the store looks like after a restore of the
whole state folder (store and marker together), which only the portal can reveal.
The daemon starts, takes over, and asks the portal. Its request log tells how many
calls that took; the notifications and the reactivations tell what was found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.daemon import DaemonProcess
from support.portal import PortalProcess
from support.tenant_check import (
    MANUAL_ONLY,
    activate_in_portal,
    install_many,
    notifications,
    prepare_store,
    processed,
    wait_for,
)

from paragon_licensed.daemon.startup import query_chunks

pytest_plugins = ["support.portal", "support.tenant_check"]
pytestmark = pytest.mark.e2e

API = "/api/v1"
QUERY = f"{API}/licenses/current/query"
CURRENT = f"{API}/licenses/current"
CHECKED = "current licenses checked on the portal"


def prepare(
    portal: PortalProcess,
    daemon: DaemonProcess,
    count: int,
    restored: list[str],
    portal_config: dict[str, Any] | None = None,
) -> None:
    """``count`` tenants licensed in the daemon's store; the portal issued newer licenses to
    ``restored`` after that. Starts the portal and the daemon."""
    pairs = portal.db.seed_tenants(count, valid_until=(datetime.now(UTC) + timedelta(days=365)).date())
    ours = prepare_store(daemon)
    install_many(daemon, activate_in_portal(portal, pairs, [ours]))
    keys = dict(pairs)
    activate_in_portal(portal, [(t, keys[t]) for t in restored], [ours], kind="reactivation")
    portal.start()
    daemon.update_config(
        {"portal": {"url": portal.url, "public_keys": [portal.public_keys_glob], **(portal_config or {})}}
    )
    daemon.start(timeout=60)


def restore_notes(daemon: DaemonProcess, title: str) -> list[str]:
    return sorted(n["tenant"] for n in notifications(daemon) if n["title"] == title)


def wait_reactivated(daemon: DaemonProcess, portal: PortalProcess, restored: list[str]) -> None:
    """Every restored tenant reactivated after the restore, and nobody else."""
    wait_for(
        lambda: restore_notes(daemon, "License reactivated after restore") == restored,
        60,
        what=f"reactivations of {restored}",
    )
    assert restore_notes(daemon, "Restore detected") == restored
    online = Counter(r.tenant_id for r in processed(portal) if r.source == "http")
    assert online == dict.fromkeys(restored, 1)


@pytest.mark.timeout(240)
def test_a_take_over_with_2500_tenants_asks_in_three_queries_and_finds_the_restored_ones(
    portal_factory: Callable[..., PortalProcess], daemons: Callable[..., DaemonProcess]
) -> None:
    portal = portal_factory(start=False)
    daemon = daemons("node-1", {"tenant_check": dict(MANUAL_ONLY)})
    # One in each query of 1,000: the first, one in the middle, the last.
    restored = ["tenant-0", "tenant-1500", "tenant-2499"]
    prepare(portal, daemon, 2500, restored)

    wait_for(lambda: CHECKED in daemon.log(), 60, what="the take-over's portal check")
    queries = portal.requests(path=QUERY)
    assert [(q.method, q.status, q.asked) for q in queries] == [
        ("POST", 200, 1000),
        ("POST", 200, 1000),
        ("POST", 200, 500),
    ]
    assert portal.requests(path=CURRENT) == [], "no GET per tenant"
    assert "tenants=2500 requests=3" in daemon.log()
    wait_reactivated(daemon, portal, sorted(restored))
    # Nothing asked since: the reactivations were the only other calls.
    assert len(portal.requests(path=QUERY)) == 3


@pytest.mark.timeout(120)
def test_a_portal_without_the_query_is_asked_once_per_tenant(
    portal_factory: Callable[..., PortalProcess], daemons: Callable[..., DaemonProcess]
) -> None:
    portal = portal_factory(start=False, serve_args=["--without-query"])
    daemon = daemons("node-1", {"tenant_check": dict(MANUAL_ONLY)})
    restored = ["tenant-3", "tenant-17"]
    prepare(portal, daemon, 30, restored)

    wait_for(lambda: CHECKED in daemon.log(), 60, what="the take-over's portal check")
    [query] = portal.requests(path=QUERY)
    assert (query.status, query.code) == (404, "not_found")
    asked = portal.requests(path=CURRENT)
    assert Counter(r.tenant_id for r in asked) == {f"tenant-{n}": 1 for n in range(30)}
    assert all(r.id > query.id and r.status == 200 for r in asked)
    assert "the portal has no current-license query: asking for each tenant" in daemon.log()
    assert "tenants=30 requests=31" in daemon.log()
    wait_reactivated(daemon, portal, sorted(restored))


@pytest.mark.timeout(120)
def test_a_small_max_response_makes_smaller_queries(
    portal_factory: Callable[..., PortalProcess], daemons: Callable[..., DaemonProcess]
) -> None:
    portal = portal_factory(start=False)
    daemon = daemons("node-1", {"tenant_check": dict(MANUAL_ONLY)})
    restored = ["tenant-29"]
    prepare(portal, daemon, 30, restored, {"max_response": 4096})

    wait_for(lambda: CHECKED in daemon.log(), 60, what="the take-over's portal check")
    queries = portal.requests(path=QUERY)
    assert len(queries) > 1
    assert all(q.status == 200 and q.asked is not None and q.asked <= 10 for q in queries), queries
    assert sum(q.asked or 0 for q in queries) == 30
    assert "PortalBadAnswer" not in daemon.log()
    wait_reactivated(daemon, portal, restored)


def test_query_chunks_keep_to_1000_tenants_and_half_the_answer_limit() -> None:
    key = "k" * 64
    many = {f"tenant-{n}": ("id", key) for n in range(2500)}
    assert [len(c) for c in query_chunks(many, 1024 * 1024)] == [1000, 1000, 500]
    assert [t for c in query_chunks(many, 1024 * 1024) for t in c] == list(many)
    # ~280 bytes of answer per tenant: 2048 bytes (half of 4096) hold 7.
    assert [len(c) for c in query_chunks(dict(list(many.items())[:30]), 4096)] == [7, 7, 7, 7, 2]
    # A tenant whose entry alone exceeds the budget still gets asked, on its own.
    huge = {"a": ("id", key), "b" * 3000: ("id", key), "c": ("id", key)}
    assert [len(c) for c in query_chunks(huge, 4096)] == [1, 1, 1]
    assert list(query_chunks({}, 4096)) == []


def test_the_query_limit_is_the_portals() -> None:
    from paragon_licensed.daemon import startup
    from paragon_licensed.portal import messages

    assert startup.QUERY_SIZE == messages.MAX_QUERY
    assert startup.QUERY == messages.QUERY_PATH
