"""Issue figures: how long until `status` names a fault, and until the node recovers.

Runs the fault tests (the real daemon, the real portal, real mounts: needs root)
with $PARAGON_FAULT_FIGURES set, so each test records its measured waits, then
prints them per row of the fault table. The tests poll `ctl status` every 50 ms,
so a figure includes up to that much (and a ctl call's own time). Heartbeat in
these tests: 0.2 s. Configuration rows (7 to 9) have no figure: `run` refuses
them before it starts (exit 2).

    .venv/bin/python bench/faults.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_disk_faults_e2e.py", "tests/test_store_faults_e2e.py", "tests/test_clock_e2e.py"]


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        figures = Path(folder) / "figures.jsonl"
        env = {**os.environ, "PARAGON_FAULT_FIGURES": str(figures)}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
            cwd=ROOT,
            env=env,
            check=False,
        )
        rows: dict[tuple[str, str], list[float]] = defaultdict(list)
        if figures.exists():
            for line in figures.read_text().splitlines():
                entry = json.loads(line)
                rows[(entry["row"], entry["event"])].append(entry["seconds"])
    print(f"\n{'row':<18} {'event':<68} seconds")
    for (row, event), seconds in sorted(rows.items()):
        print(f"{row:<18} {event:<68} {', '.join(f'{s:.2f}' for s in seconds)}")
    verdict = "passed" if result.returncode == 0 else "FAILED"
    print(f"\ntests: {verdict} (every test asserts the daemon process never exited)")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
