"""The cluster end to end: three real daemons sharing one store, one real portal.

What is shown here is described in docs/operations.md, "Running a cluster", and in
ARCHITECTURE.md §4 (locking and fencing).

Every test runs twice: on a PostgreSQL database of the suite's own server, and on one
SQLite file shared by the daemons as on one host. The daemons are the installed
`paragon-licensed run` processes; the tests drive them with `paragon-licensed ctl`
over their sockets, stop, kill and freeze them with signals, and check what the
portal's request log and the shared store say happened.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cluster import TENANT, Cluster, Watcher, varlink_call, wait_for
from support.daemon import DAEMON, DaemonProcess
from support.portal import PortalProcess
from support.postgres import PostgresServer

from paragon_licensed import licensefile as lf

pytest_plugins = ["support.portal", "support.postgres"]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALL = ("node-1", "node-2", "node-3")
REACTIVATE = "io.paragon.License.Reactivate"
TAKEOVER = re.compile(r"this node is now the coordinator node=(\S+) term=(\d+)")
MakeCluster = Callable[..., Cluster]


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh shared store: a database on the suite's PostgreSQL server, or one SQLite file."""
    if request.param != "postgresql":
        yield f"sqlite://{tmp_path / 'shared' / 'store.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    dsn = server.new_database()
    yield dsn
    server.drop_database(dsn)


@pytest.fixture
def make_cluster(tmp_path: Path, store_url: str, portal: PortalProcess) -> Iterator[MakeCluster]:
    made: list[Cluster] = []

    def make(config: dict[str, Any] | None = None) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster-{len(made)}", store_url, portal, config)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Cluster:
    return make_cluster()


# -- helpers


def start_all(cluster: Cluster, names: tuple[str, ...] = ALL) -> DaemonProcess:
    """Start the nodes, wait until each sees all of them online; return the agreed coordinator."""
    cluster.start(*names)
    cluster.wait_online(set(names))
    return cluster.wait_coordinator()


def computer_ids(cluster: Cluster) -> dict[str, str]:
    return {node.name: node.status()["computer_id"] for node in cluster.running()}


def same_state_everywhere(cluster: Cluster, state: str) -> dict[str, Any]:
    """Wait until every running node reports the tenant in ``state``, identically; return it."""

    def agreed() -> dict[str, Any] | None:
        seen = [node.tenant_state(TENANT) for node in cluster.running()]
        if all(s == seen[0] for s in seen) and seen[0]["state"] == state:
            return seen[0]
        return None

    return wait_for(agreed, 40, what=f"every node reporting {state}")


def same_license_everywhere(cluster: Cluster, license_id: str) -> None:
    def everywhere() -> bool:
        return all(node.ctl_json("license", "info")["license_id"] == license_id for node in cluster.running())

    wait_for(everywhere, 40, what=f"every node reporting license {license_id}")


def takeovers(cluster: Cluster) -> dict[int, list[str]]:
    """Term -> the nodes whose log says they became the coordinator in it."""
    terms: dict[int, list[str]] = {}
    for node in cluster.nodes.values():
        for name, term in TAKEOVER.findall(node.log()):
            terms.setdefault(int(term), []).append(name)
    return terms


def jobs(cluster: Cluster) -> list[tuple[Any, ...]]:
    columns = "id, kind, submitted_by, claimed_by, claimed_term, state, error_name"
    return cluster.rows(f"SELECT {columns} FROM jobs ORDER BY created_at")


def store_dump(cluster: Cluster) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a coordinator writes (not the nodes' heartbeats, not the lease's expiry)."""
    queries = {
        "meta": "SELECT store_id, generation FROM meta",
        "lease": "SELECT holder, term, acquired_at FROM lease",
        "tenants": "SELECT * FROM tenants ORDER BY id",
        "licenses": "SELECT * FROM licenses ORDER BY id",
        "orders_used": "SELECT * FROM orders_used ORDER BY integrity_key, order_id",
        "jobs": "SELECT * FROM jobs ORDER BY id",
        "audit": "SELECT * FROM audit ORDER BY id",
        "notifications": "SELECT id, tenant_id, kind, title, acked_at FROM notifications ORDER BY id",
        "check_runs": "SELECT * FROM check_runs ORDER BY id",
    }
    return {name: cluster.rows(sql) for name, sql in queries.items()}


def settled_dump(
    cluster: Cluster, quiet_for: float, timeout: float = 40.0
) -> dict[str, list[tuple[Any, ...]]]:
    """The store dump once it stayed the same for ``quiet_for`` seconds (longer than a portal call)."""
    deadline = time.monotonic() + timeout
    before = store_dump(cluster)
    while time.monotonic() < deadline:
        time.sleep(quiet_for)
        after = store_dump(cluster)
        if after == before:
            return after
        before = after
    raise TimeoutError("the store kept changing")


# -- election and failover


def test_one_coordinator_and_failover_after_sigkill(cluster: Cluster) -> None:
    first = start_all(cluster)
    lease = cluster.lease()
    assert lease.holder == first.name

    first.kill()
    second = cluster.wait_coordinator(other_than=first.name)
    after_first = cluster.lease()
    assert after_first.holder == second.name
    assert after_first.term > lease.term

    second.kill()
    third = cluster.wait_coordinator(other_than=second.name)
    after_second = cluster.lease()
    assert third.name not in (first.name, second.name)
    assert after_second.holder == third.name
    assert after_second.term > after_first.term

    # Never two coordinators in one term: each term was taken by exactly one node.
    terms = takeovers(cluster)
    assert all(len(names) == 1 for names in terms.values()), terms
    assert terms[lease.term] == [first.name]
    assert terms[after_first.term] == [second.name]
    assert terms[after_second.term] == [third.name]


# -- reactivation: handed to the coordinator, and only with every node online


def test_reactivation_runs_on_the_coordinator_and_needs_every_node(
    cluster: Cluster, portal: PortalProcess
) -> None:
    leader = start_all(cluster)
    ids = computer_ids(cluster)
    all_ids = sorted(ids.values())
    follower, third = (n for n in cluster.running() if n is not leader)

    activated = cluster.activate(via=follower)
    # Read your writes: the node where the command ran knows the license when the command returns.
    shown = follower.ctl("license", "info", "--json")
    assert shown.returncode == 0, (
        f"`license info` on {follower.name} right after its activation: {shown.stderr}"
    )
    assert "activating tenant default on the License Portal (3 computer ID(s))" in activated.stdout
    assert "verifying the license's signature" in activated.stdout
    assert "installed" in activated.stdout

    # The portal got the whole cluster: every node's computer ID, and the license binds them all.
    granted = portal.requests(path="/api/v1/activations", status=200)
    assert [r.computer_ids for r in granted] == [all_ids]
    issued = portal.licenses(TENANT)[-1]
    assert issued.integrity_key == lf.integrity_key(TENANT, all_ids)
    same_state_everywhere(cluster, "active")
    assert cluster.license_ids(follower) == all_ids

    # Reactivation asked of a node that is not the coordinator: the coordinator runs it as a
    # job, and the caller's ctl shows its steps.
    reactivated = follower.ctl("license", "reactivate")
    assert reactivated.returncode == 0, reactivated.stderr
    assert "reactivating every order of tenant default" in reactivated.stdout
    assert "installed" in reactivated.stdout
    runs = [(kind, by, ran, state) for _, kind, by, ran, _, state, _ in jobs(cluster)]
    assert runs == [
        ("activate", follower.name, leader.name, "done"),
        ("reactivate", follower.name, leader.name, "done"),
    ]
    reactivations = portal.requests(path="/api/v1/reactivations", status=200)
    assert reactivations[-1].computer_ids == all_ids
    same_state_everywhere(cluster, "active")

    # One node stopped: refused on every node, naming it and when it was last seen, with
    # the two ways forward, and without a portal call.
    third.stop()
    cluster.wait_online({leader.name, follower.name})
    gone = next(n for n in cluster.node_list(follower) if n["name"] == third.name)
    calls = len(portal.requests())
    for node in (follower, leader):
        refused = node.ctl("license", "reactivate")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{third.name} (last seen {gone['last_seen']})" in refused.stderr
        assert "Bring the node back" in refused.stderr
        assert "nodes forget NAME" in refused.stderr
        assert "license transfer --replace" in refused.stderr
    reply = varlink_call(follower.socket, REACTIVATE, {"tenant": TENANT, "mode": "online"})
    assert reply.get("error") == "io.paragon.License.NodesOffline", reply
    assert reply["parameters"]["nodes"] == [
        {"name": third.name, "computer_id": ids[third.name], "last_seen": gone["last_seen"]}
    ]
    assert len(portal.requests()) == calls

    # Back online: the same command succeeds, for all three computer IDs again.
    third.start()
    cluster.wait_online(set(ALL))
    again = follower.ctl("license", "reactivate", "--json")
    assert again.returncode == 0, again.stderr
    outcome = json.loads(again.stdout)["license"]
    assert sorted(outcome["computer_ids"]) == all_ids
    assert portal.requests(path="/api/v1/reactivations", status=200)[-1].computer_ids == all_ids
    same_license_everywhere(cluster, outcome["license_id"])
    same_state_everywhere(cluster, "active")


# -- a node gone for good: forget it, then transfer


def test_forget_a_dead_node_then_transfer(cluster: Cluster, portal: PortalProcess) -> None:
    leader = start_all(cluster)
    ids = computer_ids(cluster)
    cluster.activate(via=leader)
    victim = next(n for n in cluster.running() if n is not leader)
    survivor = next(n for n in cluster.running() if n not in (leader, victim))

    online = survivor.ctl("nodes", "forget", victim.name)
    assert online.returncode == 1
    assert f"Node {victim.name} is online" in online.stderr
    reply = varlink_call(survivor.socket, "io.paragon.License.ForgetNode", {"name": victim.name})
    assert reply.get("error") == "io.paragon.License.NodeOnline", reply

    victim.stop()
    cluster.wait_online({leader.name, survivor.name})
    forgotten = survivor.ctl("nodes", "forget", victim.name)
    assert forgotten.returncode == 0, forgotten.stderr
    assert f"license transfer --replace {ids[victim.name]}" in forgotten.stdout
    assert victim.name not in {n["name"] for n in cluster.node_list(survivor)}
    wait_for(
        lambda: victim.name not in {n["name"] for n in cluster.node_list(leader)},
        30,
        what=f"{victim.name} gone from the coordinator's list",
    )

    stranded = same_state_everywhere(cluster, "needs_transfer")
    assert ids[victim.name] in stranded["reason"]

    moved = survivor.ctl("license", "transfer", "--replace", ids[victim.name])
    assert moved.returncode == 0, moved.stderr
    assert "transferred" in moved.stdout
    same_state_everywhere(cluster, "active")
    remaining = sorted(ids[n.name] for n in (leader, survivor))
    assert cluster.license_ids(leader) == remaining
    transfer = portal.requests(path="/api/v1/transfers", status=200)[-1]
    assert transfer.computer_ids == sorted(ids.values())
    assert transfer.new_computer_ids == remaining


# -- a node joining


def test_a_joining_node_triggers_reactivation_once_every_node_is_online(
    cluster: Cluster, portal: PortalProcess
) -> None:
    leader = start_all(cluster, ("node-1", "node-2"))
    cluster.activate(via=leader)
    other = next(n for n in cluster.running() if n is not leader)
    assert len(cluster.license_ids(leader)) == 2

    # The other node is away while the new one joins: the reactivation must wait for it.
    other.stop()
    cluster.wait_online({leader.name})
    with Watcher(leader) as watcher:
        newcomer = cluster.start("node-3")[0]
        cluster.wait_online({leader.name, newcomer.name})
        waiting = same_state_everywhere(cluster, "needs_reactivation")
        assert "joined" in waiting["reason"]
        leader.wait_until(
            lambda: "reactivation waits until every node is online" in leader.log(),
            timeout=30,
            what="the reactivation waiting for the offline node",
        )
        assert not [
            r for r in portal.requests(path="/api/v1/reactivations") if len(r.computer_ids or []) == 3
        ]

        other.start()
        cluster.wait_online(set(ALL))
        same_state_everywhere(cluster, "active")
        states = [e.get("state") for e in watcher.seen() if e["kind"] == "state_changed"]
        # The heartbeat tells watchers of each node coming online (a page needs no polling).
        joined = [f"node {newcomer.name} is online", f"node {other.name} is online"]
        wait_for(
            lambda: all(
                any(e["kind"] == "nodes_changed" and text in e["message"] for e in watcher.seen())
                for text in joined
            ),
            30,
            what=f"nodes_changed events {joined}",
        )
    assert "needs_reactivation" in states, states
    assert "active" in states[states.index("needs_reactivation") :], states

    all_ids = sorted(computer_ids(cluster).values())
    assert cluster.license_ids(other) == all_ids
    assert portal.requests(path="/api/v1/reactivations", status=200)[-1].computer_ids == all_ids
    latest = cluster.rows("SELECT cause, installed_by FROM licenses ORDER BY id DESC LIMIT 1")[0]
    assert latest[0] == "reactivation"
    assert str(latest[1]).startswith("coordinator")


# -- fencing


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "phase",
    [
        # Frozen while its portal call is on the wire: the answer arrives after the lease is gone.
        pytest.param(["--latency", "2500"], id="answer-in-flight"),
        # Frozen while it waits to retry a 429: the retry is due when it wakes up.
        pytest.param(
            ["--fail-first", "1", "--fail-code", "rate_limited", "--retry-after", "3"], id="retry-due"
        ),
    ],
)
def test_a_frozen_coordinator_writes_nothing_and_calls_no_portal_after_it_wakes(
    make_cluster: MakeCluster, portal: PortalProcess, phase: list[str]
) -> None:
    # Nodes count as online for 30 s, so the frozen node does not block the new coordinator's
    # reactivation (NodesOffline) while the lease (3 s) moves on.
    cluster = make_cluster({"cluster": {"node_timeout": "30s"}})
    stale = start_all(cluster)
    cluster.activate(via=stale)
    same_state_everywhere(cluster, "active")
    first_term = cluster.lease().term
    installed_before = len(cluster.rows("SELECT id FROM licenses"))

    portal.restart(phase)
    follow = subprocess.Popen(
        [DAEMON, "ctl", "--socket", stale.socket, "license", "reactivate"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if "--latency" in phase:
            # The job is claimed and its portal step reported: the call is on its way.
            wait_for(
                lambda: (
                    any(
                        kind == "reactivate" and ran == stale.name and state == "running"
                        for _, kind, _, ran, _, state, _ in jobs(cluster)
                    )
                    and "portal" in str(cluster.rows("SELECT progress FROM jobs WHERE kind = 'reactivate'"))
                ),
                30,
                interval=0.02,
                what="the coordinator inside its portal call",
            )
        else:
            stale.wait_until(
                lambda: "portal call failed, retrying" in stale.log(),
                timeout=30,
                interval=0.02,
                what="the coordinator waiting to retry",
            )
        cluster.freeze(stale)

        successor = cluster.wait_coordinator(other_than=stale.name)
        term = cluster.lease().term
        assert term > first_term

        def finished() -> tuple[Any, ...] | None:
            rows = [r for r in jobs(cluster) if r[1] == "reactivate"]
            return rows[0] if rows and rows[0][5] in ("done", "failed") else None

        job: tuple[Any, ...] = wait_for(
            finished, 60, what="the reactivation job finished by the new coordinator"
        )
        assert job[3:7] == (successor.name, term, "done", ""), job

        # Let the cluster settle: the store stays unchanged for longer than a portal call takes
        # (2.5 s latency), so nothing the new coordinator started is still under way.
        quiet = settled_dump(cluster, quiet_for=3.5)
        # The reactivation installed one license, and the frozen node's unanswered call was not
        # mistaken for a restore of the store (which would reactivate once more).
        assert len(quiet["licenses"]) == installed_before + 1, quiet["licenses"]
        assert "restore_detected" not in {row[2] for row in quiet["notifications"]}, quiet["notifications"]
        portal_log = [(r.id, r.path, r.request_id) for r in portal.requests()]

        cluster.thaw(stale)
        stale.wait_until(
            lambda: "this node stops acting as coordinator" in stale.log(),
            timeout=30,
            what="the woken node stepping down",
        )
        out, err = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()

    # The caller on the frozen node still got the job's result, run by the new coordinator.
    assert follow.returncode == 0, out + err
    assert "reactivated" in out
    assert cluster.wait_coordinator().name == successor.name
    # Whatever the woken node still had in hand, it would have done it by now.
    time.sleep(2)
    assert [(r.id, r.path, r.request_id) for r in portal.requests()] == portal_log
    assert store_dump(cluster) == quiet
    assert not stale.status()["is_coordinator"]
    woken = stale.log().split("this node stops acting as coordinator", 1)[1]
    assert "license installed" not in woken
    assert "job done" not in woken
