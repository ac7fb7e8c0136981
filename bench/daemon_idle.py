"""Figure 3: how fast the daemon is ready, and how much memory it holds while idle.

Time to ready is measured as systemd sees it: from spawning `paragon-licensed
run` to its READY=1 datagram on NOTIFY_SOCKET (target <= 0.5 s), for a first
start (a new store to migrate) and for a restart (the store exists). Idle RSS
is VmRSS from /proc after a few seconds with no client (target <= 40 MB).

    .venv/bin/python bench/daemon_idle.py [--runs 5] [--idle 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DaemonProcess

CONFIG = {"tenants": [{"id": "default"}, {"id": "acme"}]}


def time_to_ready(daemon: DaemonProcess) -> float:
    started = time.perf_counter()
    daemon.start()
    return time.perf_counter() - started


def vm(pid: int, field: str) -> float:
    """A VmXXX line of /proc/PID/status, in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading RSS")
    args = parser.parse_args()

    first: list[float] = []
    again: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pl-bench-") as tmp:
        for run in range(args.runs):
            daemon = DaemonProcess(Path(tmp) / f"run-{run}", config=CONFIG)
            first.append(time_to_ready(daemon))
            daemon.stop()
            again.append(time_to_ready(daemon))
            if run < args.runs - 1:
                daemon.stop()
        assert daemon.proc is not None
        time.sleep(args.idle)
        pid = daemon.proc.pid
        rss, hwm = vm(pid, "VmRSS"), vm(pid, "VmHWM")
        threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
        reported = re.findall(r"INFO ready .* seconds=([\d.]+)", daemon.log())
        daemon.stop()

    print(f"daemon start-up and idle memory: {args.runs} runs, interpreter {sys.executable}")
    print()
    print(f"{'spawn to READY=1':<36}{'median s':>10}{'min s':>8}{'max s':>8}")
    for label, times in (("  first start (new store)", first), ("  restart (existing store)", again)):
        print(f"{label:<36}{statistics.median(times):>10.3f}{min(times):>8.3f}{max(times):>8.3f}")
    if reported:
        print(f"{'  of which inside the daemon (log)':<36}{statistics.median(map(float, reported)):>10.3f}")
    ready = statistics.median(first + again)
    print()
    print(
        f"READY=1 median of all starts: {ready:.3f} s   target <= 0.5 s  {'OK' if ready <= 0.5 else 'MISSED'}"
    )
    print(
        f"idle RSS after {args.idle:g} s: {rss:.1f} MB (peak {hwm:.1f} MB, {threads} threads)"
        f"   target <= 40 MB  {'OK' if rss <= 40 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
