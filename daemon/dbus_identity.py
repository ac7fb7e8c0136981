"""Ask systemd-hostnamed on the system bus for the machine-id and the product UUID.

Nothing here is fatal: every failure becomes a warning and the caller reads the files instead.
dbus-fast is imported only when a bus is actually asked, so a daemon with D-Bus off never loads it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from dbus_fast import Message
    from dbus_fast.aio import MessageBus

SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"
# Connect and both calls together: a bus that hangs at boot must not hang the daemon's startup.
DBUS_TIMEOUT = 1.0
# Disconnecting only closes our own socket; the bound keeps a wedged loop from blocking us.
_CLOSE_TIMEOUT = 0.5

HOSTNAMED = "org.freedesktop.hostname1"
HOSTNAMED_PATH = "/org/freedesktop/hostname1"
PEER = "org.freedesktop.DBus.Peer"
_NOT_THERE = frozenset(
    {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}
)
_FALLBACK = "reading the files instead"


def system_bus_address() -> str | None:
    """The system bus to ask, or None when this host has none (containers, no systemd)."""
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "").strip()
    if address:
        return address
    if os.path.exists(SYSTEM_BUS_SOCKET):
        return f"unix:path={SYSTEM_BUS_SOCKET}"
    return None


@dataclass
class HostnamedAnswers:
    """What hostnamed said, unvalidated; the raw values stay out of the repr."""

    machine_id: str | None = field(default=None, repr=False)
    product_uuid: bytes | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)


class _CallFailed(Exception):
    """hostnamed (or the bus on its behalf) answered with a D-Bus error."""

    def __init__(self, error_name: str) -> None:
        super().__init__(error_name)
        self.error_name = error_name


async def ask_hostnamed(address: str, timeout: float = DBUS_TIMEOUT) -> HostnamedAnswers:
    """GetMachineId and GetProductUUID(false) from hostnamed, within `timeout` seconds in all."""
    answers = HostnamedAnswers()
    with anyio.move_on_after(timeout) as scope:
        await _ask(address, answers)
    if scope.cancelled_caught:
        answers.warnings.append(
            f"no answer from systemd-hostnamed on the system bus at {address} "
            f"within {timeout:g} s; {_FALLBACK}"
        )
    return answers


async def _ask(address: str, answers: HostnamedAnswers) -> None:
    # Imported here, not at the top: see the module docstring.
    from dbus_fast import BusType
    from dbus_fast.aio import MessageBus

    bus = MessageBus(bus_address=address, bus_type=BusType.SYSTEM)
    try:
        await bus.connect()
    except Exception as exc:
        answers.warnings.append(
            f"cannot connect to the system bus at {address} ({_describe(exc)}); {_FALLBACK}"
        )
        return
    try:
        try:
            reply = await _call(bus, PEER, "GetMachineId")
            if isinstance(reply.body[0], str):
                answers.machine_id = reply.body[0]
            else:
                answers.warnings.append(
                    f"systemd-hostnamed's GetMachineId answered a non-string; {_FALLBACK}"
                )
        except _CallFailed as exc:
            if exc.error_name in _NOT_THERE:
                answers.warnings.append(
                    f"systemd-hostnamed is not on the system bus ({exc.error_name}); {_FALLBACK}"
                )
                return
            answers.warnings.append(
                f"systemd-hostnamed's GetMachineId failed ({exc.error_name}); {_FALLBACK}"
            )
        try:
            # interactive=false: a daemon has nobody to answer a polkit password prompt.
            reply = await _call(bus, HOSTNAMED, "GetProductUUID", "b", [False])
            if isinstance(reply.body[0], bytes):
                answers.product_uuid = reply.body[0]
            else:
                answers.warnings.append(
                    f"systemd-hostnamed's GetProductUUID answered a non-byte-array; {_FALLBACK}"
                )
        except _CallFailed as exc:
            answers.warnings.append(
                f"systemd-hostnamed's GetProductUUID failed ({exc.error_name}); {_FALLBACK}"
            )
    except Exception as exc:
        answers.warnings.append(f"the system bus connection failed ({_describe(exc)}); {_FALLBACK}")
    finally:
        await _close(bus)


async def _call(
    bus: MessageBus,
    interface: str,
    member: str,
    signature: str = "",
    body: list[object] | None = None,
) -> Message:
    from dbus_fast import Message, MessageType

    reply = await bus.call(
        Message(
            destination=HOSTNAMED,
            path=HOSTNAMED_PATH,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
    )
    if reply.message_type == MessageType.ERROR:
        # Only the error's name is kept: its text is the peer's free text.
        raise _CallFailed(reply.error_name or "an unnamed error")
    if not reply.body:
        raise _CallFailed("an empty reply")
    return reply


async def _close(bus: MessageBus) -> None:
    bus.disconnect()
    # Shielded so that a timed-out ask still waits for the socket to be closed, not leaked;
    # how the connection ended does not matter, it is going away either way.
    with (
        anyio.CancelScope(shield=True),
        anyio.move_on_after(_CLOSE_TIMEOUT),
        contextlib.suppress(Exception),
    ):
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
