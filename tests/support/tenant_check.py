"""Fixtures for the tenant check's end-to-end tests: daemons, licenses in the store, the portal's answers.

Licenses are either issued by the real portal (an activation over HTTP, or
`ctl license activate`) or crafted from such a license and signed with the
portal's key (another expiry, another key, another set of computer IDs), then
installed into the daemon's store while the daemon is stopped.

PYTEST_DONT_REWRITE: test modules both import this module and name it in
``pytest_plugins``; it has no assert statements, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from paragon_licensed import licensefile as lf
from paragon_licensed.daemon.config import load_config
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.connect import open_database
from paragon_licensed.daemon.store.db import Database, Tx
from support.daemon import DaemonProcess, deep_merge
from support.portal import PortalProcess
from support.smtp import SmtpServer

T = TypeVar("T")
BUILD = "3.2.1"
# No scheduled run while a test sets things up: the tests start each run with `ctl tenants check`.
MANUAL_ONLY = {"splay": "100d", "interval": "100d"}


def check_config(
    portal: PortalProcess, smtp: SmtpServer | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A daemon configuration for the tenant check: this portal, this SMTP server, manual runs only."""
    config: dict[str, Any] = {
        "portal": {
            "url": portal.url,
            "public_keys": [portal.public_keys_glob],
            "max_attempts": 2,
            "backoff": "0.1s",
        },
        "tenant_check": dict(MANUAL_ONLY),
    }
    if smtp is not None:
        config["mail"] = smtp.mail_config(retry_backoff="1s", max_retry_backoff="4s")
    return deep_merge(config, extra or {})


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Make daemons: ``daemons(name, config)``; every one is stopped (or killed) at teardown."""
    made: list[DaemonProcess] = []

    def make(name: str = "node-1", config: Mapping[str, Any] | None = None) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path, name, config=config)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        with contextlib.suppress(Exception):
            daemon.stop(timeout=5)
        daemon.kill()


# -- the daemon's store, opened by the test


@contextlib.contextmanager
def store(daemon: DaemonProcess) -> Iterator[Database]:
    db = open_database(load_config(str(daemon.config_path)))
    try:
        yield db
    finally:
        db.close()


def read(daemon: DaemonProcess, fn: Callable[..., T], *args: Any) -> T:
    with store(daemon) as db:
        return db.read_sync(fn, *args)


def write(daemon: DaemonProcess, fn: Callable[..., T], *args: Any) -> T:
    """A write to the store; only while the daemon is stopped (it owns the store while it runs)."""
    if daemon.proc is not None and daemon.proc.poll() is None:
        raise RuntimeError("stop the daemon before writing fixtures into its store")
    with store(daemon) as db:
        return db.write_sync(fn, *args)


def stored_license(daemon: DaemonProcess, tenant: str) -> tenant_q.LicenseRow | None:
    row = read(daemon, tenant_q.get_tenant, tenant)
    return None if row is None else row.license


def license_id(daemon: DaemonProcess, tenant: str) -> str | None:
    row = stored_license(daemon, tenant)
    return None if row is None else row.license_id


def payload_of(portal: PortalProcess, document: str) -> lf.Payload:
    return lf.inspect(document, portal.public_keys())


def craft(
    base: lf.Payload,
    key: Ed25519PrivateKey,
    *,
    valid_until: datetime | None = None,
    computer_ids: list[str] | None = None,
) -> tuple[str, lf.Payload]:
    """A new license made from a real one: another expiry or computer IDs, signed with ``key``."""
    ids = tuple(sorted(computer_ids)) if computer_ids is not None else base.computer_ids
    payload = msgspec.structs.replace(
        base,
        license_id=str(uuid.uuid4()),
        computer_ids=ids,
        integrity_key=lf.integrity_key(base.tenant_id, ids),
        valid_until=lf.utc_seconds(valid_until) if valid_until is not None else base.valid_until,
        supersedes=base.license_id,
    )
    return lf.sign(payload, key), payload


def portal_key(portal: PortalProcess) -> Ed25519PrivateKey:
    return lf.load_private_key(portal.key_path)


def install(daemon: DaemonProcess, document: str, payload: lf.Payload, admin_email: str = "") -> None:
    """Make this license the tenant's current one in the stopped daemon's store."""
    install_many(daemon, [(document, payload)], {payload.tenant_id: admin_email})


def install_many(
    daemon: DaemonProcess,
    licenses: list[tuple[str, lf.Payload]],
    admin_emails: Mapping[str, str] | None = None,
) -> None:
    """Install many licenses (creating their tenants) in one transaction of the stopped daemon's store."""
    emails = admin_emails or {}

    def fn(tx: Tx) -> None:
        for document, payload in licenses:
            tenant_q.ensure_tenant(tx, payload.tenant_id, emails.get(payload.tenant_id, ""))
            tenant_q.install_license(
                tx,
                payload.tenant_id,
                payload.license_id,
                document,
                payload.build,
                payload.integrity_key,
                payload.issued_at.timestamp(),
                payload.valid_until.timestamp(),
                "test fixture",
                "test",
                [(o.order_id, o.product) for o in payload.orders],
            )

    write(daemon, fn)


def prepare_store(daemon: DaemonProcess) -> str:
    """Before the daemon's first start: create its store (the daemon's own migrations) and
    return this node's computer ID as `paragon-licensed identity` computes it."""
    import subprocess

    from support.daemon import DAEMON

    with store(daemon) as db:
        db.migrate()
    result = subprocess.run(
        [DAEMON, "identity", "--config", str(daemon.config_path), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return str(json.loads(result.stdout)["computer_id"])


def unknown_license(
    portal: PortalProcess, tenant: str, computer_ids: list[str], valid_until: datetime
) -> tuple[str, lf.Payload]:
    """A license signed with the portal's key for an installation the portal has no record of:
    its reactivation is refused (`integrity_mismatch`)."""
    ids = tuple(sorted(computer_ids))
    now = lf.utc_seconds(datetime.now(UTC) - timedelta(minutes=1))
    end = lf.utc_seconds(valid_until)
    payload = lf.Payload(
        format=lf.FORMAT,
        license_id=str(uuid.uuid4()),
        support_id="SUP-TEST-0000",
        tenant_id=tenant,
        build=BUILD,
        computer_ids=ids,
        integrity_key=lf.integrity_key(tenant, ids),
        orders=(
            lf.Order(
                order_id=f"ORD-{tenant}", product="Paragon Print", features={}, quantity=1, valid_until=end
            ),
        ),
        issued_at=now,
        valid_until=end,
        supersedes=None,
    )
    return lf.sign(payload, portal_key(portal)), payload


def seed_refused(daemon: DaemonProcess, portal: PortalProcess, tenants: Mapping[str, str]) -> str:
    """Before the daemon's first start: tenants (with these admin e-mails, "" for none) whose
    licenses expire tomorrow and whose reactivation the portal refuses. Returns the computer ID."""
    ours = prepare_store(daemon)
    licenses = [unknown_license(portal, tenant, [ours], in_days(1)) for tenant in tenants]
    install_many(daemon, licenses, tenants)
    return ours


def activate_in_portal(
    portal: PortalProcess,
    pairs: Sequence[tuple[str, str]],
    computer_ids: list[str],
    *,
    kind: str = "activation",
    license_days: int = 30,
) -> list[tuple[str, lf.Payload]]:
    """Activate (or with ``kind="reactivation"``, reactivate) each ``(tenant, activation key)``
    through the portal's own service code, in this process: thousands in seconds, logged as
    offline requests. Returns the licenses issued."""
    from paragon_licensed.portal.db import PortalDB
    from paragon_licensed.portal.requestlog import RequestRecord
    from paragon_licensed.portal.service import PortalService

    db = PortalDB(portal.db_path)
    service = PortalService(db, portal_key(portal), license_days=license_days)
    keys = portal.public_keys()
    licenses = []
    try:
        for tenant, key in pairs:
            body: dict[str, Any] = {"tenant_id": tenant, "computer_ids": computer_ids, "build": BUILD}
            if kind == "activation":
                body["activation_key"] = key
            body["request_id"] = str(uuid.uuid4())
            record = RequestRecord(method="POST", path=f"/api/v1/{kind}s", source="offline")
            outcome = service.call(kind, body, record, time.perf_counter())
            if outcome.status != 200:
                raise RuntimeError(f"{kind} of {tenant}: {outcome.status} {outcome.body!r}")
            document = json.loads(outcome.body)["license"]
            licenses.append((document, lf.inspect(document, keys)))
    finally:
        db.close()
    return licenses


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


# -- the portal, asked directly


def portal_activate(
    portal: PortalProcess, tenant: str, activation_key: str, computer_ids: list[str], build: str = BUILD
) -> str:
    """POST /activations as a daemon would; return the license document."""
    body = {
        "activation_key": activation_key,
        "tenant_id": tenant,
        "computer_ids": sorted(computer_ids),
        "build": build,
        "request_id": str(uuid.uuid4()),
    }
    request = urllib.request.Request(
        portal.url + "/activations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        exc.close()
        raise RuntimeError(f"activation of {tenant} refused: {exc.code} {detail}") from None
    return str(answer["license"])


def processed(
    portal: PortalProcess, path: str = "/api/v1/reactivations", tenant: str | None = None
) -> list[Any]:
    """The requests the portal really processed (status 200, not a replay, not injected)."""
    return portal.requests(path=path, tenant_id=tenant, status=200, replay=False, injected=False)


# -- the daemon, asked through ctl


def computer_id(daemon: DaemonProcess) -> str:
    return str(daemon.status()["computer_id"])


def run_check(daemon: DaemonProcess, *args: str, timeout: float = 90.0) -> Any:
    """`ctl tenants check --json`: the results (the exit code is 1 when a tenant failed)."""
    result = daemon.ctl("tenants", "check", "--json", *args, timeout=timeout)
    if result.returncode not in (0, 1):
        raise AssertionError(f"tenants check exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout)["results"]


def outcomes(results: list[dict[str, Any]]) -> dict[str, str]:
    return {r["tenant"]: r["outcome"] for r in results}


def notifications(daemon: DaemonProcess, *args: str) -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = daemon.ctl_json("notifications", *args)
    return notes


def outbox(daemon: DaemonProcess) -> list[tuple[Any, ...]]:
    """Every outbox row: (id, recipient, subject, attempts, sent_at, last_error)."""

    def fn(tx: Tx) -> list[tuple[Any, ...]]:
        return tx.all("SELECT id, recipient, subject, attempts, sent_at, last_error FROM outbox ORDER BY id")

    return read(daemon, fn)


def sent_mail(daemon: DaemonProcess) -> list[msg_q.MailRow]:
    return read(daemon, msg_q.sent_mail)


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g}s; last {last!r}")
        time.sleep(0.1)
        last = predicate()
    return last


def ctl_in_terminal(daemon: DaemonProcess, *args: str, timeout: float = 90.0) -> tuple[int, str]:
    """Run ctl with a pseudo-terminal as its stdout (as a person at a shell); (exit code, output)."""
    import os
    import pty
    import select
    import subprocess

    from support.daemon import DAEMON

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [DAEMON, "ctl", "--socket", daemon.socket, *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
