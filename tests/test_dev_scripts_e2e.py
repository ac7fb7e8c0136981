"""End to end: `make run-cluster` stops cleanly on Ctrl-C, a node restarted by hand included.

The script runs in a process group of its own, as in a terminal; Ctrl-C is a SIGINT
to the whole group. Every node must log "stopped" (a clean shutdown, not one cut
short by a second signal) and leave no control socket behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.daemon import DAEMON

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_for(predicate: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(240)
def test_ctrl_c_stops_every_node_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    env = {**os.environ, "PARAGON_CLUSTER_ROOT": str(root), "PARAGON_CLUSTER_PORT": str(free_port())}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    out = tmp_path / "script.out"
    with out.open("wb") as sink:
        script = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "run-cluster")],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
    restarted = None
    try:
        wait_for(lambda: "Ctrl-C stops" in out.read_text(), "the cluster is up", timeout=120)
        # Stop node 3 and start it again the way the script says, from "another terminal".
        pid = int((root / "node-3" / "pid").read_text())
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), "node 3 stopped")
        with (root / "node-3" / "daemon.log").open("ab") as log:
            restarted = subprocess.Popen(
                [DAEMON, "run", "--config", str(root / "node-3.toml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (root / "node-3" / "pid").write_text(f"{restarted.pid}\n")
        socket3 = root / "node-3" / "run" / "io.paragon.License"
        wait_for(
            lambda: "ready" in (root / "node-3" / "daemon.log").read_text().split("stopped")[-1], "restarted"
        )

        os.killpg(script.pid, signal.SIGINT)  # Ctrl-C
        assert script.wait(timeout=60) in (130, 0)
        restarted.wait(timeout=30)
    finally:
        for proc in (script, restarted):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for n in (1, 2, 3):
        text = (root / f"node-{n}" / "daemon.log").read_text()
        assert text.rstrip().splitlines()[-1].split(" INFO ")[-1].startswith("stopped"), (n, text[-2000:])
        assert "Traceback" not in text
        assert not (root / f"node-{n}" / "run" / "io.paragon.License").exists(), n
    assert not socket3.exists()
