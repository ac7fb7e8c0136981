"""Under attack: the daemon's peak memory, and how root's `ctl status` fares, against a quiet baseline.

Each attack of tests/test_hostile_e2e.py is made again, and measured:

- idle: no attack (the baseline, same run);
- watch: an unprivileged user holds 300 connections with a Watch each;
- flood: two unprivileged processes open and close connections in a loop (one ctl status at
  a time, then ten at once: with the flooders' threads they ask more than the cores have);
- stuffed: an unprivileged user writes small messages into an open Watch until cut off;
- endless: the portal answers 200 with an endless body;
- drip: the portal answers one byte every 0.5 s; meanwhile another job (an import) runs.

For each: the daemon's peak RSS (VmHWM; target <= 100 MB), root's `ctl status`
success rate (target 100%) and p99 latency (target <= 200 ms; also as a ratio to the
idle baseline), the p99 of a GetStatus call on a new connection without a process
start (the daemon's own share of that latency), and for the drip, how long the other
job took (target: it never waits on the slow one; compared with the same import on a
quiet daemon).

    .venv/bin/python bench/hostile.py [--calls 50]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.attacks import flood, hold_connections, stuff_watch
from support.daemon import DAEMON, DaemonProcess
from support.hostile_portal import HostilePortal
from support.portal import PortalProcess
from support.unprivileged import Nobody, public_dir

WATCH = b'{"method": "io.paragon.License.Watch", "parameters": {}, "more": true}\0'
MIB = 1024 * 1024


def peak_rss(daemon: DaemonProcess) -> float:
    assert daemon.proc is not None
    text = Path(f"/proc/{daemon.proc.pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) * 1024 / MIB if match else float("nan")


def ctl_status(daemon: DaemonProcess) -> tuple[bool, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [DAEMON, "ctl", "--socket", daemon.socket, "status", "--json"], capture_output=True, check=False
    )
    return result.returncode == 0, time.perf_counter() - started


def raw_status(daemon: DaemonProcess) -> float:
    """One GetStatus on a new connection, without a process start: the daemon's own latency."""
    started = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(daemon.socket)  # blocking, as ctl connects: a full listen queue is waited out
        sock.settimeout(30)
        sock.sendall(b'{"method": "io.paragon.License.GetStatus", "parameters": {}}\0')
        reply = b""
        while b"\0" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return time.perf_counter() - started


def statuses(daemon: DaemonProcess, calls: int, parallel: int = 1) -> tuple[float, float]:
    """(success rate, p99 seconds) of root's `ctl status`."""
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda _: ctl_status(daemon), range(calls)))
    times = sorted(t for _, t in results)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return sum(ok for ok, _ in results) / len(results), p99


def under(
    attacks: list[Callable[..., Any]], daemon: DaemonProcess, calls: int, parallel: int
) -> dict[str, Any]:
    attackers = [Nobody(attack) for attack in attacks]
    try:
        reports = [attacker.report() for attacker in attackers]
        rate, p99 = statuses(daemon, calls, parallel)
        raw = sorted(raw_status(daemon) for _ in range(calls))
    finally:
        for attacker in attackers:
            attacker.stop()
    raw_p99 = raw[min(len(raw) - 1, int(len(raw) * 0.99))]
    return {"rate": rate, "p99": p99, "raw": raw_p99, "rss": peak_rss(daemon), "reports": reports}


def reload_portal(daemon: DaemonProcess, url: str, **keys: Any) -> None:
    reloads = daemon.log().count("configuration reloaded")
    daemon.update_config({"portal": {"url": url, **keys}})
    daemon.signal(signal.SIGHUP)
    daemon.wait_until(lambda: daemon.log().count("configuration reloaded") > reloads, what="reload")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="pl-bench-") as tmp, public_dir() as run:
        portal = PortalProcess(Path(tmp) / "portal")
        portal.start()
        portal.add_order("KEY-B", "default")
        portal.add_order("KEY-O", "other")
        socket_path = str(run / "io.paragon.License")
        config = {
            "tenants": [{"id": "default"}, {"id": "other"}],
            "control": {"socket": socket_path},
            "portal": {"url": portal.url, "public_keys": [portal.public_keys_glob], "max_attempts": 2},
            "tenant_check": {"splay": "1h"},
        }
        daemon = DaemonProcess(Path(tmp) / "nodes", config=config, socket=socket_path)
        daemon.start()
        daemon.ctl("license", "activate", "--tenant", "default", "--key", "KEY-B", check=True)
        daemon.ctl("license", "activate", "--tenant", "other", "--key", "KEY-O", check=True)
        try:
            rate, p99 = statuses(daemon, args.calls)
            raw = sorted(raw_status(daemon) for _ in range(args.calls))[-1]
            rows.append(("idle", {"rate": rate, "p99": p99, "raw": raw, "rss": peak_rss(daemon)}))
            rows.append(("watch", under([hold_connections(socket_path, 300, WATCH)], daemon, args.calls, 1)))
            rows.append(("flood", under([flood(socket_path), flood(socket_path)], daemon, args.calls, 1)))
            flood10 = under([flood(socket_path), flood(socket_path)], daemon, args.calls, 10)
            flood10["note"] = "10 ctl status at once, on 2 cores with the flooders"
            rows.append(("flood x10", flood10))
            stuffed = under([stuff_watch(socket_path)], daemon, args.calls, 1)
            stuffed["note"] = f"cut off after {json.loads(stuffed['reports'][0])['sent'] / MIB:.1f} MiB"
            rows.append(("stuffed", stuffed))
            rows.append(("endless", endless(daemon, portal, args.calls)))
            rows.append(("drip", drip(daemon, portal, args.calls, Path(tmp))))
        finally:
            daemon.stop()
            portal.close()
    baseline = rows[0][1]["p99"]
    print(
        f"{'attack':<9} {'peak RSS':>9} {'status ok':>10} {'ctl p99':>8} {'/idle':>6} {'call p99':>9}  note"
    )
    for name, row in rows:
        missed = row["rss"] > 100 or row["rate"] < 1 or row["p99"] > 0.2
        call = f"{row['raw'] * 1000:>6.1f} ms" if "raw" in row else f"{'-':>9}"
        print(
            f"{name:<9} {row['rss']:>6.0f} MB {row['rate'] * 100:>9.0f}% {row['p99'] * 1000:>5.0f} ms "
            f"{row['p99'] / baseline:>5.2f}x {call}  {row.get('note', '')}{'  MISSED' if missed else ''}"
        )
    return 0


def endless(daemon: DaemonProcess, portal: PortalProcess, calls: int) -> dict[str, Any]:
    bad = HostilePortal("huge")
    try:
        reload_portal(daemon, bad.url)
        daemon.ctl("license", "reactivate", "--tenant", "default")
        rate, p99 = statuses(daemon, calls)
        note = f"portal sent {bad.sent / MIB:.1f} MiB in {len(bad.seen)} answers"
    finally:
        reload_portal(daemon, portal.url)
        bad.close()
    return {"rate": rate, "p99": p99, "rss": peak_rss(daemon), "note": note}


def drip(daemon: DaemonProcess, portal: PortalProcess, calls: int, tmp: Path) -> dict[str, Any]:
    document = tmp / "other.lic"
    info = daemon.ctl_json("license", "info", "--tenant", "other")
    document.write_text(_document(daemon, "other", info["license_id"]))
    quiet = _timed_import(daemon, document)
    slow_portal = HostilePortal("drip", drip_interval=0.5)
    try:
        reload_portal(daemon, slow_portal.url, timeout="30s")
        slow = subprocess.Popen(
            [DAEMON, "ctl", "--socket", daemon.socket, "license", "reactivate", "--tenant", "default"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        daemon.wait_until(lambda: bool(slow_portal.seen), what="the dripping portal asked")
        busy = _timed_import(daemon, document)
        rate, p99 = statuses(daemon, calls)
        slow.kill()
        slow.wait()
    finally:
        reload_portal(daemon, portal.url, timeout="10s")
        slow_portal.close()
    note = (
        f"another job took {busy * 1000:.0f} ms ({busy / quiet:.2f}x a quiet daemon's {quiet * 1000:.0f} ms)"
    )
    return {"rate": rate, "p99": p99, "rss": peak_rss(daemon), "note": note}


def _timed_import(daemon: DaemonProcess, document: Path) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        daemon.ctl("license", "import", str(document), check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _document(daemon: DaemonProcess, tenant: str, license_id: str) -> str:
    from support.tenant_check import read

    def fetch(tx: Any) -> str:
        return str(
            tx.scalar(
                "SELECT document FROM licenses WHERE tenant_id = ? AND license_id = ?", (tenant, license_id)
            )
        )

    return read(daemon, fetch)


if __name__ == "__main__":
    sys.exit(main())
