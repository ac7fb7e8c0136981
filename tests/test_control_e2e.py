"""End to end: the installed `paragon-licensed run`, its control socket, and its clients.

Every test talks to a real daemon process over its real Unix socket: through
`paragon-licensed ctl`, through the independent `varlink` package, and through a
raw socket for what well-behaved clients never send. Readiness, status,
watchdog and stopping are observed as systemd would: datagrams on a
NOTIFY_SOCKET the test owns.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import varlink
from support.daemon import DAEMON, DaemonProcess
from support.unprivileged import NOBODY, as_nobody, public_dir

import paragon_licensed.ctl.main
import paragon_licensed.ctl.tenants  # imported before fork: the child runs as nobody
from paragon_licensed import __version__
from paragon_licensed.interface.errors import INTERFACE_FILE

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TENANTS = {"tenants": [{"id": "default"}, {"id": "acme"}]}


# -- helpers


class Raw:
    """A raw varlink connection: NUL-terminated JSON over the socket, nothing hidden."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.buffer = b""

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, method: str, parameters: Any = None, **fields: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"method": method, **fields}
        if parameters is not None:
            message["parameters"] = parameters
        self.send(json.dumps(message).encode() + b"\0")
        return self.reply()

    def reply(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        reply: dict[str, Any] = json.loads(raw)
        return reply

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the daemon closes this connection within timeout (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def get_status(path: str) -> dict[str, Any]:
    with Raw(path) as conn:
        reply = conn.call("io.paragon.License.GetStatus")
    status: dict[str, Any] = reply["parameters"]["status"]
    return status


def raw_call_as_nobody(path: str, method: str, parameters: dict[str, Any]) -> dict[str, Any]:
    def call() -> int:
        with Raw(path) as conn:
            sys.stdout.write(json.dumps(conn.call(method, parameters)))
        return 0

    code, out, err = as_nobody(call)
    assert code == 0, err
    reply: dict[str, Any] = json.loads(out)
    return reply


def ctl_as_nobody(*args: str) -> tuple[int, str, str]:
    return as_nobody(lambda: paragon_licensed.ctl.main.main(list(args)))


def wait_for_log(daemon: DaemonProcess, text: str, timeout: float = 10.0) -> str:
    return str(daemon.wait_until(lambda: text in daemon.log() and daemon.log(), timeout=timeout, what=text))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the tests that only read; its socket is reachable by uid 65534."""
    with public_dir() as run:
        socket_path = str(run / "io.paragon.License")
        node = DaemonProcess(
            tmp_path_factory.mktemp("shared"),
            config={**TENANTS, "control": {"socket": socket_path}},
            socket=socket_path,
        )
        node.start()
        yield node
        node.stop()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Make daemons of the test's own; whatever is left running is stopped at the end."""
    made: list[DaemonProcess] = []

    def make(
        name: str = "node-1", config: dict[str, Any] | None = None, socket: str | None = None
    ) -> DaemonProcess:
        extra = dict(config or {})
        if socket is not None:
            extra = {**extra, "control": {**extra.get("control", {}), "socket": socket}}
        node = DaemonProcess(tmp_path, name, config={**TENANTS, **extra}, socket=socket)
        made.append(node)
        return node

    yield make
    for node in made:
        node.kill()


# -- readiness and status


def test_ready_and_status_notifications(daemon: DaemonProcess) -> None:
    assert daemon.notify is not None
    assert daemon.proc is not None
    ready = daemon.notify.wait_for("READY=1", timeout=1)
    assert f"MAINPID={daemon.proc.pid}" in ready.split("\n")
    lines = daemon.notify.lines()
    assert any(line.startswith("STATUS=") for line in lines)
    assert f"STATUS=serving on {daemon.socket}" in lines
    assert "STOPPING=1" not in lines


def identity_of(daemon: DaemonProcess) -> dict[str, Any]:
    result = subprocess.run(
        [DAEMON, "identity", "--config", str(daemon.config_path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    identity: dict[str, Any] = json.loads(result.stdout)
    return identity


def test_ctl_status_json(daemon: DaemonProcess) -> None:
    status = daemon.ctl_json("status")
    assert status["node"] == "node-1"
    assert UUID.match(status["computer_id"])
    assert status["computer_id"] == identity_of(daemon)["computer_id"]  # the same ID computed locally
    assert status["identity_strength"] == "hardware"
    assert status["build"] == "3.2.1"
    assert status["store_backend"] == "sqlite"
    assert status["store_available"] is True
    assert status["version"] == __version__
    assert status["deployment"] == "single_tenant"
    # Both tenants need attention (unlicensed): counted and listed.
    assert status["tenant_total"] == 2
    assert status["tenant_states"]["unlicensed"] == 2
    assert sum(status["tenant_states"].values()) == 2
    assert sorted(t["tenant"] for t in status["attention"]) == ["acme", "default"]
    assert {t["state"] for t in status["attention"]} == {"unlicensed"}
    assert status["attention_total"] == 2
    assert status["soonest_expiry"] is None
    assert [n["name"] for n in status["nodes"]] == ["node-1"]
    assert status["nodes"][0]["this_node"] is True
    # --json is accepted before the command too.
    before = json.loads(daemon.ctl("--json", "status", check=True).stdout)
    assert (before["node"], before["computer_id"], before["attention"]) == (
        status["node"],
        status["computer_id"],
        status["attention"],
    )


def test_get_status_reply_is_a_valid_wire_reply(daemon: DaemonProcess) -> None:
    """GetStatus answers pre-encoded bytes: they must decode strictly into the wire type."""
    import msgspec

    from paragon_licensed.interface import wire

    raw = Raw(daemon.socket)
    try:
        raw.send(b'{"method":"io.paragon.License.GetStatus","parameters":{}}\0')
        while b"\0" not in raw.buffer:
            raw.buffer += raw.sock.recv(65536)
        message = raw.buffer.partition(b"\0")[0]
    finally:
        raw.close()
    reply = msgspec.json.decode(message, type=dict[str, wire.GetStatusOut])["parameters"]
    assert reply.status.node == "node-1"
    assert {t.tenant for t in reply.status.attention} == {"acme", "default"}


def test_ctl_status_human(daemon: DaemonProcess) -> None:
    computer_id = daemon.status()["computer_id"]
    result = daemon.ctl("status", check=True)
    text = result.stdout
    assert result.stderr == ""
    assert re.search(r"^Node\s+node-1\b", text, re.M)
    assert re.search(rf"^Computer ID\s+{computer_id}\b", text, re.M)
    assert re.search(r"^Build\s+3\.2\.1$", text, re.M)
    assert re.search(r"^Store\s+sqlite, available$", text, re.M)
    assert re.search(rf"^Daemon\s+{re.escape(__version__)}\b", text, re.M)
    assert re.search(r"^acme\s+unlicensed\s", text, re.M)
    assert re.search(r"^default\s+unlicensed\s", text, re.M)
    assert not text.lstrip().startswith("{")


def test_ctl_identity(daemon: DaemonProcess) -> None:
    expected = identity_of(daemon)
    reply = daemon.ctl_json("identity")
    assert reply["computer_id"] == expected["computer_id"]
    assert reply["strength"] == "hardware"
    assert reply["sources"] == expected["sources"]
    human = daemon.ctl("identity", check=True).stdout
    assert re.search(rf"^Computer ID\s+{expected['computer_id']}$", human, re.M)
    assert re.search(r"^Strength\s+hardware$", human, re.M)
    raw_machine_id = Path(daemon.config["identity"]["machine_id_file"]).read_text().strip()
    raw_product_uuid = Path(daemon.config["identity"]["product_uuid_file"]).read_text().strip()
    for text in (human, json.dumps(reply), daemon.log()):
        assert raw_machine_id not in text
        assert raw_product_uuid not in text


# -- the independent varlink client


def varlink_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "varlink.cli", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_varlink_cli_get_status(daemon: DaemonProcess) -> None:
    result = varlink_cli("call", f"unix:{daemon.socket}/io.paragon.License.GetStatus")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    status = json.loads(result.stdout)["status"]
    ours = daemon.status()
    for key in ("node", "computer_id", "build", "store_backend", "version", "deployment"):
        assert status[key] == ours[key]
    assert status["attention"] == ours["attention"]


def test_varlink_cli_info_and_help(daemon: DaemonProcess) -> None:
    info = varlink_cli("info", f"unix:{daemon.socket}")
    assert info.returncode == 0, info.stderr
    assert f"Version: {__version__}" in info.stdout
    interfaces = info.stdout.split("Interfaces:", 1)[1].split()
    assert interfaces == ["org.varlink.service", "io.paragon.License"]
    described = varlink_cli("help", f"unix:{daemon.socket}/io.paragon.License")
    assert described.returncode == 0, described.stderr
    assert described.stdout.strip() == Path(INTERFACE_FILE).read_text(encoding="utf-8").strip()


def test_varlink_cli_sees_errors(daemon: DaemonProcess) -> None:
    result = varlink_cli("call", f"unix:{daemon.socket}/io.paragon.License.NoSuchMethod")
    assert "org.varlink.service.MethodNotFound" in result.stderr
    assert result.stdout == ""


def test_interface_description_is_the_shipped_file(daemon: DaemonProcess) -> None:
    shipped = Path(INTERFACE_FILE).read_text(encoding="utf-8")
    with Raw(daemon.socket) as conn:
        reply = conn.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.paragon.License"})
        description = reply["parameters"]["description"]
        assert description == shipped
        assert varlink.Interface(description).name == "io.paragon.License"
        service = conn.call(
            "org.varlink.service.GetInterfaceDescription", {"interface": "org.varlink.service"}
        )
        assert varlink.Interface(service["parameters"]["description"]).name == "org.varlink.service"
        info = conn.call("org.varlink.service.GetInfo")["parameters"]
        assert info["interfaces"] == ["org.varlink.service", "io.paragon.License"]
        assert info["version"] == __version__
        missing = conn.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.example.Nope"})
        assert missing == {
            "error": "org.varlink.service.InterfaceNotFound",
            "parameters": {"interface": "io.example.Nope"},
        }


# -- protocol errors


def test_unknown_method_and_interface(daemon: DaemonProcess) -> None:
    with Raw(daemon.socket) as conn:
        assert conn.call("io.paragon.License.NoSuchMethod", {}) == {
            "error": "org.varlink.service.MethodNotFound",
            "parameters": {"method": "io.paragon.License.NoSuchMethod"},
        }
        assert conn.call("org.varlink.service.Nope")["error"] == "org.varlink.service.MethodNotFound"
        assert conn.call("io.example.Other.Method") == {
            "error": "org.varlink.service.InterfaceNotFound",
            "parameters": {"interface": "io.example.Other"},
        }
        # An error answers the call; the connection carries on.
        assert "status" in conn.call("io.paragon.License.GetStatus")["parameters"]


@pytest.mark.parametrize(
    ("method", "parameters", "named"),
    [
        ("io.paragon.License.GetLicense", {"tenant": 5}, "tenant"),
        ("io.paragon.License.GetLicense", {"tenant": "default", "history": "yes"}, "history"),
        ("io.paragon.License.ListNotifications", {"unread_only": 1}, "unread_only"),
        ("io.paragon.License.GetStatus", {"bogus": 1}, "bogus"),
        ("io.paragon.License.GetStatus", [1, 2], "parameters"),
        ("io.paragon.License.ForgetNode", {}, "name"),
        ("io.paragon.License.AckNotifications", {"ids": ["one"]}, "ids"),
        ("org.varlink.service.GetInterfaceDescription", {"interface": 5}, "interface"),
    ],
)
def test_bad_parameter_is_named(daemon: DaemonProcess, method: str, parameters: Any, named: str) -> None:
    with Raw(daemon.socket) as conn:
        reply = conn.call(method, parameters)
        assert reply == {"error": "org.varlink.service.InvalidParameter", "parameters": {"parameter": named}}
        assert "status" in conn.call("io.paragon.License.GetStatus")["parameters"]


def test_oneway_call_gets_no_reply(daemon: DaemonProcess) -> None:
    with Raw(daemon.socket) as conn:
        conn.send(b'{"method": "io.paragon.License.GetStatus", "oneway": true}\0')
        reply = conn.call("io.paragon.License.GetIdentity")
        assert "identity" in reply["parameters"]


# -- permissions


def test_reading_is_open_to_every_user(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o666
    code, out, err = ctl_as_nobody("--socket", daemon.socket, "status", "--json")
    assert code == 0, err
    assert json.loads(out)["node"] == "node-1"


def test_changing_method_refused_for_an_unprivileged_user(daemon: DaemonProcess) -> None:
    group = "paragon-license"  # the default admin_group
    reply = raw_call_as_nobody(
        daemon.socket, "io.paragon.License.SetCloudAdminEmail", {"email": "ops@example.com"}
    )
    assert reply == {
        "error": "io.paragon.License.PermissionDenied",
        "parameters": {"method": "SetCloudAdminEmail", "required_group": group},
    }
    code, out, err = ctl_as_nobody("--socket", daemon.socket, "cloud", "set-admin-email", "ops@example.com")
    assert code == 77, (out, err)
    assert out == ""
    assert f"group '{group}'" in err
    assert "Permission denied" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "permission denied method=SetCloudAdminEmail" in daemon.log()
    # Root may.
    assert daemon.ctl("cloud", "set-admin-email", "ops@example.com").returncode == 0


# -- limits: each bad client is dropped alone


class Hammer:
    """A well-behaved client calling GetStatus in a loop on one connection, counting answers."""

    def __init__(self, path: str) -> None:
        self.conn = Raw(path)
        self.answers = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self.conn.call("io.paragon.License.GetStatus")
            except Exception as exc:
                self.failures.append(repr(exc))
                return
            if "error" in reply:
                self.failures.append(str(reply))
                return
            self.answers += 1

    def wait_for_answers(self, more_than: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.answers <= more_than and not self.failures and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.answers > more_than, f"the concurrent client stalled: {self.failures}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.conn.close()
        assert self.failures == []


def test_oversized_and_garbage_messages_close_only_their_connection(daemon: DaemonProcess) -> None:
    hammer = Hammer(daemon.socket)
    try:
        hammer.wait_for_answers(10)
        with Raw(daemon.socket) as big:
            before = hammer.answers
            with contextlib.suppress(OSError):  # the daemon may hang up while we still send
                big.send(b'{"method": "io.paragon.License.GetStatus", "parameters": {"pad": "')
                big.send(b"x" * (MIB + 64 * 1024))
            assert big.closed_by_peer()
            hammer.wait_for_answers(before)
        for garbage in (b"hello, are you varlink?\0", b"[1, 2, 3]\0", b'{"parameters": {}}\0', b"\xff\xfe\0"):
            with Raw(daemon.socket) as bad:
                before = hammer.answers
                bad.send(garbage)
                assert bad.closed_by_peer(), garbage
                hammer.wait_for_answers(before)
        # Large but within the limit: a normal call, answered.
        with Raw(daemon.socket) as near:
            reply = near.call("io.paragon.License.GetStatus", {"pad": "x" * (MIB - 4096)})
            assert reply["parameters"] == {"parameter": "pad"}
        before = hammer.answers
        hammer.wait_for_answers(before + 10)
    finally:
        hammer.stop()
    log = daemon.log()
    assert "control connection closed: message too large" in log
    assert "control connection closed: not a varlink message" in log
    assert daemon.proc is not None
    assert daemon.proc.poll() is None


def test_idle_client_is_closed(spawn: Callable[..., DaemonProcess]) -> None:
    node = spawn(config={"control": {"idle_timeout": "1s"}})
    node.start()
    with Raw(node.socket) as idle, Raw(node.socket) as busy:
        assert "status" in idle.call("io.paragon.License.GetStatus")["parameters"]
        started = time.monotonic()
        answers = 0
        while time.monotonic() - started < 2.0:  # busy calls every 0.3 s and stays open
            assert "status" in busy.call("io.paragon.License.GetStatus")["parameters"]
            answers += 1
            time.sleep(0.3)
        assert answers >= 4
        assert idle.closed_by_peer(timeout=3.0)  # closed about 1 s after its call, while busy was served
        assert "status" in busy.call("io.paragon.License.GetStatus")["parameters"]
    assert "control connection closed: idle" in node.log()


def test_connections_past_the_limit_are_closed(spawn: Callable[..., DaemonProcess]) -> None:
    node = spawn(config={"control": {"max_connections": 8}})
    node.start()
    kept = [Raw(node.socket) for _ in range(8)]
    extra: list[Raw] = []
    try:
        for conn in kept:
            assert "status" in conn.call("io.paragon.License.GetStatus")["parameters"]
        extra = [Raw(node.socket) for _ in range(4)]
        for conn in extra:
            assert conn.closed_by_peer(timeout=5.0)
        for conn in kept:
            assert "status" in conn.call("io.paragon.License.GetStatus")["parameters"]
        kept.pop().close()  # a slot frees up: a new client gets in again

        def new_client_served() -> bool:
            with Raw(node.socket) as conn:
                try:
                    return "status" in conn.call("io.paragon.License.GetStatus")["parameters"]
                except (ConnectionError, OSError):
                    return False

        node.wait_until(new_client_served, timeout=5, what="a freed connection slot")
    finally:
        for conn in kept + extra:
            conn.close()
    assert "control connection refused: too many connections" in node.log()


# -- the socket's life cycle


def test_second_daemon_on_the_same_socket_refuses_to_start(spawn: Callable[..., DaemonProcess]) -> None:
    first = spawn("node-1")
    first.start()
    second = spawn("node-2", socket=first.socket)
    second.start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(20) != 0
    assert (
        f"another paragon-licensed answers on {first.socket}; refusing to start a second daemon"
        in second.log()
    )
    assert second.notify is not None
    assert "READY=1" not in second.notify.lines()
    assert stat.S_ISSOCK(os.stat(first.socket).st_mode)
    assert get_status(first.socket)["node"] == "node-1"
    assert first.ctl("status").returncode == 0


def test_stale_socket_is_removed(spawn: Callable[..., DaemonProcess]) -> None:
    node = spawn()
    node.start()
    node.kill()  # SIGKILL: no chance to clean up
    assert stat.S_ISSOCK(os.stat(node.socket).st_mode)
    node.start()
    assert get_status(node.socket)["node"] == "node-1"


def test_a_file_in_the_way_is_not_replaced(spawn: Callable[..., DaemonProcess]) -> None:
    node = spawn()
    Path(node.socket).parent.mkdir(parents=True)
    Path(node.socket).write_text("not a socket\n")
    node.start(wait=False)
    assert node.proc is not None
    assert node.proc.wait(20) == 1
    assert f"{node.socket} exists and is not a socket; refusing to replace it" in node.log()
    assert Path(node.socket).read_text() == "not a socket\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_cleanly(spawn: Callable[..., DaemonProcess], signum: int) -> None:
    node = spawn()
    node.start()
    assert node.proc is not None
    assert node.notify is not None
    assert get_status(node.socket)["node"] == "node-1"  # serving
    started = time.monotonic()
    node.signal(signum)
    assert node.proc.wait(5) == 0
    assert time.monotonic() - started < 5
    assert not os.path.exists(node.socket)
    node.notify.wait_for("STOPPING=1", timeout=2)
    assert "stopped node=node-1" in node.log()
    assert "Traceback" not in node.log()


def test_sigterm_right_after_ready_exits_cleanly(spawn: Callable[..., DaemonProcess]) -> None:
    """systemd may stop a unit the moment it reported READY=1: that stop must be clean too."""
    node = spawn()
    node.start()
    assert node.proc is not None
    node.signal(signal.SIGTERM)
    assert node.proc.wait(5) == 0, "killed by SIGTERM: the signal handler was not installed before READY=1"
    assert not os.path.exists(node.socket)


def test_sighup_reloads_the_configuration(spawn: Callable[..., DaemonProcess]) -> None:
    nobody_group = grp.getgrgid(NOBODY).gr_name
    with public_dir() as run:
        node = spawn(config={"tenants": [{"id": "default"}]}, socket=str(run / "io.paragon.License"))
        node.start()
        assert node.notify is not None
        assert ctl_as_nobody("--socket", node.socket, "cloud", "set-admin-email", "a@example.com")[0] == 77

        node.update_config(
            {
                "tenants": [{"id": "default"}, {"id": "newco", "admin_email": "admin@newco.example"}],
                "control": {"admin_group": nobody_group},  # applies at once
                "cluster": {"heartbeat": "0.3s"},  # needs a restart
            }
        )
        seen = len(node.notify.messages)
        node.signal(signal.SIGHUP)
        log = wait_for_log(node, "configuration reloaded")
        assert "these changed keys take effect after a restart keys=cluster.heartbeat" in log
        applied = re.search(r"configuration reloaded applied=(\S+)", log)
        assert applied is not None
        assert {"control.admin_group", "tenants[1].id", "tenants[1].admin_email"} <= set(
            applied[1].split(",")
        )
        node.notify.wait_for("RELOADING=1", start=seen)
        node.notify.wait_for("READY=1", start=seen)

        states = {t["tenant"]: t["state"] for t in node.tenants()}
        assert states == {"default": "unlicensed", "newco": "unlicensed"}
        code, out, err = ctl_as_nobody("--socket", node.socket, "cloud", "set-admin-email", "a@example.com")
        assert code == 0, (out, err)

        # A broken file is refused; the daemon keeps its running configuration.
        node.config_path.write_text('[control]\nmax_connections = "many"\n')
        node.signal(signal.SIGHUP)
        log = wait_for_log(node, "reload refused")
        assert (
            f"reload refused, keeping the running configuration: {node.config_path}: "
            'control.max_connections: expected an integer, found "many"'
        ) in log
        assert node.proc is not None
        assert node.proc.poll() is None
        assert {t["tenant"] for t in node.tenants()} == {"default", "newco"}


LISTEN_FDS_TRAMPOLINE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())  # exec keeps the pid, as sd_listen_fds expects
os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_socket_passed_by_systemd(spawn: Callable[..., DaemonProcess], tmp_path: Path) -> None:
    path = str(tmp_path / "passed.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(16)
        node = spawn(socket=path)
        fd = listener.fileno()
        node.start(wrapper=[sys.executable, "-c", LISTEN_FDS_TRAMPOLINE, str(fd)], pass_fds=[fd])
        assert get_status(path)["node"] == "node-1"
        assert node.ctl("status").returncode == 0
        assert node.stop() == 0
        assert stat.S_ISSOCK(os.stat(path).st_mode), "a socket systemd owns must stay"
    finally:
        listener.close()


def test_watchdog_pings(spawn: Callable[..., DaemonProcess]) -> None:
    node = spawn()
    node.start(env={"WATCHDOG_USEC": "200000"})  # a ping every 0.1 s
    assert node.notify is not None
    node.wait_until(
        lambda: node.notify is not None and node.notify.lines().count("WATCHDOG=1") >= 4, timeout=5
    )


def test_watchdog_meant_for_another_process_is_ignored(spawn: Callable[..., DaemonProcess]) -> None:
    node = spawn()
    node.start(env={"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
    time.sleep(0.4)
    assert node.notify is not None
    assert "WATCHDOG=1" not in node.notify.lines()


# -- ctl when the daemon is not there, and the monitoring check


def test_ctl_without_a_daemon(tmp_path: Path) -> None:
    missing = str(tmp_path / "run" / "io.paragon.License")
    result = subprocess.run([DAEMON, "ctl", "--socket", missing, "status"], capture_output=True, text=True)
    assert result.returncode == 69
    assert result.stdout == ""
    assert f"cannot reach paragon-licensed on {missing}" in result.stderr
    if not os.path.isdir("/run/systemd/system"):
        assert "The daemon is not running" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ctl_names_the_socket_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[control]\nsocket = "run/sock"\n')
    result = subprocess.run(
        [DAEMON, "ctl", "--config", str(config), "status"], capture_output=True, text=True
    )
    assert result.returncode == 69
    assert str(tmp_path / "run" / "sock") in result.stderr


def test_ctl_check_exit_codes(daemon: DaemonProcess, tmp_path: Path) -> None:
    result = daemon.ctl("check")
    assert result.returncode == 2
    assert result.stdout.startswith("LICENSE CRITICAL - ")
    assert "acme unlicensed" in result.stdout
    assert "default unlicensed" in result.stdout
    as_json = daemon.ctl("check", "--json")
    assert as_json.returncode == 2
    report = json.loads(as_json.stdout)
    assert (report["status"], report["exit_code"]) == ("critical", 2)
    assert daemon.ctl("check", "--tenant", "acme").returncode == 2
    assert daemon.ctl("check", "--tenant", "nobody-such").returncode == 3
    unreachable = subprocess.run(
        [DAEMON, "ctl", "--socket", str(tmp_path / "none.sock"), "check"], capture_output=True, text=True
    )
    assert unreachable.returncode == 3
    assert unreachable.stdout.startswith("LICENSE UNKNOWN - daemon unreachable on ")
