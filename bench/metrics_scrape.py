"""The /metrics page at 1, 10,000 and 100,000 tenants.

For each tenant count, one daemon (the installed `paragon-licensed run`, the
product's cluster timings) with that many licensed tenants in its store (one
license issued by the portal's service code, the others crafted from it and
signed with the portal's key; 1 in 100 ends within 20 days, so "attention" has
some), and for each `metrics.tenant_series` (switched by a reload): the scrape's
wall time (median of --scrapes), the reply's size and its number of samples.

The event loop's cost: GetIdentity over the control socket is sampled
back to back by a separate process (its latency is the event loop's response
time), first with no scrape (the baseline), then while scrapes run back to
back. It prints p50/p99/max of both and the ratio during/baseline; the added
p99 (during - baseline) is the figure against the 5 ms target.

    .venv/bin/python bench/metrics_scrape.py [--tenants 1,10000,100000] [--modes all,attention,none]
        [--scrapes 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DaemonProcess
from support.licenses import craft
from support.portal import PortalProcess
from support.prometheus import free_port
from support.tenant_check import MANUAL_ONLY, install_many, prepare_store

from paragon_licensed import licensefile as lf
from paragon_licensed.portal.db import PortalDB
from paragon_licensed.portal.requestlog import RequestRecord
from paragon_licensed.portal.service import PortalService

MODES = ("all", "attention", "none")
CLUSTER = {"heartbeat": "2s", "node_timeout": "10s", "lease": "15s", "renew": "5s", "renew_deadline": "10s"}


def sampler(path: str, seconds: float) -> int:
    """Call GetIdentity back to back for `seconds`; print the latencies (ms) as JSON."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    request = json.dumps({"method": "io.paragon.License.GetIdentity", "parameters": {}}).encode() + b"\0"
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        sock.sendall(request)
        reply = b""
        while not reply.endswith(b"\0"):
            reply += sock.recv(65536)
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.002)
    print(json.dumps(latencies))
    return 0


def sample(path: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--sampler", path, "--seconds", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )


def summary(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    return (
        statistics.median(ordered),
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        ordered[-1],
    )


def scrape(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as reply:
        body: bytes = reply.read()
    return time.perf_counter() - started, body


def first_license(portal: PortalProcess, computer_id: str) -> tuple[str, lf.Payload]:
    """One tenant activated through the portal's service code (as bench/tenant_check.py does)."""
    ((tenant, activation_key),) = portal.db.seed_tenants(
        1, valid_until=(datetime.now(UTC) + timedelta(days=365)).date()
    )
    key = lf.load_private_key(portal.key_path)
    db = PortalDB(portal.db_path)
    try:
        body = {
            "activation_key": activation_key,
            "tenant_id": tenant,
            "computer_ids": [computer_id],
            "build": "3.2.1",
            "request_id": str(uuid.uuid4()),
        }
        record = RequestRecord(method="POST", path="/api/v1/activations", source="offline")
        outcome = PortalService(db, key, license_days=365).call(
            "activation", body, record, time.perf_counter()
        )
    finally:
        db.close()
    document = json.loads(outcome.body)["license"]
    return document, lf.inspect(document, portal.public_keys())


def licenses(portal: PortalProcess, computer_id: str, count: int) -> list[tuple[str, lf.Payload]]:
    document, base = first_license(portal, computer_id)
    key = lf.load_private_key(portal.key_path)
    keys = portal.public_keys()
    made = [(document, base)]
    now = datetime.now(UTC)
    for i in range(1, count):
        days = 20 if i % 100 == 0 else 200
        text = craft(
            base, key, tenant_id=f"tenant-{i:06d}", valid_until=lf.utc_seconds(now + timedelta(days=days))
        )
        made.append((text, lf.inspect(text, keys)))
    return made


def measure(count: int, scrapes: int, seconds: float, root: Path, modes: tuple[str, ...] = MODES) -> None:
    portal = PortalProcess(root / "portal")
    listen = f"127.0.0.1:{free_port()}"
    config = {
        "tenant_check": dict(MANUAL_ONLY),
        "cluster": CLUSTER,
        "metrics": {"listen": listen, "tenant_series": "all"},
        "portal": {"public_keys": [portal.public_keys_glob]},
    }
    daemon = DaemonProcess(root, "node-1", config=config)
    started = time.perf_counter()
    install_many(daemon, licenses(portal, prepare_store(daemon), count))
    daemon.start(timeout=600)
    # READY comes before a large store is read in full: measure once every tenant is in.
    daemon.wait_until(
        lambda: daemon.status()["tenant_total"] >= count, timeout=600, what="every tenant loaded"
    )
    print(f"\n{count} tenants (set-up {time.perf_counter() - started:.0f} s)")
    url = f"http://{listen}/metrics"
    socket_path = daemon.config["control"]["socket"]
    try:
        for mode in modes:
            reloads = daemon.log().count("configuration reloaded")
            daemon.update_config({"metrics": {"tenant_series": mode}})
            daemon.signal(signal.SIGHUP)
            daemon.wait_until(
                lambda n=reloads: daemon.log().count("configuration reloaded") > n,
                what=f"tenant_series {mode}",
            )
            times, body = [], b""
            for _ in range(scrapes):
                took, body = scrape(url)
                times.append(took)
            samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            idle = sample(socket_path, seconds)
            idle_out = idle.communicate()[0]
            during = sample(socket_path, seconds)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                scrape(url)
            during_out = during.communicate()[0]
            base, busy = summary(json.loads(idle_out)), summary(json.loads(during_out))
            verdict = "ok" if busy[1] - base[1] <= 5.0 else "MISSED"
            size = f"reply {len(body) / 1024:9.1f} KiB {samples:8d} samples"
            idle_text = "/".join(f"{v:.2f}" for v in base)
            busy_text = "/".join(f"{v:.2f}" for v in busy)
            print(
                f"  {mode:9} scrape {statistics.median(times) * 1000:8.1f} ms  {size} | GetIdentity "
                f"p50/p99/max idle {idle_text} ms, scraping {busy_text} ms, "
                f"p99 ratio {busy[1] / base[1]:.2f}, "
                f"added p99 {busy[1] - base[1]:+.2f} ms (target <= 5) {verdict}"
            )
    finally:
        daemon.stop(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", default="1,10000,100000")
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES), help="the tenant_series values to measure")
    parser.add_argument("--seconds", type=float, default=3.0, help="sampling time, idle and scraping")
    parser.add_argument("--sampler", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sampler:
        return sampler(args.sampler, args.seconds)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; scrape = one GET of /metrics, no gzip")
    for count in (int(n) for n in args.tenants.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
            measure(count, args.scrapes, args.seconds, Path(tmp), tuple(args.modes.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
