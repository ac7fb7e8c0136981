"""Run the real `paragon-licensed` as a process: its configuration, identity files, readiness and ctl.

The daemon is the installed console script; readiness is its own `READY=1`
datagram on a NOTIFY_SOCKET this helper owns, exactly as systemd would see it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
DAEMON = str(BIN / "paragon-licensed")


def toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for test configurations (tables, arrays of tables, scalars, lists)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    def table(prefix: str, items: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in items.items() if not isinstance(v, dict) and not _is_tables(v)}
        for k, v in scalars.items():
            lines.append(f"{k} = {value(v)}")
        for k, v in items.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                lines.append(f"\n[{name}]")
                table(name, v)
            elif _is_tables(v):
                for entry in v:
                    lines.append(f"\n[[{name}]]")
                    table(name, entry)

    table("", data)
    return "\n".join(lines).strip() + "\n"


def _is_tables(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, val in extra.items():
        if isinstance(val, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], val)
        else:
            merged[key] = val
    return merged


class NotifyListener:
    """A NOTIFY_SOCKET: collects every sd_notify datagram the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append(data.decode())
                self._cond.notify_all()

    def wait_for(self, needle: str, timeout: float = 15.0, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages[start:]:
                    if needle in message.split("\n"):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {needle!r} in {self.messages!r}")
                self._cond.wait(remaining)

    def lines(self) -> list[str]:
        with self._cond:
            return [line for m in self.messages for line in m.split("\n")]

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self._sock.close()


def write_identity(
    directory: Path, machine_id: str | None = None, product_uuid: str | None = None
) -> dict[str, Any]:
    """Identity files for one node; returns the [identity] section pointing at them."""
    directory.mkdir(parents=True, exist_ok=True)
    machine = directory / "machine-id"
    product = directory / "product_uuid"
    machine.write_text((machine_id or uuid.uuid4().hex) + "\n")
    product.write_text((product_uuid or str(uuid.uuid4())) + "\n")
    return {"machine_id_file": str(machine), "product_uuid_file": str(product), "use_dbus": False}


class DaemonProcess:
    """One node: its folder, configuration and identity, and the daemon process when running."""

    def __init__(
        self,
        root: Path,
        name: str = "node-1",
        config: Mapping[str, Any] | None = None,
        socket: str | None = None,
    ) -> None:
        self.root = root / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.socket = socket or str(self.root / "run" / "io.paragon.License")
        self.config_path = self.root / "paragon-licensed.toml"
        self.log_path = self.root / "daemon.log"
        base: dict[str, Any] = {
            "node": {"name": name},
            "paths": {"state_dir": str(self.root / "state")},
            "control": {"socket": self.socket},
            "identity": write_identity(self.root / "identity"),
            "product": {"build": "3.2.1"},
            "cluster": {
                "heartbeat": "0.2s",
                "node_timeout": "3s",
                "lease": "3s",
                "renew": "0.5s",
                "renew_deadline": "2s",
            },
            "tenant_check": {"splay": "0s"},
        }
        self.config: dict[str, Any] = deep_merge(base, config or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: NotifyListener | None = None
        self.write_config()

    def write_config(self) -> None:
        self.config_path.write_text(toml(self.config))

    def update_config(self, extra: Mapping[str, Any]) -> None:
        self.config = deep_merge(self.config, extra)
        self.write_config()

    def start(
        self,
        wait: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float = 20.0,
        wrapper: Sequence[str] = (),
        pass_fds: Sequence[int] = (),
    ) -> None:
        """Spawn the daemon (behind `wrapper` when given, e.g. a program that sets up fds and execs it)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        notify_path = self.root / f"notify-{uuid.uuid4().hex[:8]}"
        self.notify = NotifyListener(notify_path)
        full_env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), **(env or {})}
        full_env.pop("PARAGON_LICENSED_SOCKET", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*wrapper, DAEMON, "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=log,
                env=full_env,
                pass_fds=tuple(pass_fds),
            )
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        assert self.notify is not None
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.notify.wait_for("READY=1", timeout=0.2)
                return
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"daemon {self.name} exited {self.proc.returncode}:\n{self.log()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"daemon {self.name} not ready:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        code = self.proc.returncode
        self._cleanup()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    def ctl(
        self, *args: str, check: bool = False, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `paragon-licensed ctl --socket S ARGS...` and return the finished process."""
        result = subprocess.run(
            [DAEMON, "ctl", "--socket", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"ctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def ctl_json(self, *args: str) -> Any:
        result = self.ctl(*args, "--json", check=True)
        return json.loads(result.stdout)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.ctl_json("status")
        return status

    def tenants(self) -> list[dict[str, Any]]:
        """Every tenant's state (``ctl tenants --json``, which pages through them all)."""
        tenants: list[dict[str, Any]] = self.ctl_json("tenants")
        return tenants

    def tenant_state(self, tenant: str = "default") -> dict[str, Any]:
        found: list[dict[str, Any]] = self.ctl_json("tenants", "--tenant", tenant, "--limit", "1")["tenants"]
        if not found:
            raise KeyError(tenant)
        return found[0]

    def wait_until(
        self, predicate: Any, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(f"{what} not reached on {self.name}; last {last!r}\n{self.log()[-4000:]}")
