"""An installation activated on a reference portal, for the start-up, transfer and grace tests.

``Installation`` is one real daemon (its build in a ``product.build_file``, its
identity in files the test may rewrite) activated with real orders on a real
portal, plus the bookkeeping those tests need: a mark in the portal's request
log and in the daemon's log before a restart, the requests and notifications
since, and waits on the tenant's state.

Use the fixture with ``pytest_plugins = ["support.portal", "support.scenarios"]``:
``installations(portal, ...)`` activates one and stops every daemon at teardown.

PYTEST_DONT_REWRITE: test modules both import this module and name it in
``pytest_plugins``; it raises AssertionError itself instead of using assert.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from paragon_licensed.portal.requestlog import RequestRecord
from support.daemon import DaemonProcess, deep_merge
from support.portal import PortalProcess

TENANT = "default"
BUILD = "3.2.1"
NEW_BUILD = "3.3.0"
API = "/api/v1"
CURRENT = f"{API}/licenses/current"
QUERY = f"{API}/licenses/current/query"  # the take-over's current-license check
REACTIVATIONS = f"{API}/reactivations"
TRANSFERS = f"{API}/transfers"
CTL = "paragon-licensed ctl"
SETTLE = 30.0  # generous: the machine is shared


def portal_config(portal: PortalProcess) -> dict[str, Any]:
    """The daemon configuration that points at ``portal`` with one tenant."""
    return {
        "portal": {"url": portal.url, "public_keys": [portal.public_keys_glob]},
        "tenants": [{"id": TENANT, "admin_email": "admin@example.com"}],
    }


def store_files(store: Path) -> list[Path]:
    """The SQLite store and its -wal/-shm companions, those that exist."""
    return [p for p in (store, Path(f"{store}-wal"), Path(f"{store}-shm")) if p.exists()]


@dataclass
class Installation:
    daemon: DaemonProcess
    portal: PortalProcess
    key: str
    orders: list[str]
    build_file: Path
    log_mark: int = 0
    request_mark: int = 0
    notification_mark: int = 0
    started: list[int] = field(default_factory=list)

    # -- the files a test changes

    @property
    def state_dir(self) -> Path:
        return Path(self.daemon.config["paths"]["state_dir"])

    @property
    def store(self) -> Path:
        return self.state_dir / "store.db"

    @property
    def machine_id_file(self) -> Path:
        return Path(self.daemon.config["identity"]["machine_id_file"])

    @property
    def product_uuid_file(self) -> Path:
        return Path(self.daemon.config["identity"]["product_uuid_file"])

    def set_build(self, build: str) -> None:
        self.build_file.write_text(build + "\n")

    def back_up_store(self, target: Path) -> list[str]:
        """Copy the (stopped) daemon's store files to ``target``; returns the names copied."""
        target.mkdir(parents=True, exist_ok=True)
        names = []
        for path in store_files(self.store):
            shutil.copy2(path, target / path.name)
            names.append(path.name)
        return names

    def put_back_store(self, source: Path) -> None:
        """Replace the (stopped) daemon's store files by those saved in ``source``."""
        for path in store_files(self.store):
            path.unlink()
        for saved in source.iterdir():
            shutil.copy2(saved, self.state_dir / saved.name)

    # -- process control with marks

    def mark(self) -> None:
        """Remember where the portal's request log, the daemon log and the notifications are now."""
        records = self.portal.requests()
        self.request_mark = records[-1].id if records else 0
        self.log_mark = len(self.daemon.log())
        if self.daemon.proc is not None and self.daemon.proc.poll() is None:
            notes = self.notifications()
            self.notification_mark = max((n["id"] for n in notes), default=0)

    def stop(self) -> None:
        if self.daemon.proc is not None and self.daemon.proc.poll() is None:
            self.mark()
        code = self.daemon.stop()
        if code != 0:
            raise AssertionError(f"daemon exited {code} on SIGTERM:\n{self.daemon.log()[-3000:]}")

    def start(self) -> None:
        """Start after taking the marks (the notification mark of the last stop stays)."""
        notification_mark = self.notification_mark
        self.mark()
        self.notification_mark = notification_mark
        self.daemon.start()
        assert self.daemon.proc is not None
        self.started.append(self.daemon.proc.pid)

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- what happened since the mark

    def requests_since(self, **filters: Any) -> list[RequestRecord]:
        return self.portal.requests(after_id=self.request_mark, **filters)

    def posts_since(self) -> list[RequestRecord]:
        """The calls that issue licenses (the current-license checks left out)."""
        return [r for r in self.requests_since() if r.method != "GET" and r.path != QUERY]

    def log_since(self) -> str:
        return self.daemon.log()[self.log_mark :]

    def wait_log(self, needle: str, timeout: float = SETTLE) -> None:
        self.daemon.wait_until(lambda: needle in self.log_since(), timeout, what=f"log line {needle!r}")

    def wait_settled(self) -> None:
        """Wait until the coordinator's start-up work ran: the portal check and the first tenant check."""
        self.wait_log("tenant check finished")
        self.wait_log("current licenses checked on the portal")

    # -- ctl

    def notifications(self) -> list[dict[str, Any]]:
        notes: list[dict[str, Any]] = self.daemon.ctl_json("notifications")
        return notes

    def new_notifications(self) -> list[dict[str, Any]]:
        return sorted(
            (n for n in self.notifications() if n["id"] > self.notification_mark), key=lambda n: n["id"]
        )

    def license(self) -> dict[str, Any]:
        info: dict[str, Any] = self.daemon.ctl_json("license", "info")
        return info

    def tenant(self) -> dict[str, Any]:
        return self.daemon.tenant_state(TENANT)

    def wait_state(self, state: str, timeout: float = SETTLE) -> dict[str, Any]:
        found: dict[str, Any] = self.daemon.wait_until(
            lambda: (t := self.tenant())["state"] == state and t,
            timeout,
            what=f"tenant {TENANT} {state}",
        )
        return found

    def computer_id(self) -> str:
        return str(self.daemon.ctl_json("identity")["computer_id"])


@pytest.fixture
def installations(tmp_path: Path) -> Iterator[Callable[..., Installation]]:
    """Make activated installations: ``installations(portal, orders=2, config={...}, name=...)``."""
    made: list[Installation] = []

    def make(
        portal: PortalProcess,
        *,
        orders: int = 2,
        config: Mapping[str, Any] | None = None,
        name: str = "node-1",
    ) -> Installation:
        root = tmp_path / f"install-{len(made)}"
        root.mkdir()
        build_file = root / "build"
        build_file.write_text(BUILD + "\n")
        settings = deep_merge(portal_config(portal), dict(config or {}))
        daemon = DaemonProcess(root, name, settings)
        # The harness defaults to product.build; this installation reads its build from a file.
        daemon.config["product"] = {k: v for k, v in daemon.config["product"].items() if k != "build"} | {
            "build_file": str(build_file)
        }
        daemon.write_config()
        key = f"KEY-{uuid.uuid4().hex[:12].upper()}"
        order_ids = [portal.add_order(key, TENANT, product=f"Paragon Print {i}") for i in range(orders)]
        inst = Installation(daemon, portal, key, order_ids, build_file)
        made.append(inst)
        inst.start()
        # The first tenant check (splay 0s) tries the unlicensed tenant; let it finish first so it
        # cannot reactivate concurrently with the activation below.
        inst.wait_log("tenant check finished")
        inst.daemon.ctl("license", "activate", "--key", key, check=True)
        lic = inst.license()
        if sorted(o["order_id"] for o in lic["orders"]) != sorted(order_ids) or lic["build"] != BUILD:
            raise AssertionError(f"activation did not cover the orders {order_ids} for {BUILD}: {lic}")
        inst.wait_state("active")
        return inst

    yield make
    for inst in made:
        try:
            inst.daemon.stop()
        except Exception:
            inst.daemon.kill()
    for inst in made:
        if "Traceback" in inst.daemon.log():
            raise AssertionError(f"{inst.daemon.name} logged a traceback:\n{inst.daemon.log()[-4000:]}")
