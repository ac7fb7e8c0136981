"""The take-over's restore check against the portal, 10,000 tenants: queries against one GET per tenant.

Set-up (not timed): the portal is seeded with 10,000 tenants, each activated for
this node's computer ID through the portal's own service code; the licenses are
installed into the daemon's store before its first start. Before each start the
portal reactivates a few tenants by itself (licenses the store never saw, as after
a restore of the whole state folder), so each check has something to find.

Each round starts the daemon twice against `paragon-license-portal serve --latency
20` (a network's round trip): once as it runs now (POST /licenses/current/query,
1,000 tenants a query) and once against the same portal with `--without-query`, so
the daemon falls back to one GET /licenses/current per tenant, as before the query
existed (the baseline). For each: the portal requests the check sent (from the
portal's request log), the check's time as the daemon logs it ("current licenses
checked on the portal ... seconds="), and whether it found exactly the restored
tenants. Targets for the query: <= 10 requests and <= 1 s. A missed target prints
MISSED; the script exits 0.

    .venv/bin/python bench/takeover_restore_check.py [--tenants 10000] [--latency 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DaemonProcess
from support.portal import PortalProcess
from support.tenant_check import MANUAL_ONLY, activate_in_portal, install_many, prepare_store

QUERY = "/api/v1/licenses/current/query"
CURRENT = "/api/v1/licenses/current"
CHECKED = re.compile(r"current licenses checked on the portal .*requests=(\d+) seconds=([\d.]+)")
FOUND = re.compile(r"the portal issued newer licenses than the stored ones: restore tenants=(\S+)")
RESTORED_PER_ROUND = 3


def check_once(
    portal: PortalProcess,
    daemon: DaemonProcess,
    serve_args: list[str],
    restored: list[tuple[str, str]],
    computer_id: str,
) -> tuple[int, float, float, bool]:
    """Start portal and daemon, wait for the check; (portal requests, seconds, of which the
    portal's handling without the latency, found exactly)."""
    activate_in_portal(portal, restored, [computer_id], kind="reactivation")
    portal.start(serve_args)
    daemon.update_config({"portal": {"url": portal.url}})
    records = portal.requests()
    mark = records[-1].id if records else 0
    log_mark = len(daemon.log())
    daemon.start(timeout=120)
    deadline = time.monotonic() + 900
    while not (match := CHECKED.search(daemon.log()[log_mark:])):
        if time.monotonic() > deadline:
            raise TimeoutError("the take-over's portal check did not finish")
        time.sleep(0.2)
    calls = portal.requests(path=QUERY, after_id=mark) + portal.requests(path=CURRENT, after_id=mark)
    sent = len(calls)
    handling = sum(r.handling_ms for r in calls) / 1000
    found = FOUND.search(daemon.log()[log_mark:])
    exact = found is not None and sorted(found.group(1).split(",")) == sorted(t for t, _ in restored)
    # The restored tenants are reactivated next; stopping before would leave them to the next start.
    while not {t for t, _ in restored} <= reactivated_after_restore(daemon):
        if time.monotonic() > deadline:
            raise TimeoutError("the restored tenants were not reactivated")
        time.sleep(0.2)
    daemon.stop()
    portal.stop()
    return sent, float(match.group(2)), handling, exact


def reactivated_after_restore(daemon: DaemonProcess) -> set[str]:
    notes = daemon.ctl_json("notifications")
    return {n["tenant"] for n in notes if n["title"] == "License reactivated after restore"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=20.0, help="the portal's --latency, in ms")
    parser.add_argument("--rounds", type=int, default=1, help="alternating starts of each kind")
    args = parser.parse_args()

    count = args.tenants
    latency = ["--latency", f"{args.latency:g}"]
    with tempfile.TemporaryDirectory(prefix="bench-takeover-") as tmp:
        root = Path(tmp)
        portal = PortalProcess(root / "portal")
        # The product's own cluster timings (the test harness shortens them for speed).
        cluster = {
            "heartbeat": "2s",
            "node_timeout": "10s",
            "lease": "15s",
            "renew": "5s",
            "renew_deadline": "10s",
        }
        daemon = DaemonProcess(root, "node-1", config={"tenant_check": dict(MANUAL_ONLY), "cluster": cluster})
        try:
            t0 = time.perf_counter()
            year = (datetime.now(UTC) + timedelta(days=365)).date()
            pairs = portal.db.seed_tenants(count, valid_until=year)
            ours = prepare_store(daemon)
            install_many(daemon, activate_in_portal(portal, pairs, [ours]))
            daemon.update_config({"portal": {"public_keys": [portal.public_keys_glob]}})
            took = time.perf_counter() - t0
            print(f"set-up: {count} tenants seeded, activated and installed in {took:.1f} s")

            results: dict[str, list[tuple[int, float, float, bool]]] = {"query": [], "each": []}
            step = max(1, count // RESTORED_PER_ROUND)
            for n in range(args.rounds * 2):
                kind = ("query", "each")[n % 2]
                # Other tenants each start, spread over the queries.
                restored = [pairs[(i * step + n) % count] for i in range(RESTORED_PER_ROUND)]
                extra = [] if kind == "query" else ["--without-query"]
                results[kind].append(check_once(portal, daemon, latency + extra, restored, ours))
        finally:
            daemon.kill()
            portal.close()

    def median(kind: str, index: int) -> float:
        return statistics.median(r[index] for r in results[kind])

    print(f"take-over restore check: {count} tenants, portal latency {args.latency:g} ms, "
          f"{args.rounds} round(s), medians")  # fmt: skip
    print()
    print(f"{'':38}{'requests':>10}{'seconds':>10}{'portal s':>10}  found the restored tenants")
    for kind, label in (("each", "one GET per tenant (baseline)"), ("query", "queries of 1,000 tenants")):
        found = all(r[3] for r in results[kind])
        print(f"  {label:36}{median(kind, 0):>10.0f}{median(kind, 1):>10.2f}{median(kind, 2):>10.2f}  "
              f"{'yes' if found else 'NO'}")  # fmt: skip
    print("  (portal s: the portal's own handling time, summed over the requests, without --latency)")
    requests, seconds = median("query", 0), median("query", 1)
    print()
    print(f"requests: {requests:.0f} ({requests / median('each', 0):.4f}x the baseline)   target <= 10  "
          f"{'OK' if requests <= 10 else 'MISSED'}")  # fmt: skip
    print(f"time:     {seconds:.2f} s ({seconds / median('each', 1):.3f}x the baseline)   target <= 1 s  "
          f"{'OK' if seconds <= 1 else 'MISSED'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
