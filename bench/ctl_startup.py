"""Figure 2: `paragon-licensed ctl status` wall time against `python -c pass`, same interpreter.

Monitoring agents run ctl every few seconds, so its cost over a bare interpreter
start is what matters: runs of the two alternate, and the figure is the ratio
of the medians (target <= 3.0). It also lists what ctl imported, from
`python -X importtime`, and says whether any heavy module slipped in.

    .venv/bin/python bench/ctl_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DAEMON, DaemonProcess

# What ctl must not import on its path (docs/control.md, ARCHITECTURE.md): anything of
# the daemon, and the libraries only the daemon needs; of the interface, only its errors.
FORBIDDEN = ("anyio", "requests", "msgspec", "click", "cryptography", "dbus_fast", "psycopg")


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def import_times(socket_path: str) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module) for every module `ctl status` imports."""
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "paragon_licensed",
            "ctl",
            "--socket",
            socket_path,
            "status",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(own), int(cumulative), name.strip()))
    return rows


MODULES_AFTER_CTL = """
import contextlib, io, json, sys
from paragon_licensed.cli import main
sys.argv = ["paragon-licensed", "ctl", "--socket", sys.argv[1], "status"]
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main()
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded(code: str, *argv: str) -> set[str]:
    """sys.modules after running code; unlike -X importtime it sees what importlib.import_module loads."""
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="runs of each command")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pl-bench-") as tmp:
        daemon = DaemonProcess(Path(tmp), config={"tenants": [{"id": "default"}]})
        daemon.start()
        try:
            bare = [sys.executable, "-c", "pass"]
            ctl = [DAEMON, "ctl", "--socket", daemon.socket, "status"]
            for _ in range(3):  # warm the page cache and the .pyc files
                timed(bare)
                timed(ctl)
            times: dict[str, list[float]] = {"bare": [], "ctl": []}
            for i in range(args.runs):
                pair = [("bare", bare), ("ctl", ctl)] if i % 2 == 0 else [("ctl", ctl), ("bare", bare)]
                for name, argv in pair:
                    times[name].append(timed(argv))
            imports = import_times(daemon.socket)
            names = modules_loaded(MODULES_AFTER_CTL, daemon.socket)
            baseline = modules_loaded("import json, sys; print(json.dumps(sorted(sys.modules)))")
        finally:
            daemon.stop()

    bare_ms = statistics.median(times["bare"]) * 1000
    ctl_ms = statistics.median(times["ctl"]) * 1000
    ratio = ctl_ms / bare_ms
    print(f"ctl start-up: {args.runs} interleaved runs each, interpreter {sys.executable}")
    print()
    print(f"{'command':<40}{'median ms':>10}{'min ms':>10}")
    print(f"{'python -c pass':<40}{bare_ms:>10.1f}{min(times['bare']) * 1000:>10.1f}")
    print(f"{'paragon-licensed ctl status':<40}{ctl_ms:>10.1f}{min(times['ctl']) * 1000:>10.1f}")
    print()
    print(f"ratio ctl/python: {ratio:.2f}   target <= 3.0  {'OK' if ratio <= 3.0 else 'MISSED'}")

    ours = sorted(n for n in names if n.startswith("paragon_licensed"))
    print()
    print(f"modules ctl status loaded beyond a bare interpreter's: {len(names - baseline)}")
    print(f"  paragon_licensed modules: {', '.join(ours)}")
    slowest = sorted(imports, reverse=True)[:6]
    print("  slowest (self µs): " + ", ".join(f"{name} {own}" for own, _, name in slowest))
    print()
    failures = 0
    for module in FORBIDDEN:
        present = sorted(n for n in names if n == module or n.startswith(module + "."))
        failures += bool(present)
        found = "imported: " + ", ".join(present) if present else "absent"
        print(f"  {'FAIL' if present else 'ok  '} {module:<14} {found}")
    internals = sorted(n for n in ours if n.startswith("paragon_licensed.daemon"))
    failures += bool(internals)
    print(
        f"  {'FAIL' if internals else 'ok  '} {'daemon internals':<14} "
        f"{'imported: ' + ', '.join(internals) if internals else 'absent'}"
    )
    print()
    print("imports: " + ("all absent as required" if not failures else f"{failures} problem(s)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
