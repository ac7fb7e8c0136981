"""End-to-end cluster reactivation of three nodes, against a single node.

Starts the reference portal, three installed daemons sharing one store (a throwaway
PostgreSQL server by default, or one SQLite file) and, as the baseline in the same run, a
single daemon with a store of its own (same backend) and a tenant of its own on the
same portal. Both are activated once; then, interleaved, median of --runs (20) each:

- cluster, asked on a node that is not the coordinator: `ctl license reactivate --json`
  as a process (the job hand-off to the coordinator, the portal call with all three
  computer IDs, verification, the fenced install, the result back to the caller), and
  the time until all three nodes report the new license (GetLicense over their sockets);
- cluster, asked on the coordinator itself;
- single node: the same command on the lone daemon (the baseline).

Ratios are to the single node. Timings: the default (heartbeat 2 s, lease 15 s, renew 5 s),
so "every node reports it" includes up to one heartbeat for the other nodes to read it.

    .venv/bin/python bench/cluster_reactivation.py [--runs 20] [--store postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.cluster import DEFAULT_TIMINGS, Cluster, varlink_call, wait_for
from support.daemon import DAEMON, DaemonProcess
from support.portal import PortalProcess
from support.postgres import make_server


def reactivate(node: DaemonProcess, tenant: str) -> tuple[float, str]:
    """Run `ctl license reactivate --json` on ``node``; (wall seconds, the new license ID)."""
    started = time.perf_counter()
    result = subprocess.run(
        [DAEMON, "ctl", "--socket", node.socket, "license", "reactivate", "--tenant", tenant, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"reactivate on {node.name} exited {result.returncode}: {result.stderr}")
    outcome: dict[str, Any] = json.loads(result.stdout)
    return elapsed, str(outcome["license"]["license_id"])


def reported(node: DaemonProcess, tenant: str) -> str:
    reply = varlink_call(node.socket, "io.paragon.License.GetLicense", {"tenant": tenant}, timeout=10)
    return str(reply.get("parameters", {}).get("license", {}).get("license_id", ""))


def everywhere(cluster: Cluster, license_id: str) -> bool:
    return all(reported(node, "default") == license_id for node in cluster.running())


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-cluster-reactivation-"))
    server = make_server(own=True) if args.store == "postgresql" else None

    def new_store(name: str) -> str:
        return server.new_database() if server is not None else f"sqlite://{root / name / 'store.db'}"

    portal = PortalProcess(root / "portal")
    portal.start()
    cluster = Cluster(root / "cluster", new_store("cluster-store"), portal, {"cluster": DEFAULT_TIMINGS})
    solo = DaemonProcess(
        root,
        "solo",
        {
            "store": {"url": new_store("solo-store")},
            "cluster": DEFAULT_TIMINGS,
            "portal": {"url": portal.url, "public_keys": [portal.public_keys_glob]},
            "tenants": [{"id": "solo", "admin_email": "admin@example.com"}],
        },
    )
    times: dict[str, list[float]] = {"follower": [], "follower_all": [], "coordinator": [], "single": []}
    try:
        cluster.start("node-1", "node-2", "node-3")
        cluster.wait_online({"node-1", "node-2", "node-3"}, timeout=60)
        leader = cluster.wait_coordinator(timeout=60)
        follower = next(n for n in cluster.running() if n is not leader)
        cluster.activate(via=follower)
        solo.start(timeout=60)
        portal.add_order("SOLO-KEY-0001", "solo")
        solo.ctl("license", "activate", "--key", "SOLO-KEY-0001", check=True)
        # One warm-up of each, not counted.
        reactivate(follower, "default")
        reactivate(solo, "solo")

        for _ in range(args.runs):
            elapsed, license_id = reactivate(follower, "default")
            started = time.perf_counter() - elapsed
            wait_for(
                partial(everywhere, cluster, license_id),
                30,
                interval=0.01,
                what="every node reporting the new license",
            )
            times["follower"].append(elapsed)
            times["follower_all"].append(time.perf_counter() - started)
            times["coordinator"].append(reactivate(leader, "default")[0])
            times["single"].append(reactivate(solo, "solo")[0])
        ids = sorted(cluster.license_ids(follower))
        sent = portal.requests(path="/api/v1/reactivations", tenant_id="default", status=200)[-1].computer_ids
    finally:
        cluster.close()
        solo.kill()
        portal.close()
        if server is not None:
            server.destroy()
        shutil.rmtree(root, ignore_errors=True)

    base = statistics.median(times["single"])
    labels = {
        "single": "single node: ctl license reactivate (baseline)",
        "coordinator": "3 nodes, asked on the coordinator",
        "follower": "3 nodes, asked on another node (job hand-off)",
        "follower_all": "3 nodes, asked on another node, until all 3 report it",
    }
    print(f"store: {args.store}; timings: the default (heartbeat 2 s); runs: {args.runs} each, interleaved")
    print(f"computer IDs sent to the portal: {len(sent or [])}; in the license: {len(ids)}")
    print()
    print(f"{'':56} {'median':>9} {'p90':>9} {'ratio':>7}")
    for key in ("single", "coordinator", "follower", "follower_all"):
        median = statistics.median(times[key])
        print(f"{labels[key]:56} {median * 1000:7.1f}ms {p90(times[key]) * 1000:7.1f}ms {median / base:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
