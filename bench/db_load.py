"""The database load of idle nodes (heartbeats, lease, coordinator polling).

Starts a throwaway PostgreSQL server with pg_stat_statements loaded, the reference
portal, and installed daemons at the default timings (heartbeat 2 s, lease 15 s
renewed every 5 s), with one tenant activated and nothing else to do. Measured over
--seconds (20) after a warm-up, first with 1 node, then with 3:

- transactions/s: the delta of pg_stat_database.xact_commit + xact_rollback for the
  store's database (the bench itself reads the statistics from another database);
- statements/s: the delta of pg_stat_statements.calls for that database (transaction
  control such as BEGIN/COMMIT left out), and the statements called most.

The baseline, computed from the same timings: one heartbeat transaction per heartbeat
and one lease transaction per renew period per node, i.e. 1/2 + 1/5 = 0.7 transactions/s.
The ratio measured/baseline says how much more than the heartbeat and the lease an idle
node costs the database.

    .venv/bin/python bench/db_load.py [--seconds 20] [--warmup 12]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.cluster import DEFAULT_TIMINGS, Cluster
from support.portal import PortalProcess
from support.postgres import PostgresServer, make_server

HEARTBEAT, LEASE, RENEW = 2.0, 15.0, 5.0
BASELINE = 1 / HEARTBEAT + 1 / RENEW
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


def counters(server: PostgresServer, dbname: str) -> tuple[int, dict[str, int]]:
    """(committed + rolled back transactions, calls per statement) for the database so far."""
    with server.connect() as conn:
        xacts = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (dbname,)
        ).fetchone()
        rows = conn.execute(
            "SELECT s.query, sum(s.calls)::bigint FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s GROUP BY s.query",
            (dbname,),
        ).fetchall()
    assert xacts is not None
    return int(str(xacts[0])), {str(q): int(str(c)) for q, c in rows}


def measure(server: PostgresServer, dbname: str, seconds: float) -> dict[str, Any]:
    xacts0, calls0 = counters(server, dbname)
    started = time.monotonic()
    time.sleep(seconds)
    xacts1, calls1 = counters(server, dbname)
    elapsed = time.monotonic() - started
    delta = {q: c - calls0.get(q, 0) for q, c in calls1.items() if c - calls0.get(q, 0) > 0}
    delta = {q: c for q, c in delta.items() if not q.strip().upper().startswith(TRANSACTION_CONTROL)}
    return {
        "xacts": (xacts1 - xacts0) / elapsed,
        "queries": sum(delta.values()) / elapsed,
        "top": sorted(delta.items(), key=lambda item: -item[1])[:8],
        "elapsed": elapsed,
    }


def report(label: str, nodes: int, result: dict[str, Any]) -> None:
    per_node = result["xacts"] / nodes
    print(f"{label}: over {result['elapsed']:.1f} s")
    print(
        f"  transactions/s: {result['xacts']:.2f} total, {per_node:.2f} per node "
        f"(baseline {BASELINE:.2f}; ratio {per_node / BASELINE:.2f})"
    )
    print(f"  statements/s:   {result['queries']:.2f} total, {result['queries'] / nodes:.2f} per node")
    for query, calls in result["top"]:
        text = " ".join(query.split())
        print(f"    {calls / result['elapsed']:6.2f}/s  {text[:110]}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=12.0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-db-load-"))
    server = make_server(
        {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}, own=True
    )
    portal = PortalProcess(root / "portal")
    cluster: Cluster | None = None
    try:
        with server.connect() as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        url = server.new_database()
        dbname = urlsplit(url).path.lstrip("/")
        portal.start()
        cluster = Cluster(root / "cluster", url, portal, {"cluster": DEFAULT_TIMINGS})
        cluster.start("node-1")
        cluster.wait_online({"node-1"}, timeout=60)
        cluster.activate(via=cluster.wait_coordinator(timeout=60))
        cluster.db.close()  # the bench's own connection must not count
        time.sleep(args.warmup)
        one = measure(server, dbname, args.seconds)

        cluster.start("node-2", "node-3")
        cluster.wait_online({"node-1", "node-2", "node-3"}, timeout=60)
        cluster.db.close()
        time.sleep(args.warmup)
        three = measure(server, dbname, args.seconds)
    finally:
        if cluster is not None:
            cluster.close()
        portal.close()
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"PostgreSQL, the default timings (heartbeat {HEARTBEAT:g} s, lease {LEASE:g} s renewed "
        f"every {RENEW:g} s), idle nodes, one tenant activated"
    )
    print()
    report("1 node (the coordinator)", 1, one)
    print()
    report("3 nodes (1 coordinator, 2 followers)", 3, three)
    print()
    extra = three["xacts"] - one["xacts"]
    print(
        f"the 2 added followers: {extra:.2f} transactions/s, {extra / 2:.2f} per follower "
        f"(ratio to the baseline {extra / 2 / BASELINE:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
