"""This node's computer ID (ARCHITECTURE.md §6): the pinned construction, its two inputs and their sources.

The raw machine-id and product UUID never leave this module: an Identity holds the derived
ID, the names of the sources and short one-way fingerprints, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio

from paragon_licensed.daemon import dbus_identity
from paragon_licensed.daemon.config import IdentityConfig

# Fixed forever: it is part of every installation's computer ID, so changing it would
# change every computer ID and force every license to be transferred.
APP_ID = uuid.UUID("8b9faf73-c46c-44f4-ac14-ec741c5f2c44").bytes

# Values firmware vendors ship when nobody set a real UUID: many machines share them.
PLACEHOLDER_UUIDS = frozenset(
    {bytes(16), b"\xff" * 16, uuid.UUID("03000200-0400-0500-0006-000700080009").bytes}
)

SOURCE_DBUS = "systemd-hostnamed (D-Bus)"
CREDENTIAL = "product-uuid"
_MACHINE_ID = re.compile(r"[0-9a-fA-F]{32}")
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_MAX_READ = 4096
_SETUP_HINT = (
    "run `systemd-machine-id-setup` as root, or set [identity] machine_id_file "
    "to the file that holds this system's machine-id"
)


@dataclass(frozen=True)
class Identity:
    """The computer ID and where its inputs came from; never the inputs themselves."""

    computer_id: str
    machine_id_source: str
    product_uuid_source: str | None
    strength: Literal["hardware", "software"]
    machine_fingerprint: str
    hardware_fingerprint: str | None
    warnings: tuple[str, ...] = ()


class IdentityError(Exception):
    """No computer ID can be computed: the machine-id is missing or unusable."""

    exit_code = 2


def compute_computer_id(machine_id: bytes, product_uuid: bytes | None) -> str:
    """HMAC-SHA256(machine-id, APP_ID + product UUID), first 16 bytes, formatted as a UUID."""
    if len(machine_id) != 16 or (product_uuid is not None and len(product_uuid) != 16):
        raise ValueError("machine-id and product UUID must be 16 raw bytes each")
    digest = hmac.new(machine_id, APP_ID + (product_uuid or b""), hashlib.sha256).digest()
    # The raw bytes as they are: no version or variant bits are forced into the text.
    return str(uuid.UUID(bytes=digest[:16]))


def fingerprint(kind: str, raw: bytes) -> str:
    """8 hex digits that tell a changed input from an unchanged one and reveal nothing else."""
    prefix = f"paragon-licensed/{kind}-fingerprint\0".encode()
    return hashlib.sha256(prefix + APP_ID + raw).hexdigest()[:8]


def parse_machine_id(data: bytes | str) -> bytes:
    """The 16 raw bytes of a machine-id in systemd's text form; ValueError says what is wrong."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    if text == "uninitialized":
        raise ValueError('says "uninitialized" (the system has not finished its first boot)')
    if not _MACHINE_ID.fullmatch(text):
        raise ValueError("is not 32 hexadecimal digits")
    raw = bytes.fromhex(text)
    if raw == bytes(16):
        raise ValueError("is all zeros")
    return raw


def parse_product_uuid(data: bytes | str) -> bytes:
    """The 16 raw bytes of a product UUID in 8-4-4-4-12 text (any case); ValueError if not."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    if not _UUID_TEXT.fullmatch(text):
        raise ValueError("is not a UUID in 8-4-4-4-12 form")
    return uuid.UUID(text).bytes


def is_placeholder(product_uuid: bytes) -> bool:
    return product_uuid in PLACEHOLDER_UUIDS


def _read_head(path: str) -> bytes:
    # Both inputs are a line of text; a cap keeps a mistyped path (/dev/zero) from eating memory.
    with open(path, "rb") as file:
        return file.read(_MAX_READ)


def read_machine_id_file(path: str) -> bytes:
    """The machine-id from a file, or IdentityError with one sentence naming the file."""
    try:
        data = _read_head(path)
    except FileNotFoundError:
        raise IdentityError(f"The machine-id file {path} does not exist; {_SETUP_HINT}.") from None
    except OSError as exc:
        raise IdentityError(
            f"The machine-id file {path} cannot be read ({exc.strerror or type(exc).__name__}); "
            "make it readable to this user (systemd creates it world-readable), or set "
            "[identity] machine_id_file to a readable copy of this system's machine-id."
        ) from None
    try:
        return parse_machine_id(data)
    except ValueError as exc:
        raise IdentityError(f"The machine-id file {path} {exc}; {_SETUP_HINT}.") from None


def _read_product_uuid_file(path: str) -> tuple[bytes | None, str]:
    """(raw UUID, "") or (None, what is wrong with the file); never fatal."""
    try:
        data = _read_head(path)
    except FileNotFoundError:
        return None, "does not exist"
    except PermissionError:
        return None, (
            "cannot be read (permission denied: the DMI file is root-only; the systemd unit "
            f"passes it with LoadCredential={CREDENTIAL}:/sys/class/dmi/id/product_uuid)"
        )
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        return parse_product_uuid(data), ""
    except ValueError as exc:
        return None, str(exc)


def _credential_path() -> str | None:
    """$CREDENTIALS_DIRECTORY/product-uuid when systemd passed a non-empty one."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        return None
    path = Path(directory) / CREDENTIAL
    try:
        return str(path) if path.stat().st_size > 0 else None
    except OSError:
        return None


def _product_uuid(
    config: IdentityConfig, from_dbus: bytes | None, warnings: list[str]
) -> tuple[bytes | None, str | None]:
    """The first usable product UUID and its source; each tried source that gave none warns."""

    def sources() -> Iterator[tuple[str, bytes | None, str]]:
        # Generated lazily: once a source answers, the later ones are not even read.
        if from_dbus is not None:
            if len(from_dbus) == 16:
                yield SOURCE_DBUS, from_dbus, ""
            else:
                yield SOURCE_DBUS, None, f"has {len(from_dbus)} bytes, not 16"
        credential = _credential_path()
        if credential is not None:
            yield f"credential {CREDENTIAL}", *_read_product_uuid_file(credential)
        yield f"file {config.product_uuid_file}", *_read_product_uuid_file(config.product_uuid_file)

    for source, raw, problem in sources():
        if raw is None:
            warnings.append(f"no product UUID from {source}: it {problem}")
        elif is_placeholder(raw):
            # Every later source reads the same firmware field, so looking further is pointless.
            warnings.append(f"the product UUID from {source} is a firmware placeholder; ignored")
            return None, None
        else:
            return raw, source
    return None, None


def identity_from(config: IdentityConfig, answers: dbus_identity.HostnamedAnswers | None) -> Identity:
    """Combine hostnamed's answers (if it was asked) with the configured files."""
    warnings = list(answers.warnings) if answers is not None else []
    machine_id: bytes | None = None
    machine_source = SOURCE_DBUS
    if answers is not None and answers.machine_id is not None:
        try:
            machine_id = parse_machine_id(answers.machine_id)
        except ValueError as exc:
            warnings.append(f"the machine-id from {SOURCE_DBUS} {exc}; reading the file instead")
    if machine_id is None:
        machine_id = read_machine_id_file(config.machine_id_file)
        machine_source = f"file {config.machine_id_file}"
    product_uuid, product_source = _product_uuid(
        config, answers.product_uuid if answers is not None else None, warnings
    )
    if product_uuid is None:
        warnings.append(
            "the computer ID is software only: with no usable product UUID it rests on the "
            "machine-id alone and does not change when the hardware is replaced"
        )
    return Identity(
        computer_id=compute_computer_id(machine_id, product_uuid),
        machine_id_source=machine_source,
        product_uuid_source=product_source,
        strength="hardware" if product_uuid is not None else "software",
        machine_fingerprint=fingerprint("machine-id", machine_id),
        hardware_fingerprint=fingerprint("product-uuid", product_uuid) if product_uuid is not None else None,
        warnings=tuple(warnings),
    )


def _bus_address(config: IdentityConfig) -> str | None:
    return dbus_identity.system_bus_address() if config.use_dbus else None


async def read_identity(config: IdentityConfig) -> Identity:
    """This node's identity: hostnamed first when a system bus is there, then the files."""
    address = _bus_address(config)
    answers = await dbus_identity.ask_hostnamed(address) if address is not None else None
    return await anyio.to_thread.run_sync(identity_from, config, answers)


def read_identity_sync(config: IdentityConfig) -> Identity:
    """read_identity for the command line; starts an event loop only when D-Bus is asked."""
    address = _bus_address(config)
    answers = anyio.run(dbus_identity.ask_hostnamed, address) if address is not None else None
    return identity_from(config, answers)
