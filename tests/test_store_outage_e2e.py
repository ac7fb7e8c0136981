"""The shared PostgreSQL database stops under running daemons, and comes back.

Two real daemons share a database on a PostgreSQL server of this test's own, which the
test stops (as a crash would: immediate shutdown) and starts again. Through the outage
each node keeps running and keeps reporting the tenant's last verified license, from
memory and, after a restart, from its local copy in state_dir; afterwards the cluster
recovers by itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from support.cluster import TENANT, Cluster, wait_for
from support.daemon import DaemonProcess
from support.portal import PortalProcess
from support.postgres import PostgresServer

pytest_plugins = ["support.portal", "support.postgres"]
pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

NODES = ("node-1", "node-2")


def reported(node: DaemonProcess) -> dict[str, Any]:
    """What a node says about the tenant's license: its state and the license behind it."""
    state = node.tenant_state(TENANT)
    info = node.ctl_json("license", "info")
    return {
        "state": state["state"],
        "valid_until": state["valid_until"],
        "support_id": state["support_id"],
        "license_id": info["license_id"],
        "computer_ids": sorted(info["computer_ids"]),
    }


def local_copy(node: DaemonProcess) -> dict[str, str]:
    path = node.root / "state" / "licenses.json"
    try:
        data: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def agreed(first: DaemonProcess, second: DaemonProcess, not_license: str | None) -> dict[str, Any] | None:
    """What both nodes report, once they report the same active license (not ``not_license``).

    A node that has not seen the license yet (its next heartbeat brings it) reports none."""
    try:
        seen, other = reported(first), reported(second)
    except AssertionError:  # `ctl license info`: no license yet on that node
        return None
    if seen != other or seen["state"] != "active" or seen["license_id"] == not_license:
        return None
    return seen


def has_local_copy(node: DaemonProcess, document: str) -> bool:
    return local_copy(node).get(TENANT) == document


def store_down(node: DaemonProcess) -> dict[str, Any] | None:
    status = node.status()
    return status if status["store_available"] is False else None


def store_up(node: DaemonProcess) -> bool:
    return bool(node.status()["store_available"])


def alive(node: DaemonProcess) -> bool:
    return node.proc is not None and node.proc.poll() is None


@pytest.mark.timeout(240)
def test_the_database_stops_and_starts_again_under_running_daemons(
    postgres_factory: Callable[..., PostgresServer], portal: PortalProcess, tmp_path: Path
) -> None:
    server = postgres_factory()
    cluster = Cluster(tmp_path, server.new_database(), portal)
    try:
        cluster.start(*NODES)
        cluster.wait_online(set(NODES))
        leader = cluster.wait_coordinator()
        cluster.activate(via=leader)
        first, second = (cluster.nodes[name] for name in NODES)
        licensed = wait_for(partial(agreed, first, second, None), 30, what="both nodes reporting the license")
        assert len(licensed["computer_ids"]) == 2
        # Each node keeps a verified copy of the license in its state_dir.
        document = cluster.rows("SELECT document FROM licenses ORDER BY id DESC LIMIT 1")[0][0]
        for node in (first, second):
            wait_for(
                partial(has_local_copy, node, document), 30, what=f"the local license copy of {node.name}"
            )
        cluster.db.close()  # the test's own connection must not outlive the server

        # The database goes away under the running daemons.
        server.stop("immediate")
        for node in (first, second):
            status = wait_for(
                partial(store_down, node), 30, what=f"{node.name} reporting the store unavailable"
            )
            assert status["store_problem"], status
            assert status["store_backend"] == "postgresql"
            assert not status["is_coordinator"] or node is leader
            assert reported(node) == licensed, f"{node.name} during the outage"
        # No node acts as coordinator without the store for longer than its renew deadline.
        wait_for(
            lambda: not any(n.status()["is_coordinator"] for n in (first, second)),
            30,
            what="the coordinator stepping down without its store",
        )
        # ... and once its lease ran out, no node still names a coordinator.
        wait_for(
            lambda: all(n.status()["coordinator"] is None for n in (first, second)),
            30,
            what="no node naming a coordinator after the lease ran out",
        )
        # A changing operation fails with the store's error (io.paragon.License.StoreUnavailable),
        # not an internal error, and without hanging or harming the daemon.
        refused = second.ctl("license", "reactivate", timeout=90)
        assert refused.returncode == 1, refused.stderr
        assert "The license store is unavailable" in refused.stderr, refused.stderr
        assert alive(first)
        assert alive(second)

        # Restarted while the database is still down: READY, serving the license from its local copy.
        assert second.stop() == 0
        second.start(timeout=30)
        status = second.status()
        assert status["store_available"] is False
        assert status["store_problem"]
        assert reported(second) == licensed, "a node restarted during the outage"

        # The database is back: every node recovers by itself, one coordinator, reactivation works.
        server.start()
        for node in (first, second):
            wait_for(partial(store_up, node), 90, what=f"{node.name} reporting the store available again")
        cluster.wait_online(set(NODES))
        cluster.wait_coordinator()
        again = second.ctl("license", "reactivate")
        assert again.returncode == 0, again.stderr
        wait_for(
            partial(agreed, first, second, licensed["license_id"]),
            30,
            what="both nodes reporting the new license",
        )
        assert alive(first)
        for node in (first, second):
            assert "Traceback" not in node.log(), node.log()
    finally:
        cluster.close()
