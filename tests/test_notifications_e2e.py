"""End to end: the notification center (`ctl notifications`, `ack`) and the event stream (`ctl watch`).

The notifications come from a real tenant check against the reference portal:
one tenant, whose stored license is signed with a key the daemon does not know,
is reactivated (info, and a state change from invalid to active); others fail
(error). `ctl watch --json` runs
as a separate process, read line by line while things happen.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.daemon import DAEMON, DaemonProcess
from support.portal import PortalProcess
from support.tenant_check import (
    check_config,
    craft,
    install,
    notifications,
    outcomes,
    payload_of,
    portal_activate,
    run_check,
    seed_refused,
)

pytest_plugins = ["support.portal", "support.tenant_check"]
pytestmark = pytest.mark.e2e


class Watcher:
    """`ctl watch --json` as a process; its lines parsed as they arrive."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.proc = subprocess.Popen(
            [DAEMON, "ctl", "--socket", daemon.socket, "watch", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.bad_lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.bad_lines.append(line)
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no such event; got {self.events!r}, exit {self.proc.poll()}")
                self._cond.wait(min(remaining, 0.5))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def watching(daemon: DaemonProcess) -> Iterator[Watcher]:
    """A watcher known to be subscribed: it has seen a tenant appear that the test created for it."""
    watcher = Watcher(daemon)
    try:
        for attempt in range(20):
            probe = f"probe-{attempt}"
            daemon.ctl("tenants", "set", probe, check=True)

            def appeared(event: dict[str, Any], probe: str = probe) -> bool:
                return bool(event["kind"] == "state_changed" and event["tenant"] == probe)

            with contextlib.suppress(TimeoutError):
                watcher.wait_for(appeared, 2.0)
                break
        else:
            raise TimeoutError("ctl watch never saw a new tenant appear")
        yield watcher
    finally:
        watcher.close()


def test_notification_center_and_watch(portal: PortalProcess, daemons: Callable[..., DaemonProcess]) -> None:
    portal.add_order("KEY-good", "good")
    daemon = daemons("node-1", check_config(portal))
    ours = seed_refused(daemon, portal, {"bad": "", "worse": ""})
    issued = portal_activate(portal, "good", "KEY-good", [ours])
    install(daemon, *craft(payload_of(portal, issued), Ed25519PrivateKey.generate()))
    daemon.start()
    assert daemon.tenant_state("good")["state"] == "invalid"

    with watching(daemon) as watcher:
        results = run_check(daemon)
        assert outcomes(results)["good"] == "reactivated"
        assert outcomes(results)["bad"] == outcomes(results)["worse"] == "failed"

        # As they happen: the new notifications and the state change.
        info = watcher.wait_for(
            lambda e: (
                e["kind"] == "notification"
                and (e["notification"] or {}).get("tenant") == "good"
                and e["notification"]["title"] == "License reactivated"
            )
        )
        assert info["tenant"] == "good"
        assert info["notification"]["severity"] == "info"
        assert info["notification"]["kind"] == "tenant_check"
        changed = watcher.wait_for(lambda e: e["kind"] == "state_changed" and e["tenant"] == "good")
        assert changed["state"] == "active"
        failure = watcher.wait_for(
            lambda e: (
                e["kind"] == "notification"
                and e["tenant"] == "bad"
                and e["notification"]["severity"] == "error"
            )
        )
        assert "integrity_mismatch" in failure["notification"]["text"]
        assert watcher.bad_lines == []

    every = notifications(daemon)
    assert every == sorted(every, key=lambda n: n["id"], reverse=True)  # newest first
    assert {"id", "at", "severity", "title", "text", "acked", "tenant"} <= set(every[0])
    assert failure["notification"] in every  # the streamed notification is the stored one
    mine = notifications(daemon, "--tenant", "bad")
    assert mine
    assert {n["tenant"] for n in mine} == {"bad"}
    assert {n["id"] for n in mine} < {n["id"] for n in every}
    unread = notifications(daemon, "--unread")
    assert {n["id"] for n in unread} == {n["id"] for n in every}  # nothing acknowledged yet

    # Acknowledge bad's notifications: --unread omits them from then on.
    ids = [str(n["id"]) for n in mine]
    acked = daemon.ctl("notifications", "ack", *ids, check=True)
    assert f"{len(ids)} notification(s) marked as read." in acked.stdout
    assert notifications(daemon, "--tenant", "bad", "--unread") == []
    assert {n["id"] for n in notifications(daemon, "--unread")} == {n["id"] for n in every} - {
        n["id"] for n in mine
    }
    assert all(n["acked"] for n in notifications(daemon, "--tenant", "bad"))
    assert not any(n["acked"] for n in notifications(daemon, "--tenant", "worse"))
    assert daemon.ctl_json("notifications", "ack", *ids) == {"acked": 0}  # already read

    # For people: a table with the tenant and whether it is new.
    table = daemon.ctl("notifications", "--unread", check=True).stdout
    header, *rows = table.splitlines()
    assert header.split() == ["ID", "WHEN", "SEVERITY", "TENANT", "READ", "MESSAGE"]
    assert any(" good " in row and "License reactivated" in row for row in rows)
    assert not any(" bad " in row for row in rows)
    assert daemon.ctl("notifications", "--tenant", "nosuch").returncode == 2
