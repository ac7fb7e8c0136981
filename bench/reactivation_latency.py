"""Figure 3b: end-to-end online reactivation latency against the local reference portal.

Starts `paragon-license-portal serve` and the installed daemon (single node,
SQLite store) in a temporary folder, activates once, then measures in
interleaved rounds (the median of each):

- `paragon-licensed ctl license reactivate` as a process (wall time, ctl start-up
  included: what an administrator waits for);
- a raw varlink `Reactivate` call on an open connection, without and with "more"
  (what a program waits for: the job hand-off to the coordinator, the portal call,
  verification, the fenced install and its audit entry); `ctl status` is timed too,
  to show how much of ctl's figure is its own start-up;
- the baseline, the portal's own handling: a direct `requests.post` to
  /reactivations with the same body (keep-alive session), and the handling time the
  portal recorded for it in its request log.

The ratios say what the daemon adds on top of the portal round trip.

    .venv/bin/python bench/reactivation_latency.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DAEMON, DaemonProcess
from support.portal import PortalProcess

TENANT = "default"


class Varlink:
    """One raw varlink connection: NUL-terminated JSON, one call at a time."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(path)
        self.buffer = b""

    def call(self, method: str, parameters: dict[str, Any], more: bool = False) -> dict[str, Any]:
        """The final reply (after every streamed one, with ``more``)."""
        message: dict[str, Any] = {"method": method, "parameters": parameters}
        if more:
            message["more"] = True
        self.sock.sendall(json.dumps(message).encode() + b"\0")
        reply = self._reply()
        while reply.get("continues"):
            reply = self._reply()
        return reply

    def _reply(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        reply: dict[str, Any] = json.loads(raw)
        if "error" in reply:
            raise RuntimeError(f"varlink error: {reply}")
        return reply

    def close(self) -> None:
        self.sock.close()


def ms(seconds: float) -> float:
    return seconds * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-reactivation-") as tmp:
        root = Path(tmp)
        portal = PortalProcess(root / "portal")
        node: DaemonProcess | None = None
        try:
            portal.start()
            portal.add_order("KEY-BENCH", TENANT, product="Paragon Print", quantity=10)
            node = DaemonProcess(
                root,
                "node-1",
                {
                    "portal": {"url": portal.url, "public_keys": [portal.public_keys_glob]},
                    "tenants": [{"id": TENANT, "admin_email": "admin@example.com"}],
                    "tenant_check": {"splay": "1h"},
                },
            )
            node.start()
            node.wait_until(lambda: node is not None and node.status()["store_available"], timeout=30)
            node.ctl("license", "activate", "--key", "KEY-BENCH", check=True)
            ids = node.ctl_json("license", "info")["computer_ids"]
            return measure(args.runs, portal, node, ids)
        finally:
            if node is not None:
                node.stop()
            portal.close()


def measure(runs: int, portal: PortalProcess, node: DaemonProcess, ids: list[str]) -> int:
    session = requests.Session()
    url = portal.url + "/reactivations"
    varlink = Varlink(node.socket)
    ctl = [DAEMON, "ctl", "--socket", node.socket, "license", "reactivate"]

    def direct() -> float:
        body = {"tenant_id": TENANT, "computer_ids": ids, "build": "3.2.1", "request_id": str(uuid.uuid4())}
        started = time.perf_counter()
        response = session.post(url, json=body, timeout=30)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        return elapsed

    def via_ctl() -> float:
        started = time.perf_counter()
        subprocess.run(ctl, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started

    def via_varlink(more: bool = False) -> float:
        started = time.perf_counter()
        varlink.call("io.paragon.License.Reactivate", {"mode": "online"}, more=more)
        return time.perf_counter() - started

    def ctl_status() -> float:
        started = time.perf_counter()
        subprocess.run([*ctl[:4], "status"], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    samples: dict[str, list[float]] = {"direct": [], "ctl": [], "varlink": [], "more": [], "status": []}
    for _ in range(2):  # warm-up: connections, caches, the portal's first requests
        direct(), via_ctl(), via_varlink(), ctl_status()
    first_logged = len(portal.requests(path="/api/v1/reactivations"))
    direct_ids: set[str] = set()
    for _ in range(runs):
        before = {r.request_id for r in portal.requests(path="/api/v1/reactivations")}
        samples["direct"].append(direct())
        after = portal.requests(path="/api/v1/reactivations")
        direct_ids |= {r.request_id or "" for r in after} - {i for i in before if i}
        samples["ctl"].append(via_ctl())
        samples["varlink"].append(via_varlink())
        samples["more"].append(via_varlink(more=True))
        samples["status"].append(ctl_status())
    varlink.close()

    logged = portal.requests(path="/api/v1/reactivations")[first_logged:]
    handling = [r.handling_ms for r in logged if r.request_id in direct_ids]
    handling_daemon = [r.handling_ms for r in logged if r.request_id not in direct_ids]
    med = {name: ms(statistics.median(values)) for name, values in samples.items()}
    base = med["direct"]

    print(f"online reactivation, {runs} runs each (interleaved), local portal on {portal.url}")
    print(f"{'what':58} {'median ms':>10} {'vs direct':>10}")
    rows = [
        ("direct requests.post /reactivations (baseline)", med["direct"]),
        ("  of which the portal's recorded handling", statistics.median(handling)),
        ("raw varlink Reactivate (daemon end to end)", med["varlink"]),
        ("raw varlink Reactivate with more (steps streamed)", med["more"]),
        ("ctl license reactivate (process, start-up included)", med["ctl"]),
        ("  for scale: ctl status (process start-up, no portal)", med["status"]),
        ("  portal handling of the daemon's calls", statistics.median(handling_daemon)),
    ]
    for label, value in rows:
        print(f"{label:58} {value:10.1f} {value / base:9.2f}x")
    print(
        f"p90: direct {ms(sorted(samples['direct'])[int(runs * 0.9) - 1]):.1f} ms, "
        f"varlink {ms(sorted(samples['varlink'])[int(runs * 0.9) - 1]):.1f} ms, "
        f"ctl {ms(sorted(samples['ctl'])[int(runs * 0.9) - 1]):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
