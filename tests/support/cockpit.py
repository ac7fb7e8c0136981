"""Cockpit's web server, as the tests and benchmarks run it: no systemd, no login, loopback only.

``CockpitWs`` runs Debian's ``cockpit-ws --no-tls --local-session=cockpit-bridge`` on
127.0.0.1: it serves the session of the user it runs as, starting ``cockpit-bridge``
itself, so no login, no PAM and no init are involved. The License page is installed the
way Cockpit finds a user's packages, as ``$XDG_DATA_HOME/cockpit/paragon-licensed`` (a
copy of the repository's ``cockpit/`` folder). Given a ``uid``, the server and its bridge
run as that user, and so the daemon sees that user's credentials on its socket.

``scripts/ensure-cockpit`` installs ``cockpit-ws`` and ``cockpit-bridge``.

PYTEST_DONT_REWRITE: imported by test modules and benchmarks; it has no assert statements.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE_SOURCE = REPO / "cockpit"
PACKAGE = "paragon-licensed"
COCKPIT_WS = "/usr/lib/cockpit/cockpit-ws"
COCKPIT_BRIDGE = "/usr/bin/cockpit-bridge"
STARTUP_TIMEOUT = 30.0


def missing() -> list[str]:
    """What this machine lacks to run Cockpit's web server."""
    return [
        f"{program} is missing: scripts/ensure-cockpit installs it"
        for program in (COCKPIT_WS, COCKPIT_BRIDGE)
        if not os.access(program, os.X_OK)
    ]


def install_page(data_home: Path) -> Path:
    """Copy the page to ``data_home/cockpit/paragon-licensed``, readable by every user."""
    target = data_home / "cockpit" / PACKAGE
    shutil.copytree(PAGE_SOURCE, target, dirs_exist_ok=True)
    for folder in (data_home, data_home / "cockpit", *[p for p in target.rglob("*") if p.is_dir()], target):
        folder.chmod(0o755)
    for file in target.rglob("*"):
        if file.is_file():
            file.chmod(0o644)
    return target


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CockpitWs:
    """One ``cockpit-ws`` serving one local session, with the page installed under ``home``.

    ``home`` is the server's folder (its $HOME, $XDG_DATA_HOME and log); for another
    ``uid`` it must be a folder that user may enter (``support.unprivileged.public_dir``).
    """

    def __init__(self, home: Path, uid: int | None = None) -> None:
        self.home = home
        self.uid = uid
        self.data_home = home / "share"
        self.runtime = home / "runtime"
        self.log_path = home / "cockpit-ws.log"
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        if self.port is None:
            raise RuntimeError("cockpit-ws has not been started")
        return f"http://127.0.0.1:{self.port}"

    def page_url(self, socket_path: str | None = None, tenant: str | None = None) -> str:
        """The page's own address (outside Cockpit's shell, which the tests do not need), with
        the control socket and the first tenant as location options."""
        options = {key: value for key, value in (("socket", socket_path), ("tenant", tenant)) if value}
        query = urllib.parse.urlencode(options, quote_via=urllib.parse.quote, safe="/")
        return f"{self.base}/cockpit/@localhost/{PACKAGE}/index.html" + (f"#/?{query}" if query else "")

    def start(self) -> None:
        problems = missing()
        if problems:
            raise RuntimeError("; ".join(problems))
        for folder in (self.home, self.runtime):
            folder.mkdir(parents=True, exist_ok=True)
        self.runtime.chmod(0o700)
        install_page(self.data_home)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.data_home),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "LANG": "C.UTF-8",
        }
        user: dict[str, object] = {}
        if self.uid is not None and self.uid != os.geteuid():
            os.chown(self.runtime, self.uid, self.uid)
            user = {"user": self.uid, "group": self.uid, "extra_groups": []}
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            self.port = _free_port()
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        COCKPIT_WS,
                        "--no-tls",
                        f"--local-session={COCKPIT_BRIDGE}",
                        "--address",
                        "127.0.0.1",
                        "--port",
                        str(self.port),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    cwd=self.home,
                    start_new_session=True,  # its bridge is in its process group: stopped with it
                    **user,  # type: ignore[call-overload]
                )
            if self._wait_listening(deadline):
                return
            if time.monotonic() > deadline or "in use" not in self.log():
                raise RuntimeError(f"cockpit-ws did not start:\n{self.log()[-2000:]}")

    def _wait_listening(self, deadline: float) -> bool:
        assert self.proc is not None
        assert self.port is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return True
            time.sleep(0.05)
        self.stop()
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the server and its bridge (their own process group), SIGKILL if need be."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # The bridge may outlive the server by a moment: end what is left of the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self) -> CockpitWs:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
