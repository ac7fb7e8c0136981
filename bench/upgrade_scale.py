"""Scale figures: a store of many tenants, and all of them reactivated after an upgrade.

Set-up (not timed): the portal is seeded with N tenants (default 100,000), each
activated for this node through the portal's own service code, in-process, and
installed into the daemon's store before its first start (build 3.2.1). The portal
then serves with `--latency 20`.

Measured, each as a ratio or against its target:

- start to READY=1 with N tenants in the store (target <= 2 s), and until the store
  is loaded (every tenant in the status);
- RSS of the idle daemon with N tenants (target <= 300 MB);
- the GetStatus reply's size (target <= 64 KiB);
- the upgrade: the daemon restarted with build 3.2.2 detects it and reactivates every
  tenant; the time from the restart until every tenant is active again, against the
  ideal N x latency / portal.max_concurrency (16) (target <= 1.15x); the daemon's CPU
  per tenant meanwhile (target <= 0.6 ms);
- the control socket's latency for GetIdentity and GetStatus, sampled continuously
  by a separate process during the upgrade run (targets p99 <= 5 / <= 10 ms).

A missed target prints MISSED; the script exits 0.

    .venv/bin/python bench/upgrade_scale.py [--tenants 100000] [--latency 20] [--store sqlite|postgresql]

With `--store postgresql` the store is a database on a throwaway PostgreSQL server
(tests/support/postgres.py), or `$PARAGON_TEST_PG_DSN`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DaemonProcess
from support.portal import PortalProcess
from support.postgres import make_server
from support.tenant_check import MANUAL_ONLY, install_many, prepare_store
from tenant_check import Sampling, activate_in_portal, cpu_seconds, percentile, rss_mb

CONCURRENCY = 16
BUILD, NEXT_BUILD = "3.2.1", "3.2.2"
CLUSTER = {"heartbeat": "2s", "node_timeout": "10s", "lease": "15s", "renew": "5s", "renew_deadline": "10s"}


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


@contextmanager
def store_url(kind: str, root: Path) -> Iterator[str]:
    """A SQLite file in the node's state folder, or a database on a PostgreSQL server
    ($PARAGON_TEST_PG_DSN, else a throwaway one)."""
    if kind == "sqlite":
        yield f"sqlite://{root / 'node-1' / 'state' / 'store.db'}"
        return
    server = make_server()
    try:
        yield server.new_database()
    finally:
        server.destroy()


def wait(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> float:
    """Seconds until predicate() is true."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval)
    return time.perf_counter() - started


def start_timed(daemon: DaemonProcess, count: int) -> tuple[float, float]:
    """(seconds to READY=1, seconds until every tenant is in the status) for one start."""
    started = time.perf_counter()
    daemon.start(timeout=300)
    ready = time.perf_counter() - started
    wait(
        lambda: daemon.status()["tenant_total"] >= count and daemon.status()["store_available"],
        600,
        "tenants loaded",
    )
    return ready, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=20.0, help="the portal's --latency, in ms")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--pause", type=float, default=0.05, help="seconds between two rounds of control calls"
    )
    args = parser.parse_args()
    count = args.tenants

    with tempfile.TemporaryDirectory(prefix="bench-upgrade-") as tmp, store_url(args.store, Path(tmp)) as url:
        root = Path(tmp)
        portal = PortalProcess(root / "portal")
        daemon = DaemonProcess(
            root,
            "node-1",
            config={
                "tenant_check": dict(MANUAL_ONLY),
                "cluster": CLUSTER,
                "store": {"url": url},
                "product": {"build": BUILD, "deployment": "multi-tenant"},
            },
        )
        try:
            t0 = time.perf_counter()
            pairs = portal.db.seed_tenants(
                count, valid_until=(datetime.now(UTC) + timedelta(days=365)).date()
            )
            ours = prepare_store(daemon)
            install_many(daemon, activate_in_portal(portal, pairs, ours))
            portal.start(["--latency", f"{args.latency:g}"])
            daemon.update_config({"portal": {"url": portal.url, "public_keys": [portal.public_keys_glob]}})
            print(
                f"set-up: {count} tenants seeded, activated and installed in {time.perf_counter() - t0:.1f} s"
            )

            first_ready, first_loaded = start_timed(daemon, count)
            wait(lambda: daemon.status()["activity"] == "idle", 900, "the take-over check")
            assert daemon.proc is not None
            idle_rss, _ = rss_mb(daemon.proc.pid)
            idle = Sampling(daemon.socket, args.pause)
            time.sleep(3)
            idle_samples = idle.stop()
            status_size = idle_samples["bytes"]["GetStatus"]
            daemon.stop(timeout=60)

            # The upgrade: the same store, the next build.
            daemon.update_config({"product": {"build": NEXT_BUILD}})
            before = len(portal.requests())
            started = time.perf_counter()
            ready, loaded = start_timed(daemon, count)
            assert daemon.proc is not None
            pid = daemon.proc.pid
            cpu_before = cpu_seconds(pid)
            busy = Sampling(daemon.socket, args.pause)

            def all_active() -> bool:
                status = daemon.status()
                return bool(status["tenant_states"]["active"] == count and status["activity"] == "idle")

            wait(all_active, 7200, "every tenant reactivated", interval=0.5)
            elapsed = time.perf_counter() - started
            run_samples = busy.stop()
            cpu_used = cpu_seconds(pid) - cpu_before
            rss_after, hwm = rss_mb(pid)
            reactivations = [
                r for r in portal.requests(path="/api/v1/reactivations") if r.id > before and r.status == 200
            ]
        finally:
            daemon.stop(timeout=60)
            daemon.kill()
            portal.close()

    ideal = count * args.latency / 1000 / CONCURRENCY
    print()
    print(f"{count} tenants on {args.store}, portal latency {args.latency:g} ms, {CONCURRENCY} calls at once")
    print(f"  {'start to READY=1 (first start / after upgrade)':50} {first_ready:6.2f} / {ready:.2f} s"
          f"  (target <= 2 s) {verdict(max(first_ready, ready) <= 2)}")  # fmt: skip
    print(f"  {'start until every tenant is loaded':50} {first_loaded:6.2f} / {loaded:.2f} s")
    print(f"  {'RSS idle with every tenant loaded':50} {idle_rss:6.1f} MB  (target <= 300 MB) "
          f"{verdict(idle_rss <= 300)}")  # fmt: skip
    print(f"  {'GetStatus reply':50} {status_size / 1024:6.1f} KiB (target <= 64 KiB) "
          f"{verdict(status_size <= 64 * 1024)}")  # fmt: skip
    print(f"  {'upgrade: restart until every tenant is active':50} {elapsed:6.1f} s; "
          f"{len(reactivations)} reactivations answered")  # fmt: skip
    print(f"  {'ideal (tenants x latency / 16)':50} {ideal:6.1f} s   ratio {elapsed / ideal:5.2f}x "
          f"(target <= 1.15) {verdict(elapsed / ideal <= 1.15)}")  # fmt: skip
    per_tenant = cpu_used / count * 1000
    print(f"  {'daemon CPU during the upgrade run':50} {cpu_used:6.1f} s   ({per_tenant:.2f} ms per tenant, "
          f"target <= 0.6) {verdict(per_tenant <= 0.6)}")  # fmt: skip
    print(f"  {'RSS after the run / peak':50} {rss_after:6.1f} / {hwm:.1f} MB")
    print()
    print(f"  control socket latency, ms {'':23} {'p50':>7} {'p99':>7} {'max':>7} {'samples':>8}")
    targets = {"GetIdentity": 5.0, "GetStatus": 10.0}
    for label, samples in (("idle", idle_samples), ("during the upgrade", run_samples)):
        for method in ("GetIdentity", "GetStatus"):
            values = samples[method]
            p99 = percentile(values, 99)
            mark = (
                ""
                if label == "idle"
                else f"  (target p99 <= {targets[method]:g} ms) {verdict(p99 <= targets[method])}"
            )
            print(f"  {method + ', ' + label:49} {statistics.median(values):7.2f} {p99:7.2f} "
                  f"{max(values):7.2f} {len(values):8d}{mark}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
