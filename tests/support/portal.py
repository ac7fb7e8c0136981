"""The reference License Portal as a real process, for tests that talk to it over HTTP.

``PortalProcess`` runs the installed ``paragon-license-portal serve`` on 127.0.0.1,
waits for its "listening on" line, and can stop and start it again on the same port and
database (an outage). Orders and the request log are reached through the portal's
Python API on the same SQLite file.

Use the fixtures with ``pytest_plugins = ["support.portal"]`` in a test module:
``portal`` is a started portal with default settings, ``portal_factory(...)`` makes
more (with testing aids, TLS, ...). Every process is stopped at teardown.

PYTEST_DONT_REWRITE: test modules both import this module and name it in
``pytest_plugins``; it has no assert statements, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from paragon_licensed import licensefile as lf
from paragon_licensed.portal.db import PortalDB
from paragon_licensed.portal.queries import LicenseRecord
from paragon_licensed.portal.requestlog import RequestRecord

PORTAL_BIN = Path(sys.executable).parent / "paragon-license-portal"
STARTUP_TIMEOUT = 20.0
_LISTENING = "listening on "


class PortalProcess:
    """One portal: a work directory with its keys and database, and the serving process.

    ``serve_args`` are extra ``serve`` options (``--latency``, ``--fail-first``,
    ``--license-days``, ...); ``start(serve_args=...)`` replaces them for that start.
    ``tls`` is a ``(cert_file, key_file)`` pair for HTTPS.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        serve_args: Sequence[str] = (),
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_dir = workdir / "keys"
        self.key_path = self.key_dir / lf.PRIVATE_KEY_NAME
        if not self.key_path.exists():
            lf.generate_keypair(self.key_dir)
        self.public_keys_glob = str(self.key_dir / "*.pub")
        self.db_path = workdir / "portal.db"
        self.db = PortalDB(self.db_path)
        self.serve_args = list(serve_args)
        self.tls = tls
        self.port: int | None = None
        self.log_path = workdir / "portal.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    # Process control ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:PORT/api/v1``."""
        if self.port is None:
            raise RuntimeError("the portal has not been started yet")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/api/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def command(self, serve_args: Sequence[str]) -> list[str]:
        cmd = [
            str(PORTAL_BIN),
            "serve",
            "--db",
            str(self.db_path),
            "--key",
            str(self.key_path),
            "--listen",
            f"127.0.0.1:{self.port or 0}",
        ]
        if self.tls:
            cmd += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        return cmd + list(serve_args)

    def start(self, serve_args: Sequence[str] | None = None) -> None:
        """Start serving (on the port of the first start, if any) and wait until it listens."""
        if self.running:
            raise RuntimeError("the portal is already running")
        if serve_args is not None:
            self.serve_args = list(serve_args)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            error = self._try_start(deadline)
            if error is None:
                return
            # After a restart the old socket may linger a moment; try the port again.
            if "in use" not in error or time.monotonic() > deadline:
                raise RuntimeError(f"the portal did not start: {error}")
            time.sleep(0.1)

    def _try_start(self, deadline: float) -> str | None:
        self._starts += 1
        out_path = self.workdir / f"portal.out.{self._starts}"
        with out_path.open("wb") as out, self.log_path.open("ab") as err:
            self._proc = subprocess.Popen(
                self.command(self.serve_args),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal reaches pytest only
            )
        while time.monotonic() < deadline:
            text = out_path.read_text()
            if _LISTENING in text and text.endswith("\n"):
                url = text.split(_LISTENING, 1)[1].splitlines()[0]
                self.port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
                return None
            if self._proc.poll() is not None:
                self._proc = None
                return self.log_text()[-2000:] or "exited without a message"
            time.sleep(0.02)
        self.stop()
        return f"no 'listening on' line within {STARTUP_TIMEOUT:g}s"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the port and database stay for a restart."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the process, as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def release(self) -> None:
        """Answer every request held by ``--hold-after``, and hold no more (SIGUSR1)."""
        if self._proc is None:
            raise RuntimeError("the portal is not running")
        self._proc.send_signal(signal.SIGUSR1)

    def restart(self, serve_args: Sequence[str] | None = None) -> None:
        self.stop()
        self.start(serve_args)

    def close(self) -> None:
        """Stop the process and close the database handle."""
        self.stop()
        self.db.close()

    def __enter__(self) -> PortalProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_text(self) -> str:
        """What the portal wrote to stderr, over every start."""
        return self.log_path.read_text() if self.log_path.exists() else ""

    # Data ---------------------------------------------------------------------------

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return lf.load_public_keys([self.public_keys_glob])

    def add_order(
        self,
        activation_key: str,
        tenant: str,
        *,
        product: str = "Paragon Print",
        valid_until: date | datetime | None = None,
        quantity: int = 1,
        features: Mapping[str, str] | None = None,
    ) -> str:
        """Add an order (by default valid for a year) to a key; return its order ID."""
        end = valid_until or (datetime.now(UTC) + timedelta(days=365)).date()
        return self.db.add_order(activation_key, tenant, product, end, quantity=quantity, features=features)

    def requests(self, **filters: Any) -> list[RequestRecord]:
        """The request log; filters as ``PortalDB.requests`` (path, request_id, tenant_id...)."""
        return self.db.requests(**filters)

    def licenses(self, tenant_id: str | None = None) -> list[LicenseRecord]:
        return self.db.licenses(tenant_id=tenant_id)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``paragon-license-portal ARGS`` and return its result."""
        result = subprocess.run(
            [str(PORTAL_BIN), *args], capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
        return result

    def process_offline(self, request: Path, response: Path) -> subprocess.CompletedProcess[str]:
        """``paragon-license-portal offline process``, as an operator runs it on a machine
        that reaches the portal: the request file in, the response file out."""
        return self.cli(
            "offline", "process", "--db", str(self.db_path), "--key", str(self.key_path),
            str(request), "--out", str(response),
        )  # fmt: skip


@pytest.fixture
def portal_factory(tmp_path: Path) -> Iterator[Callable[..., PortalProcess]]:
    """Make portals: ``portal_factory(serve_args=[...], tls=..., start=True, name=...)``."""
    made: list[PortalProcess] = []

    def make(
        *,
        serve_args: Sequence[str] = (),
        tls: tuple[Path, Path] | None = None,
        start: bool = True,
        name: str | None = None,
    ) -> PortalProcess:
        portal = PortalProcess(tmp_path / (name or f"portal-{len(made)}"), serve_args=serve_args, tls=tls)
        made.append(portal)
        if start:
            portal.start()
        return portal

    yield make
    for portal in made:
        with contextlib.suppress(Exception):
            portal.close()


@pytest.fixture
def portal(portal_factory: Callable[..., PortalProcess]) -> PortalProcess:
    """A started portal with default settings."""
    return portal_factory()
