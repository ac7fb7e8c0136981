"""One tenant check over 10,000 tenants against the reference portal with 20 ms latency.

Set-up (not timed): the portal is seeded with 10,000 tenants (one key and one
order each, `PortalDB.seed_tenants`) and each is activated for this node's
computer ID through the portal's own service code, in-process, with one-day
licenses; the licenses are installed into the daemon's store before its first
start, so every tenant is `expiring` and the check selects them all. The portal
then serves with `--latency 20` (30-day licenses), the daemon starts, and the
take-over's portal check (one GET per tenant) is let finish.

Measured:

- the wall time of one `paragon-licensed ctl tenants check --json`, against the
  ideal 10,000 x 20 ms / 16 = 12.5 s (target ratio <= 1.1), and against a
  baseline measured in the same run: a plain client (16 threads, keep-alive
  sessions) sending the same 10,000 reactivations straight to the portal;
- the daemon's RSS (VmRSS) before and after the run (target growth <= 50 MB);
- the control socket's latency for GetStatus and GetIdentity, sampled
  continuously (one round every --pause seconds, each method on its own
  connection) by a separate process during the run, next to the same sampling
  while the daemon is idle (target p99 during the run: GetStatus <= 10 ms,
  GetIdentity <= 5 ms);
- the daemon's CPU per tenant during the run (target <= 0.6 ms).

Numbers are printed even when a target is missed (marked MISSED); the script
exits 0.

    .venv/bin/python bench/tenant_check.py [--tenants 10000] [--latency 20] [--pause 0.05] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DAEMON, DaemonProcess
from support.portal import PortalProcess
from support.tenant_check import MANUAL_ONLY, install_many, prepare_store
from support.tenant_check import activate_in_portal as shared_activate_in_portal

from paragon_licensed import licensefile as lf

CONCURRENCY = 16
BUILD = "3.2.1"


# -- the sampler: a separate process calling the control socket while the check runs


def sampler(path: str, pause: float) -> int:
    """Call GetStatus and GetIdentity in turn, each on its own connection, until stdin says stop;
    then print {"GetStatus": [ms...], "GetIdentity": [ms...], "bytes": {method: last reply size}}."""
    conns = {m: _connect(path) for m in ("GetStatus", "GetIdentity")}
    buffers = dict.fromkeys(conns, b"")
    samples: dict[str, list[float]] = {m: [] for m in conns}
    sizes = dict.fromkeys(conns, 0)
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:
        for method, sock in conns.items():
            started = time.perf_counter()
            sock.sendall(json.dumps({"method": f"io.paragon.License.{method}"}).encode() + b"\0")
            while b"\0" not in buffers[method]:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("the daemon closed the connection")
                buffers[method] += chunk
            reply, _, buffers[method] = buffers[method].partition(b"\0")
            samples[method].append((time.perf_counter() - started) * 1000)
            sizes[method] = len(reply)
            if b'"error"' in reply[:200]:
                raise RuntimeError(reply[:300].decode(errors="replace"))
        time.sleep(pause)
    print(json.dumps({**samples, "bytes": sizes}), flush=True)
    return 0


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(path)
    return sock


class Sampling:
    """The sampler process, started and stopped by the benchmark."""

    def __init__(self, path: str, pause: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--sampler", path, "--pause", str(pause)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the sampler did not start")

    def stop(self) -> dict[str, Any]:
        out, _ = self.proc.communicate("stop\n", timeout=60)
        samples: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return samples


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# -- set-up


def activate_in_portal(
    portal: PortalProcess, pairs: list[tuple[str, str]], computer_id: str
) -> list[tuple[str, lf.Payload]]:
    """Activate every tenant through the portal's service code (one-day licenses); their licenses."""
    return shared_activate_in_portal(portal, pairs, [computer_id], license_days=1)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def portal_baseline(portal: PortalProcess, pairs: list[tuple[str, str]], computer_id: str) -> float:
    """Seconds for a plain 16-thread client to reactivate every tenant straight at the portal."""
    import requests

    local = threading.local()

    def one(tenant: str) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        body = {"tenant_id": tenant, "computer_ids": [computer_id], "build": BUILD,
                "request_id": str(uuid.uuid4())}  # fmt: skip
        response = session.post(portal.url + "/reactivations", json=body, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"{tenant}: {response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, [tenant for tenant, _ in pairs]))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=20.0, help="the portal's --latency, in ms")
    parser.add_argument("--no-baseline", action="store_true", help="skip the direct-client baseline")
    parser.add_argument(
        "--pause", type=float, default=0.05, help="seconds between two rounds of control calls (0.05)"
    )
    parser.add_argument("--sampler", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sampler:
        return sampler(args.sampler, args.pause)

    count = args.tenants
    with tempfile.TemporaryDirectory(prefix="bench-tenant-check-") as tmp:
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
            pairs = portal.db.seed_tenants(
                count, valid_until=(datetime.now(UTC) + timedelta(days=365)).date()
            )
            ours = prepare_store(daemon)
            licenses = activate_in_portal(portal, pairs, ours)
            install_many(daemon, licenses)
            portal.start(["--latency", f"{args.latency:g}"])
            daemon.update_config({"portal": {"url": portal.url, "public_keys": [portal.public_keys_glob]}})
            daemon.start(timeout=120)
            print(
                f"set-up: {count} tenants seeded, activated and installed in {time.perf_counter() - t0:.1f} s"
            )

            # Let the take-over's portal check (bench/takeover_restore_check.py) finish before measuring.
            t0 = time.perf_counter()
            deadline = time.monotonic() + 600
            while "current licenses checked on the portal" not in daemon.log():
                if time.monotonic() > deadline:
                    raise TimeoutError("the take-over's portal check did not finish")
                time.sleep(0.5)
            while daemon.status()["activity"] != "idle":
                time.sleep(0.2)
            states = {s for s, n in daemon.status()["tenant_states"].items() if n}
            queries = len(portal.requests(path="/api/v1/licenses/current/query"))
            print(f"take-over check: {count} tenants in {queries} queries, {time.perf_counter() - t0:.1f} s; "
                  f"states {sorted(states)}")  # fmt: skip

            assert daemon.proc is not None
            pid = daemon.proc.pid
            idle = Sampling(daemon.socket, args.pause)
            time.sleep(3)
            idle_samples = idle.stop()

            rss_before, _ = rss_mb(pid)
            cpu_before = cpu_seconds(pid)
            before_requests = len(portal.requests())
            busy = Sampling(daemon.socket, args.pause)
            started = time.perf_counter()
            result = subprocess.run(
                [DAEMON, "ctl", "--socket", daemon.socket, "tenants", "check", "--json"],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            elapsed = time.perf_counter() - started
            run_samples = busy.stop()
            rss_after, hwm = rss_mb(pid)
            cpu_used = cpu_seconds(pid) - cpu_before
            if result.returncode not in (0, 1):
                raise RuntimeError(f"tenants check exited {result.returncode}: {result.stderr}")
            results = json.loads(result.stdout)["results"]
            outcomes: dict[str, int] = {}
            for r in results:
                outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
            portal_calls = portal.requests(path="/api/v1/reactivations")
            processed = sum(
                1 for r in portal_calls if r.status == 200 and not r.replay and r.id > before_requests
            )

            baseline = None if args.no_baseline else portal_baseline(portal, pairs, ours)
        finally:
            daemon.stop(timeout=30)
            daemon.kill()
            portal.close()

    ideal = count * args.latency / 1000 / CONCURRENCY

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print()
    print(
        f"tenant check over {count} tenants, portal latency {args.latency:g} ms, {CONCURRENCY} calls at once"
    )
    print(f"  outcomes: {outcomes}; portal reactivations processed: {processed}")
    print(f"  {'run time (ctl tenants check)':44} {elapsed:8.1f} s")
    print(f"  {'ideal (tenants x latency / 16)':44} {ideal:8.1f} s   ratio {elapsed / ideal:5.2f}x "
          f"(target <= 1.1) {verdict(elapsed / ideal <= 1.1)}")  # fmt: skip
    if baseline is not None:
        print(
            f"  {'baseline: direct client, 16 threads':44} {baseline:8.1f} s"
            f"   ratio {elapsed / baseline:5.2f}x"
        )
    print(
        f"  {'daemon CPU during the run':44} {cpu_used:8.1f} s"
        f"   ({cpu_used / count * 1000:.2f} ms per tenant, target <= 0.6) "
        f"{verdict(cpu_used / count * 1000 <= 0.6)}"
    )
    growth = rss_after - rss_before
    print(f"  {'daemon RSS before / after / peak':44} {rss_before:6.1f} / {rss_after:.1f} / {hwm:.1f} MB")
    print(f"  {'RSS growth during the run':44} {growth:8.1f} MB  (target <= 50 MB) {verdict(growth <= 50)}")
    print()
    print(f"  control socket latency, ms {'':17} {'p50':>7} {'p99':>7} {'max':>7} {'samples':>8}")
    for label, samples in (("idle", idle_samples), ("during the run", run_samples)):
        for method in ("GetStatus", "GetIdentity"):
            values = samples[method]
            p99 = percentile(values, 99)
            target = 10.0 if method == "GetStatus" else 5.0
            mark = "" if label == "idle" else f"  (target p99 <= {target:g} ms) {verdict(p99 <= target)}"
            print(f"  {method + ', ' + label:43} {statistics.median(values):7.2f} {p99:7.2f} "
                  f"{max(values):7.2f} {len(values):8d}{mark}")  # fmt: skip
    sizes = run_samples["bytes"]
    print(
        f"  (one round of calls every {args.pause:g} s; reply sizes: GetStatus "
        f"{sizes['GetStatus'] / 1024:.0f} KiB, GetIdentity {sizes['GetIdentity']} B)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
