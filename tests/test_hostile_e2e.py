"""End to end: a hostile local user or a hostile portal cannot take the daemon down.

Each test reproduces an attack against the real daemon: unprivileged callers run
as uid 65534 (a forked child of the test, see ``support.unprivileged``); a portal
that answers with an endless body, a byte at a time, a redirect or poisoned text
is ``support.hostile_portal``. Each asserts what the attack must not achieve:
the daemon's memory stays bounded (its peak RSS, VmHWM), root's `ctl status`
keeps answering, the stored license is unchanged, and the error is named.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.attacks import STATUS, flood, hold_connections, stuff_watch
from support.daemon import DAEMON, DaemonProcess
from support.hostile_portal import HostilePortal
from support.licenses import TENANT, DaemonFactory, RawVarlink
from support.portal import PortalProcess
from support.tenant_check import read
from support.unprivileged import Nobody, as_nobody, public_dir

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
PEAK_RSS_LIMIT = 100 * MIB
WATCH = b'{"method": "io.paragon.License.Watch", "parameters": {}, "more": true}\0'
OTHER = "other-tenant"


def peak_rss(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM line")


def alive(daemon: DaemonProcess) -> bool:
    return daemon.proc is not None and daemon.proc.poll() is None


def root_status(daemon: DaemonProcess) -> tuple[int, float]:
    """`ctl status --json` as root: exit code and seconds taken."""
    started = time.monotonic()
    result = daemon.ctl("status", "--json")
    return result.returncode, time.monotonic() - started


@pytest.fixture
def node(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon whose socket every user can reach, with one tenant."""
    with public_dir() as run:
        socket_path = str(run / "io.paragon.License")
        daemon = DaemonProcess(
            tmp_path / "nodes",
            config={"tenants": [{"id": TENANT}], "control": {"socket": socket_path}},
            socket=socket_path,
        )
        daemon.start()
        yield daemon
        daemon.stop()


# -- rows 1 and 3: connections


@pytest.mark.parametrize(
    ("per_user", "first", "admitted", "scope"),
    [
        (None, WATCH, 32, "user"),  # 300 Watch calls: the user's share
        (None, b"", 32, "user"),  # 300 idle connections
        (1000, WATCH, 256 - 32, "total"),  # a share above the total: the administrators' slots stay
    ],
    ids=["watch", "idle", "reserved-slots"],
)
def test_one_user_cannot_lock_out_the_administrators(
    node: DaemonProcess, per_user: int | None, first: bytes, admitted: int, scope: str
) -> None:
    # The attack opens its 300 connections at once: above the per-user rate (shown in
    # test_a_connection_flood_is_cut_at_the_per_user_rate), so the rate is raised here.
    node.stop()
    node.update_config(
        {"control": {"max_connections_per_user": per_user or 32, "connection_rate_per_user": 10000}}
    )
    node.start()
    attacker = Nobody(hold_connections(node.socket, 300, first))
    try:
        report = json.loads(attacker.report())
        assert report["admitted"] == admitted, report
        assert report["refused"] == {f"io.paragon.License.ConnectionLimit:{scope}": 300 - admitted}
        timings = []
        for _ in range(20):
            code, seconds = root_status(node)
            assert code == 0
            timings.append(seconds)
        # The attacker itself is told the daemon is busy (exit 75), with the limit it hit,
        # never that the daemon is not running.
        code, _, err = as_nobody(lambda: _ctl_main(["--socket", node.socket, "status", "--json"]))
        assert code == 75, err
        assert f"connection limit is reached (scope {scope}" in err
    finally:
        attacker.stop()
    assert alive(node)
    log = node.log()
    assert log.count("control connection refused: too many connections") == 1  # rate-limited
    print(f"root ctl status under {(first and 'Watch') or 'idle'} flood: p99 {max(timings) * 1000:.0f} ms")


def _ctl_main(argv: list[str]) -> int:
    from paragon_licensed.ctl.main import main

    return main(argv)


def test_a_connection_flood_is_cut_at_the_per_user_rate(node: DaemonProcess) -> None:
    """Beyond its rate (here 1/s, a burst of 2) a user's new connections are closed unanswered."""
    node.stop()
    node.update_config({"control": {"connection_rate_per_user": 1}})
    node.start()

    def burst(report: Callable[[str], None]) -> None:
        answered = 0
        for _ in range(20):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(node.socket)
                sock.settimeout(30)
                with contextlib.suppress(OSError):
                    sock.sendall(STATUS)
                    answered += bool(sock.recv(65536))
        report(json.dumps({"answered": answered, "closed": 20 - answered}))

    attacker = Nobody(burst)
    try:
        report = json.loads(attacker.report(timeout=120))
    finally:
        attacker.stop()
    assert report["answered"] >= 2, report  # the burst
    assert report["closed"] > 0, report
    assert [root_status(node)[0] for _ in range(5)] == [0] * 5  # root is not rate-limited
    assert node.log().count("control connections dropped: over the per-user rate") == 1


def test_connection_flood_does_not_make_ctl_say_not_running(node: DaemonProcess) -> None:
    flooders = [Nobody(flood(node.socket)), Nobody(flood(node.socket))]
    try:
        for flooder in flooders:
            assert flooder.report() == "flooding"
        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(lambda _: root_status(node), range(20)))
    finally:
        for flooder in flooders:
            flooder.stop()
    assert [code for code, _ in results] == [0] * 20, results
    assert alive(node)


# -- rows 2, 8, 9 and 10: messages


def test_messages_queued_behind_a_watch_are_bounded(node: DaemonProcess) -> None:
    before = peak_rss(node)
    attacker = Nobody(stuff_watch(node.socket))
    try:
        report = json.loads(attacker.report())
    finally:
        attacker.stop()
    assert report["sent"] < 64 * MIB, "the daemon kept reading the queued messages"
    if report["reply"]:  # the error arrives unless the reset beat it
        assert "io.paragon.License.MessageTooLarge" in report["reply"]
    assert root_status(node)[0] == 0
    assert peak_rss(node) <= max(before, PEAK_RSS_LIMIT), (before, peak_rss(node))
    assert "control connection closed: message too large" in node.log()
    peak = peak_rss(node) / MIB
    print(f"queued messages: cut off after {report['sent'] / MIB:.1f} MiB, peak RSS {peak:.0f} MB")


def test_deep_nesting_is_refused_without_a_traceback_or_a_flood_of_logs(node: DaemonProcess) -> None:
    deep = b'{"method": "io.paragon.License.GetStatus", "parameters": {"x": ' + b"[" * 5000 + b"]" * 5000
    deep += b"}}\0"

    def send_many() -> int:
        for _ in range(50):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(node.socket)
                sock.sendall(deep)
                sock.settimeout(10)
                if sock.recv(65536) != b"":
                    return 1  # the daemon answered instead of closing
        for _ in range(50):  # refused calls: one warning, not fifty
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(node.socket)
                sock.sendall(b'{"method": "io.paragon.License.SetCloudAdminEmail", "parameters": ')
                sock.sendall(b'{"email": "a@example.com"}}\0')
                sock.settimeout(10)
                if b"PermissionDenied" not in sock.recv(65536):
                    return 2
        return 0

    code, _, err = as_nobody(send_many)
    assert code == 0, err
    assert root_status(node)[0] == 0
    log = node.log()
    assert "Traceback" not in log
    assert "RecursionError" not in log
    assert log.count("control connection closed: not a varlink message") == 1
    assert log.count("permission denied") == 1


@pytest.mark.parametrize("ids", [[2**64], [2**63], [-1]])
def test_out_of_range_ids_are_invalid_parameters(node: DaemonProcess, ids: list[int]) -> None:
    with RawVarlink(node.socket) as raw:
        reply = raw.call("io.paragon.License.AckNotifications", {"ids": ids})
    assert reply == {"error": "org.varlink.service.InvalidParameter", "parameters": {"parameter": "ids"}}
    assert "InternalError" not in node.log()


def test_ctl_refuses_a_document_too_large_for_one_message(node: DaemonProcess, tmp_path: Path) -> None:
    document = tmp_path / "license.txt"
    document.write_text("é" * 400_000)  # 800 KB of UTF-8, 2.4 MB as escaped JSON
    result = node.ctl("license", "import", str(document))
    assert result.returncode == 2, result.stderr
    assert "nothing was sent" in result.stderr
    assert "1048576 bytes" in result.stderr
    assert "2400" in result.stderr
    assert "not running" not in result.stderr
    assert root_status(node)[0] == 0
    assert "message too large" not in node.log()


# -- rows 4 to 7: a hostile portal


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostilePortal]]:
    made: list[HostilePortal] = []

    def make(mode: str, **options: Any) -> HostilePortal:
        made.append(HostilePortal(mode, **options))
        return made[-1]

    yield make
    for portal in made:
        portal.close()


def licensed_node(
    portal: PortalProcess, daemon_factory: DaemonFactory, **portal_keys: Any
) -> tuple[DaemonProcess, dict[str, Any]]:
    """A daemon with an active license from the real portal for TENANT and OTHER."""
    portal.add_order("KEY-H", TENANT)
    portal.add_order("KEY-O", OTHER)
    keys = {"max_attempts": 2, **portal_keys}
    node = daemon_factory(portal, config={"tenants": [{"id": TENANT}, {"id": OTHER}]}, **keys)
    node.ctl("license", "activate", "--tenant", TENANT, "--key", "KEY-H", check=True)
    node.ctl("license", "activate", "--tenant", OTHER, "--key", "KEY-O", check=True)
    return node, node.ctl_json("license", "info", "--tenant", TENANT)


def point_at(node: DaemonProcess, url: str, extra: dict[str, Any] | None = None, **portal_keys: Any) -> None:
    """Reload the daemon with another portal URL (and other keys), and wait until it took effect."""
    reloads = node.log().count("configuration reloaded")
    node.update_config({"portal": {"url": url, **portal_keys}, **(extra or {})})
    node.signal(signal.SIGHUP)
    node.wait_until(lambda: node.log().count("configuration reloaded") > reloads, what="reload")


def test_an_endless_answer_is_cut_off_and_not_retried_more_than_once(
    portal: PortalProcess, daemon_factory: DaemonFactory, hostile: Callable[..., HostilePortal]
) -> None:
    node, before = licensed_node(portal, daemon_factory, max_attempts=5)
    bad = hostile("huge")
    point_at(node, bad.url)
    with RawVarlink(node.socket) as raw:
        reply = raw.call("io.paragon.License.Reactivate", {"tenant": TENANT})
    assert reply["error"] == "io.paragon.License.PortalBadAnswer", reply
    assert "1048576" in reply["parameters"]["reason"]
    assert len(bad.seen) == 2, "a bad answer is retried once, not five times"
    assert bad.sent < 64 * MIB
    result = node.ctl("license", "reactivate", "--tenant", TENANT)
    assert result.returncode == 1, result.stderr
    assert "cannot use" in result.stderr
    assert peak_rss(node) <= PEAK_RSS_LIMIT
    assert node.ctl_json("license", "info", "--tenant", TENANT) == before
    print(f"endless answer: portal sent {bad.sent / MIB:.1f} MiB, peak RSS {peak_rss(node) / MIB:.0f} MB")


def test_a_dripping_portal_is_cut_off_and_blocks_no_other_job(
    portal: PortalProcess, daemon_factory: DaemonFactory, hostile: Callable[..., HostilePortal]
) -> None:
    node, _ = licensed_node(portal, daemon_factory)
    document = node.ctl_json("license", "info", "--tenant", OTHER)
    other_file = node.root / "other.lic"
    other_file.write_text(_stored_document(node, OTHER))
    drip = hostile("drip", drip_interval=0.5)
    point_at(node, drip.url, timeout="8s", deadline="60s", max_attempts=3)

    slow = subprocess.Popen(
        [DAEMON, "ctl", "--socket", node.socket, "license", "reactivate", "--tenant", TENANT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        node.wait_until(lambda: len(drip.seen) >= 1, what="the dripping portal asked")
        # While the job waits on the portal: status answers, and another job runs to its end.
        started = time.monotonic()
        assert root_status(node)[0] == 0
        imported = node.ctl("license", "import", str(other_file))
        other_job = time.monotonic() - started
        assert imported.returncode == 0, imported.stderr
        assert slow.poll() is None, "the slow job ended before the other one was tried"
        # A reload during the attempt reaches the next one: it goes to the real portal.
        point_at(node, portal.url)
        _, err = slow.communicate(timeout=120)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.communicate()
    assert slow.returncode == 0, err
    assert node.tenant_state(TENANT)["state"] == "active"
    # Every attempt at the dripping portal was cut off at portal.timeout, not read to its end.
    node.wait_until(lambda: all(s.hung_up_at is not None for s in drip.seen), what="attempts aborted")
    assert 1 <= len(drip.seen) <= 2
    assert node.ctl_json("license", "info", "--tenant", OTHER)["license_id"] == document["license_id"]
    print(f"dripping portal: another job finished in {other_job:.2f} s while the slow one waited")


def test_a_job_past_its_callers_deadline_is_cancelled_and_recorded(
    portal: PortalProcess, daemon_factory: DaemonFactory, hostile: Callable[..., HostilePortal]
) -> None:
    node, before = licensed_node(portal, daemon_factory)
    drip = hostile("drip", drip_interval=0.5)
    point_at(node, drip.url, extra={"control": {"operation_timeout": "2s"}}, timeout="60s")
    result = node.ctl("license", "reactivate", "--tenant", TENANT)
    assert result.returncode == 1, result.stderr
    assert "did not finish within 2 s and was stopped" in result.stderr
    # Cancelled with its caller: the portal call is aborted, long before its own 60 s timeout.
    node.wait_until(lambda: len(drip.seen) == 1 and drip.seen[0].hung_up_at is not None, what="call aborted")

    def jobs(tx: Any) -> list[tuple[str, str, str]]:
        rows = tx.all("SELECT kind, state, error_name FROM jobs WHERE kind = 'reactivate'")
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    assert read(node, jobs) == [("reactivate", "failed", "io.paragon.License.OperationTimeout")]
    assert node.ctl_json("license", "info", "--tenant", TENANT) == before


def test_a_redirect_is_never_followed(
    portal: PortalProcess, daemon_factory: DaemonFactory, hostile: Callable[..., HostilePortal]
) -> None:
    node, before = licensed_node(portal, daemon_factory)
    elsewhere = hostile("poison")
    redirect = hostile("redirect", location=elsewhere.url + "/reactivations")
    point_at(node, redirect.url)
    with RawVarlink(node.socket) as raw:
        reply = raw.call("io.paragon.License.Reactivate", {"tenant": TENANT})
    assert reply["error"] == "io.paragon.License.PortalRedirected", reply
    assert reply["parameters"]["location"] == elsewhere.url + "/reactivations"
    result = node.ctl("license", "reactivate", "--tenant", TENANT)
    assert result.returncode == 1
    assert "never follows" in result.stderr
    assert elsewhere.url in result.stderr
    assert elsewhere.seen == [], "the activation key went to the host the redirect named"
    assert len(redirect.seen) == 2  # once per reactivation: a redirect is not retried
    assert node.ctl_json("license", "info", "--tenant", TENANT) == before


def test_poisoned_portal_text_is_cleaned_before_it_is_stored_or_printed(
    portal: PortalProcess, daemon_factory: DaemonFactory, hostile: Callable[..., HostilePortal]
) -> None:
    node, _ = licensed_node(portal, daemon_factory)
    point_at(node, hostile("poison").url)
    result = node.ctl("license", "reactivate", "--tenant", TENANT)
    assert result.returncode == 1
    assert "subscription_ended" in result.stderr
    history = node.ctl("license", "info", "--tenant", TENANT, "--history")
    for output in (result.stderr, history.stdout):
        assert not any(c in output for c in "\x1b\x07\x9b\r"), output[:500]
        assert "PWNED" in output
    entries = node.ctl_json("license", "info", "--tenant", TENANT, "--history")["history"]
    failed = [e for e in entries if e["outcome"] != "success"]
    assert failed
    assert all(len(e["detail"]) <= 2048 for e in failed)
    assert "\x1b" not in json.dumps(entries, ensure_ascii=False)
    assert all(len(line) < 4096 for line in node.log().splitlines())


def _stored_document(node: DaemonProcess, tenant: str) -> str:
    def document(tx: Any) -> str:
        return str(tx.scalar("SELECT document FROM licenses WHERE tenant_id = ? ORDER BY id DESC", (tenant,)))

    return read(node, document)
