"""What systemd says about the daemon, for the message shown when the socket does not answer."""

from __future__ import annotations

import os
import subprocess

UNIT = "paragon-licensed.service"


def unit_state() -> str:
    if not os.path.isdir("/run/systemd/system"):
        return "The daemon is not running (systemd is not managing services on this host)."
    try:
        result = subprocess.run(
            ["systemctl", "is-active", UNIT], capture_output=True, text=True, timeout=3, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "The daemon is not running."
    state = result.stdout.strip() or "unknown"
    if state == "active":
        return f"{UNIT} is active, so the socket path may differ from the one tried."
    return f"{UNIT} is {state}: start it with `systemctl start {UNIT}` and see `journalctl -u {UNIT}`."
