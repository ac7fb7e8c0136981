"""Debian's Prometheus for the monitoring tests: a server scraping a daemon, and promtool.

``scripts/ensure-prometheus`` (run by `make unit`) installs the package; a test
that finds it missing fails with that sentence rather than skipping.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

MISSING = "prometheus and promtool are missing: run scripts/ensure-prometheus (as root it installs them)"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(MISSING)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        body: bytes = reply.read()
        return body.decode()


class PrometheusServer:
    """`prometheus` scraping `target` (HOST:PORT) every second, its data in `root`."""

    def __init__(self, root: Path, target: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = root / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: paragon-licensed\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = root / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = json.loads(fetch(url))
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_series(self, expr: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Poll the HTTP API until `expr` has a result (the first scrape landed)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-3000:]
                raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{tail}")
            try:
                found = self.query(expr)
                if found:
                    return found
            except OSError as exc:  # not listening yet
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"no {expr} within {timeout}s ({last}):\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
