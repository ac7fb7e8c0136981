"""The computer ID's D-Bus path against a private dbus-daemon and a test-owned hostnamed.

A real systemd-hostnamed answers Peer.GetMachineId from /etc/machine-id. The test-owned one
is served by dbus-fast, which forwards Peer.GetMachineId to the bus daemon
(org.freedesktop.DBus); dbus-daemon answers from /var/lib/dbus/machine-id, else
/etc/machine-id. The tests therefore expect the bus daemon's own answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
from dbus_fast import DBusError, Message, MessageType, RequestNameReply
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusBytes
from dbus_fast.service import ServiceInterface, dbus_method

from paragon_licensed.daemon import dbus_identity
from paragon_licensed.daemon.config import IdentityConfig
from paragon_licensed.daemon.identity import SOURCE_DBUS, compute_computer_id, read_identity

CLI = Path(sys.executable).parent / "paragon-licensed"
PRODUCT_UUID = "12345678-9abc-def0-1234-56789abcdef0"
# The files hold other values than the bus, so every assertion shows which source was used.
FILE_MACHINE_ID = "ffeeddccbbaa99887766554433221100"
FILE_PRODUCT_UUID = "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"

BUS_CONFIG = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # dbus-fast runs on asyncio only


@pytest.fixture
def system_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private system-bus-like dbus-daemon; its address is exported as the system bus."""
    config = tmp_path / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=tmp_path / "system_bus_socket"))
    with (tmp_path / "dbus-daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--nosyslog", "--print-address"],
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().decode().strip()
        assert address.startswith("unix:path="), address
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
        yield address
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        if daemon.stdout is not None:
            daemon.stdout.close()


@pytest.fixture
def config(tmp_path: Path) -> IdentityConfig:
    (tmp_path / "machine-id").write_text(FILE_MACHINE_ID + "\n")
    (tmp_path / "product_uuid").write_text(FILE_PRODUCT_UUID + "\n")
    return IdentityConfig(str(tmp_path / "machine-id"), str(tmp_path / "product_uuid"), True)


class FakeHostnamed(ServiceInterface):
    """org.freedesktop.hostname1's GetProductUUID, answering what the test says."""

    def __init__(self, product_uuid: bytes, error: str = "", stall: bool = False) -> None:
        super().__init__("org.freedesktop.hostname1")
        self.product_uuid = product_uuid
        self.error = error
        self.calls: list[bool] = []
        self.release = anyio.Event()
        self.answered = anyio.Event()
        if not stall:
            self.release.set()

    @dbus_method()
    async def GetProductUUID(self, interactive: DBusBool) -> DBusBytes:
        self.calls.append(interactive)
        await self.release.wait()
        self.answered.set()
        if self.error:
            raise DBusError(self.error, "refused by the test")
        return self.product_uuid


@contextlib.asynccontextmanager
async def connected(address: str) -> AsyncIterator[MessageBus]:
    bus = await MessageBus(bus_address=address).connect()
    try:
        yield bus
    finally:
        bus.disconnect()
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


@contextlib.asynccontextmanager
async def hostnamed(address: str, fake: FakeHostnamed) -> AsyncIterator[FakeHostnamed]:
    async with connected(address) as bus:
        bus.export("/org/freedesktop/hostname1", fake)
        assert await bus.request_name(fake.name) == RequestNameReply.PRIMARY_OWNER
        yield fake


async def bus_machine_id(address: str) -> bytes:
    """What the bus daemon itself says; dbus-fast's services forward GetMachineId to it."""
    async with connected(address) as bus:
        reply = await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus.Peer",
                member="GetMachineId",
            )
        )
    assert reply.message_type == MessageType.METHOD_RETURN
    text: str = reply.body[0]
    # dbus-daemon's own order: its file first, then systemd's.
    for path in ("/var/lib/dbus/machine-id", "/etc/machine-id"):
        with contextlib.suppress(OSError):
            assert text == Path(path).read_text().strip()
            break
    return bytes.fromhex(text)


async def ping_hostnamed(address: str) -> None:
    async with connected(address) as bus:
        reply = await bus.call(
            Message(
                destination="org.freedesktop.hostname1",
                path="/org/freedesktop/hostname1",
                interface="org.freedesktop.DBus.Peer",
                member="Ping",
            )
        )
    assert reply.message_type == MessageType.METHOD_RETURN


def product(text: str) -> bytes:
    return uuid.UUID(text).bytes


@pytest.mark.anyio
async def test_both_inputs_from_hostnamed(system_bus: str, config: IdentityConfig) -> None:
    machine_id = await bus_machine_id(system_bus)
    async with hostnamed(system_bus, FakeHostnamed(product(PRODUCT_UUID))) as fake:
        identity = await read_identity(config)
    assert fake.calls == [False]  # never interactive: a daemon cannot answer a polkit prompt
    assert identity.machine_id_source == SOURCE_DBUS
    assert identity.product_uuid_source == SOURCE_DBUS
    assert identity.strength == "hardware"
    assert identity.warnings == ()
    assert identity.computer_id == compute_computer_id(machine_id, product(PRODUCT_UUID))


@pytest.mark.anyio
async def test_cli_over_dbus_prints_no_raw_values(system_bus: str, tmp_path: Path) -> None:
    machine_id = await bus_machine_id(system_bus)
    toml = tmp_path / "paragon-licensed.toml"
    toml.write_text('[identity]\nmachine_id_file = "/nonexistent"\nuse_dbus = true\n')
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": system_bus}
    env.pop("CREDENTIALS_DIRECTORY", None)
    async with hostnamed(system_bus, FakeHostnamed(product(PRODUCT_UUID))):
        results = [
            await anyio.run_process(
                [str(CLI), "identity", "--config", str(toml), *args], env=env, check=False
            )
            for args in ([], ["--json"])
        ]
    human, as_json = (r.stdout.decode() for r in results)
    assert [r.returncode for r in results] == [0, 0]
    assert f"machine-id from    {SOURCE_DBUS}" in human
    assert f"product UUID from  {SOURCE_DBUS}" in human
    document = json.loads(as_json)
    assert document["computer_id"] == compute_computer_id(machine_id, product(PRODUCT_UUID))
    assert document["sources"] == {"machine_id": SOURCE_DBUS, "product_uuid": SOURCE_DBUS}
    output = human + as_json + "".join(r.stderr.decode() for r in results)
    for raw in (machine_id.hex(), PRODUCT_UUID.replace("-", ""), PRODUCT_UUID):
        for variant in (raw, raw.upper(), str(uuid.UUID(raw))):
            assert variant not in output


@pytest.mark.anyio
async def test_access_denied_falls_back_to_the_file(system_bus: str, config: IdentityConfig) -> None:
    machine_id = await bus_machine_id(system_bus)
    fake = FakeHostnamed(product(PRODUCT_UUID), error=ACCESS_DENIED)
    async with hostnamed(system_bus, fake):
        identity = await read_identity(config)
    assert identity.machine_id_source == SOURCE_DBUS
    assert identity.product_uuid_source == f"file {config.product_uuid_file}"
    assert identity.computer_id == compute_computer_id(machine_id, product(FILE_PRODUCT_UUID))
    assert len(identity.warnings) == 1
    assert "GetProductUUID failed" in identity.warnings[0]
    assert ACCESS_DENIED in identity.warnings[0]
    assert "refused by the test" not in identity.warnings[0]  # the peer's free text stays out


@pytest.mark.anyio
async def test_placeholder_from_hostnamed_is_no_uuid(system_bus: str, config: IdentityConfig) -> None:
    machine_id = await bus_machine_id(system_bus)
    async with hostnamed(system_bus, FakeHostnamed(bytes(16))):
        identity = await read_identity(config)
    # The DMI file holds the same firmware field, so it is not consulted.
    assert identity.strength == "software"
    assert identity.product_uuid_source is None
    assert identity.computer_id == compute_computer_id(machine_id, None)
    assert any("placeholder" in w for w in identity.warnings)


@pytest.mark.anyio
async def test_malformed_answer_falls_back_to_the_file(system_bus: str, config: IdentityConfig) -> None:
    async with hostnamed(system_bus, FakeHostnamed(b"\x01\x02\x03")):
        identity = await read_identity(config)
    assert identity.product_uuid_source == f"file {config.product_uuid_file}"
    assert any("3 bytes, not 16" in w for w in identity.warnings)


@pytest.mark.anyio
async def test_no_hostnamed_on_the_bus(system_bus: str, config: IdentityConfig) -> None:
    identity = await read_identity(config)
    assert identity.machine_id_source == f"file {config.machine_id_file}"
    assert identity.product_uuid_source == f"file {config.product_uuid_file}"
    expected = compute_computer_id(bytes.fromhex(FILE_MACHINE_ID), product(FILE_PRODUCT_UUID))
    assert identity.computer_id == expected
    assert len(identity.warnings) == 1
    assert "org.freedesktop.DBus.Error.ServiceUnknown" in identity.warnings[0]


@pytest.mark.anyio
async def test_use_dbus_false_never_asks(system_bus: str, config: IdentityConfig) -> None:
    fake = FakeHostnamed(product(PRODUCT_UUID))
    async with hostnamed(system_bus, fake):
        identity = await read_identity(msgspec.structs.replace(config, use_dbus=False))
    assert fake.calls == []
    assert identity.machine_id_source == f"file {config.machine_id_file}"
    assert identity.warnings == ()


@pytest.mark.anyio
async def test_slow_hostnamed_is_bounded(system_bus: str, config: IdentityConfig) -> None:
    fake = FakeHostnamed(product(PRODUCT_UUID), stall=True)
    async with hostnamed(system_bus, fake):
        identity = await read_identity(config)
        # Let the handler answer, then make sure the answer left before the bus goes away:
        # a Ping's reply is queued behind it on the same connection.
        fake.release.set()
        await fake.answered.wait()
        await ping_hostnamed(system_bus)
    assert fake.calls == [False]
    assert identity.machine_id_source == SOURCE_DBUS  # what answered in time is kept
    assert identity.product_uuid_source == f"file {config.product_uuid_file}"
    assert any("no answer from systemd-hostnamed" in w and "within 1 s" in w for w in identity.warnings)


@pytest.mark.anyio
async def test_silent_socket_is_bounded(
    tmp_path: Path, config: IdentityConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "silent"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen()  # accepts the connection, never speaks: the handshake hangs
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={path}")
        identity = await read_identity(config)
    assert identity.machine_id_source == f"file {config.machine_id_file}"
    assert any("no answer from systemd-hostnamed" in w and "within 1 s" in w for w in identity.warnings)


@pytest.mark.anyio
async def test_unreachable_bus_address(
    tmp_path: Path, config: IdentityConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'gone'}")
    identity = await read_identity(config)
    assert identity.machine_id_source == f"file {config.machine_id_file}"
    assert any("cannot connect to the system bus" in w for w in identity.warnings)


@pytest.mark.anyio
async def test_no_system_bus_reads_files_quietly(
    tmp_path: Path, config: IdentityConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setattr(dbus_identity, "SYSTEM_BUS_SOCKET", str(tmp_path / "no-bus"))
    assert dbus_identity.system_bus_address() is None
    identity = await read_identity(config)
    assert identity.machine_id_source == f"file {config.machine_id_file}"
    assert identity.product_uuid_source == f"file {config.product_uuid_file}"
    assert identity.warnings == ()


def test_dbus_fast_is_not_loaded_when_dbus_is_off(config: IdentityConfig) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import msgspec
        from paragon_licensed.daemon.config import IdentityConfig
        from paragon_licensed.daemon.identity import read_identity_sync
        config = IdentityConfig({config.machine_id_file!r}, {config.product_uuid_file!r})
        read_identity_sync(msgspec.structs.replace(config, use_dbus=False))
        assert "dbus_fast" not in sys.modules, "dbus_fast was imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
