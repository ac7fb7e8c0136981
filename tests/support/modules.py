"""What a program has imported, read from the running process itself.

``wrapper(dump_to)`` is a command prefix for ``DaemonProcess.start(wrapper=...)``:
it runs the installed console script in this interpreter, exactly as the script
would run, with one extra thread that waits for the file ``dump_to + ".now"`` and
then writes the sorted names of ``sys.modules`` to ``dump_to`` (JSON). A test
starts the daemon, waits for the state it wants to inspect, and calls
``modules_now(dump_to)``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

_SCRIPT = """
import json, os, runpy, sys, threading, time
dump_to = sys.argv.pop(1)

def dump():
    while not os.path.exists(dump_to + ".now"):
        time.sleep(0.02)
    names = sorted(sys.modules)
    with open(dump_to + ".tmp", "w") as out:
        json.dump(names, out)
    os.rename(dump_to + ".tmp", dump_to)

threading.Thread(target=dump, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def wrapper(dump_to: Path) -> list[str]:
    return [sys.executable, "-c", _SCRIPT, str(dump_to)]


def modules_now(dump_to: Path, timeout: float = 20.0) -> set[str]:
    """Ask the wrapped process for its modules and wait for the answer."""
    Path(f"{dump_to}.now").touch()
    deadline = time.monotonic() + timeout
    while not dump_to.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no module list in {dump_to} within {timeout:g}s")
        time.sleep(0.02)
    return set(json.loads(dump_to.read_text()))


def in_a_fresh_interpreter(code: str, *argv: str) -> set[str]:
    """sys.modules after running ``code`` (its output silenced) in a new interpreter."""
    import subprocess

    program = (
        "import contextlib, io, json, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, *argv], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))
