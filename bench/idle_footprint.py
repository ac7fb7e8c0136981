"""A lean idle daemon and a fast ctl: idle RSS of a 1-tenant node; `ctl status` against `python -c pass`.

Memory. A daemon with one tenant on SQLite (no portal, mail, metrics or D-Bus: the
test harness's defaults) is started and left alone until its start-up duties ran
and `--idle` seconds more; then VmRSS and VmHWM from /proc/PID/status (target
VmRSS <= 32 MB), its threads, and which of the libraries it should not need it has
loaded (its sys.modules, read from inside the process: tests/support/modules.py).
For comparison, in the same run: the floor, an interpreter that imported what any
daemon on this stack needs (asyncio with anyio, msgspec, sqlite3) and nothing
else; and a licensed node (a license from the reference portal, the portal
configured), which needs cryptography to verify its license and the HTTP stack for
its take-over check; no target for it.

ctl. `paragon-licensed ctl status` against that daemon and `python -c pass`, same
interpreter, interleaved, `--runs` each: the ratio of the medians of the wall time
(target <= 2.5), and of the CPU time (user + system) each process used, which a
busy machine disturbs less.

    .venv/bin/python bench/idle_footprint.py [--idle 5] [--runs 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DAEMON, DaemonProcess
from support.modules import modules_now, wrapper
from support.portal import PortalProcess
from support.tenant_check import activate_in_portal, install_many, prepare_store

HEAVY = (
    "click",
    "cryptography",
    "dbus_fast",
    "email",
    "http.client",
    "prometheus_client",
    "psycopg",
    "requests",
    "smtplib",
    "urllib.request",
    "wsgiref",
)
FLOOR = (
    "import asyncio, sqlite3, sys, anyio, msgspec\n"
    "async def idle():\n"
    "    print('ready', flush=True)\n"
    "    await anyio.sleep(3600)\n"
    "anyio.run(idle)\n"
)


def status_of(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "Threads"):
            fields[name] = int(value.split()[0])
    return fields


def idle_node(root: Path, idle: float, portal: PortalProcess | None) -> tuple[dict[str, int], list[str]]:
    """(VmRSS/VmHWM in kB and Threads, the heavy libraries loaded) of an idle 1-tenant node."""
    daemon = DaemonProcess(root, "node-1", config={"tenants": [{"id": "default"}]})
    if portal is not None:
        portal.add_order("KEY-IDLE", "default")
        ours = prepare_store(daemon)
        install_many(daemon, activate_in_portal(portal, [("default", "KEY-IDLE")], [ours]))
        daemon.update_config({"portal": {"url": portal.url, "public_keys": [portal.public_keys_glob]}})
    dump = root / "modules.json"
    daemon.start(wrapper=wrapper(dump))
    try:
        deadline = time.monotonic() + 60
        while "tenant check finished" not in daemon.log() or daemon.status()["activity"] != "idle":
            if time.monotonic() > deadline:
                raise TimeoutError("the daemon's start-up duties did not finish")
            time.sleep(0.1)
        time.sleep(idle)
        assert daemon.proc is not None
        figures = status_of(daemon.proc.pid)
        names = modules_now(dump)
    finally:
        daemon.stop()
    heavy = sorted({h for h in HEAVY for n in names if n == h or n.startswith(h + ".")})
    return figures, heavy


def floor_rss(idle: float) -> dict[str, int]:
    proc = subprocess.Popen([sys.executable, "-c", FLOOR], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(idle)
        return status_of(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of argv."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, code, usage = os.wait4(proc.pid, 0)
    proc.returncode = code
    if code != 0:
        raise RuntimeError(f"{argv} failed: {code}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def ctl_times(runs: int, root: Path) -> dict[str, list[tuple[float, float]]]:
    daemon = DaemonProcess(root, "node-ctl", config={"tenants": [{"id": "default"}]})
    daemon.start()
    try:
        commands = {
            "bare": [sys.executable, "-c", "pass"],
            "ctl": [DAEMON, "ctl", "--socket", daemon.socket, "status"],
        }
        for _ in range(3):  # warm the page cache
            for argv in commands.values():
                timed(argv)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for i in range(runs):
            order = list(commands.items()) if i % 2 == 0 else list(commands.items())[::-1]
            for name, argv in order:
                times[name].append(timed(argv))
    finally:
        daemon.stop()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading RSS")
    parser.add_argument("--runs", type=int, default=60, help="runs of ctl status and python -c pass")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        root = Path(tmp)
        plain, plain_heavy = idle_node(root / "plain", args.idle, None)
        with PortalProcess(root / "portal") as portal:
            portal.start()
            licensed, licensed_heavy = idle_node(root / "licensed", args.idle, portal)
        floor = floor_rss(args.idle)
        times = ctl_times(args.runs, root / "ctl")

    print(f"idle footprint: interpreter {sys.executable}, {args.idle:g} s idle after the start-up duties")
    print()
    print(f"{'process':58}{'VmRSS MB':>9}{'peak MB':>9}{'threads':>8}  {'x floor':>7}")
    rows = (
        ("floor: asyncio, anyio, msgspec, sqlite3, nothing else", floor),
        ("1-tenant node, SQLite, no portal/mail/metrics/D-Bus", plain),
        ("1 licensed tenant, portal configured (no target)", licensed),
    )
    for label, figures in rows:
        print(
            f"  {label:56}{figures['VmRSS'] / 1024:>9.1f}{figures['VmHWM'] / 1024:>9.1f}"
            f"{figures['Threads']:>8}  {figures['VmRSS'] / floor['VmRSS']:>7.2f}"
        )
    print(f"  heavy libraries loaded, 1-tenant node: {', '.join(plain_heavy) or 'none'}")
    print(f"  heavy libraries loaded, licensed node: {', '.join(licensed_heavy) or 'none'}")
    rss = plain["VmRSS"] / 1024
    print()
    print(f"idle RSS, 1 tenant: {rss:.1f} MB   target <= 32 MB  {'OK' if rss <= 32 else 'MISSED'}")

    bare_wall = statistics.median(t[0] for t in times["bare"])
    ctl_wall = statistics.median(t[0] for t in times["ctl"])
    bare_cpu = statistics.median(t[1] for t in times["bare"])
    ctl_cpu = statistics.median(t[1] for t in times["ctl"])
    ratio = ctl_wall / bare_wall
    print()
    heading = f"command, {args.runs} interleaved runs each"
    print(f"{heading:44}{'wall ms':>9}{'min':>7}{'CPU ms':>9}")
    for label, name in (("python -c pass", "bare"), ("paragon-licensed ctl status", "ctl")):
        wall = [t[0] * 1000 for t in times[name]]
        cpu = [t[1] * 1000 for t in times[name]]
        print(f"  {label:42}{statistics.median(wall):>9.1f}{min(wall):>7.1f}{statistics.median(cpu):>9.1f}")
    print()
    verdict = "OK" if ratio <= 2.5 else "MISSED"
    print(f"ctl status / python -c pass, wall: {ratio:.2f}   target <= 2.5  {verdict}")
    print(f"ctl status / python -c pass, CPU:  {ctl_cpu / bare_cpu:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
