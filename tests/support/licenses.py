"""Licenses for the activation tests: crafted documents, the daemon's stored license, raw varlink.

Crafted licenses are signed with a real private key (usually the portal's own,
``PortalProcess.key_path``) through ``paragon_licensed.licensefile``, so a test
changes exactly the one property it wants wrong. The daemon's store is read
with the daemon's own store API, the way the daemon reads it.

The ``daemon_factory`` fixture (``pytest_plugins = ["support.portal", "support.licenses"]``)
makes daemons configured for a portal and stops every one at teardown.

PYTEST_DONT_REWRITE: test modules both import this module and name it in
``pytest_plugins``; it has no assert statements, so nothing is lost.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from paragon_licensed import licensefile as lf
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.db import Database
from paragon_licensed.daemon.store.sqlite import SqliteBackend
from support.daemon import DaemonProcess, deep_merge
from support.portal import PortalProcess

TENANT = "default"


# -- configuration


def portal_config(portal: PortalProcess, **portal_keys: Any) -> dict[str, Any]:
    """A daemon configuration that talks to ``portal``, one seeded tenant, no surprise portal calls.

    The tenant check's first run is pushed an hour out, so the only portal calls a
    test sees are the ones it makes; retries back off briefly so failures end fast.
    """
    return {
        "portal": {
            "url": portal.url,
            "public_keys": [portal.public_keys_glob],
            "backoff": "0.1s",
            **portal_keys,
        },
        "tenants": [{"id": TENANT, "admin_email": "admin@example.com"}],
        "tenant_check": {"splay": "1h"},
    }


def computer_id(daemon: DaemonProcess) -> str:
    return str(daemon.ctl_json("identity")["computer_id"])


def expected_integrity_key(tenant: str, ids: list[str]) -> str:
    """docs/portal-api.md, "The license file", spelled out here rather than through the code under test."""
    text = "".join(f"{part}\n" for part in [tenant, *sorted(ids)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- keys and crafted documents


def private_key(portal: PortalProcess) -> Ed25519PrivateKey:
    return lf.load_private_key(portal.key_path)


def public_keys(portal: PortalProcess) -> dict[str, Ed25519PublicKey]:
    return lf.load_public_keys([portal.public_keys_glob])


def new_key(directory: Path) -> tuple[Ed25519PrivateKey, str]:
    """A fresh key pair written to ``directory`` (not known to any daemon); (key, kid)."""
    kid = lf.generate_keypair(directory)
    return lf.load_private_key(directory / lf.PRIVATE_KEY_NAME), kid


def payload_of(document: str, keys: Mapping[str, Ed25519PublicKey]) -> lf.Payload:
    return lf.inspect(lf.extract_license(document), keys)


def craft(
    base: lf.Payload,
    key: Ed25519PrivateKey,
    **changes: Any,
) -> str:
    """``base`` with ``changes`` applied (integrity key recomputed from tenant and IDs unless given),
    a new license ID unless given, signed with ``key``."""
    changes.setdefault("license_id", f"crafted-{os.urandom(6).hex()}")
    payload = msgspec.structs.replace(base, **changes)
    if "integrity_key" not in changes:
        payload = msgspec.structs.replace(
            payload, integrity_key=lf.integrity_key(payload.tenant_id, payload.computer_ids)
        )
    return lf.sign(payload, key)


def _envelope(document: str) -> dict[str, Any]:
    body = "".join(line for line in document.strip().splitlines()[1:-1])
    envelope: dict[str, Any] = json.loads(base64.b64decode(body))
    return envelope


def _armor(envelope: Mapping[str, Any]) -> str:
    text = base64.b64encode(json.dumps(dict(envelope)).encode()).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    begin, end = f"-----BEGIN {lf.LICENSE_LABEL}-----", f"-----END {lf.LICENSE_LABEL}-----"
    return "\n".join([begin, *lines, end]) + "\n"


def tamper(document: str, **changes: Any) -> str:
    """The same envelope and signature, with payload fields changed: the signature no longer matches."""
    envelope = _envelope(document)
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload.update(changes)
    envelope["payload"] = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
    return _armor(envelope)


def with_kid(document: str, kid: str) -> str:
    """The same payload and signature, under another key ID."""
    envelope = _envelope(document)
    envelope["kid"] = kid
    return _armor(envelope)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def days(n: float) -> timedelta:
    return timedelta(days=n)


# -- the daemon's store


def store_path(daemon: DaemonProcess) -> Path:
    return daemon.root / "state" / "store.db"


class Store:
    """The daemon's SQLite store, opened with the daemon's own store API."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.db = Database(SqliteBackend(str(store_path(daemon))))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def tenant(self, tenant: str = TENANT) -> tenant_q.TenantRow | None:
        return self.db.read_sync(tenant_q.get_tenant, tenant)

    def history(self, tenant: str = TENANT) -> list[tenant_q.LicenseRow]:
        return self.db.read_sync(tenant_q.license_history, tenant, 1000)

    def pending_offline(self, tenant: str = TENANT) -> list[tuple[str, str, float]]:
        return self.db.read_sync(tenant_q.pending_offline_requests, tenant)

    def audit_all(self) -> list[tuple[Any, ...]]:
        """Every audit row, whichever tenant it names (or none)."""
        return self.db.read_sync(
            lambda tx: tx.all("SELECT at, actor, action, tenant_id, request_id, outcome, detail FROM audit")
        )

    def install(self, tenant: str, document: str, payload: lf.Payload, cause: str = "test fixture") -> None:
        """Install a license directly (only while the daemon is stopped)."""
        self.db.write_sync(
            tenant_q.install_license,
            tenant,
            payload.license_id,
            document,
            payload.build,
            payload.integrity_key,
            payload.issued_at.timestamp(),
            payload.valid_until.timestamp(),
            "test",
            cause,
            [(o.order_id, o.product) for o in payload.orders],
        )


# -- a raw varlink connection


class RawVarlink:
    """NUL-terminated JSON over the daemon's socket; every reply as it arrives, nothing hidden."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""

    def __enter__(self) -> RawVarlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, method: str, parameters: Mapping[str, Any], **fields: Any) -> None:
        message = {"method": method, "parameters": dict(parameters), **fields}
        self.sock.sendall(json.dumps(message).encode() + b"\0")

    def reply(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        reply: dict[str, Any] = json.loads(raw)
        return reply

    def call(self, method: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
        self.send(method, parameters)
        return self.reply()

    def stream(self, method: str, parameters: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every reply of a call with "more", the final one (without "continues") included."""
        self.send(method, parameters, more=True)
        while True:
            reply = self.reply()
            yield reply
            if not reply.get("continues") or "error" in reply:
                return


# -- daemons


def start_and_settle(daemon: DaemonProcess, env: Mapping[str, str] | None = None) -> None:
    """Start the daemon and wait until its store is open and the configured tenants are loaded.

    READY=1 comes before the store is opened (the daemon serves local license copies
    meanwhile); tests that are not about start-up begin once the store answers.
    """
    daemon.start(env=env)
    wanted = {t["id"] for t in daemon.config.get("tenants", [])}

    def settled() -> bool:
        status = daemon.status()
        return bool(status["store_available"]) and wanted <= {t["tenant"] for t in daemon.tenants()}

    daemon.wait_until(settled, timeout=30, what="store open and tenants loaded")


DaemonFactory = Callable[..., DaemonProcess]


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[DaemonFactory]:
    """``daemon_factory(portal, name=, config=, start=, env=, **portal_keys)``: a daemon for ``portal``."""
    made: list[DaemonProcess] = []

    def make(
        portal: PortalProcess,
        *,
        name: str = "node-1",
        config: Mapping[str, Any] | None = None,
        start: bool = True,
        env: Mapping[str, str] | None = None,
        **portal_keys: Any,
    ) -> DaemonProcess:
        merged = deep_merge(portal_config(portal, **portal_keys), config or {})
        daemon = DaemonProcess(tmp_path / "nodes", name, merged)
        made.append(daemon)
        if start:
            start_and_settle(daemon, env)
        return daemon

    yield make
    for daemon in made:
        with contextlib.suppress(Exception):
            daemon.stop()
        with contextlib.suppress(Exception):
            daemon.kill()
