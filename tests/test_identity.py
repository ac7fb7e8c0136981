"""The computer ID (ARCHITECTURE.md §6): the pinned construction, its inputs from files, and the CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paragon_licensed.daemon.config import IdentityConfig
from paragon_licensed.daemon.dbus_identity import HostnamedAnswers
from paragon_licensed.daemon.identity import (
    APP_ID,
    PLACEHOLDER_UUIDS,
    Identity,
    IdentityError,
    compute_computer_id,
    identity_from,
    parse_machine_id,
    parse_product_uuid,
    read_identity,
    read_identity_sync,
)

CLI = Path(sys.executable).parent / "paragon-licensed"
MACHINE_ID = "0123456789abcdef0123456789abcdef"
PRODUCT_UUID = "12345678-9abc-def0-1234-56789abcdef0"
UUID_FORMAT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PLACEHOLDER_TEXTS = [
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "03000200-0400-0500-0006-000700080009",
]

machine_ids = st.binary(min_size=16, max_size=16).filter(lambda b: b != bytes(16))
product_uuids = st.binary(min_size=16, max_size=16).filter(lambda b: b not in PLACEHOLDER_UUIDS)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # dbus-fast runs on asyncio only


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CREDENTIALS_DIRECTORY", "DBUS_SYSTEM_BUS_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def files_config(tmp_path: Path, machine_id: str | None, product_uuid: str | None) -> IdentityConfig:
    """A config reading the given file contents (None: the file does not exist), D-Bus off."""
    machine = tmp_path / "machine-id"
    product = tmp_path / "product_uuid"
    if machine_id is not None:
        machine.write_text(machine_id)
    if product_uuid is not None:
        product.write_text(product_uuid)
    return IdentityConfig(str(machine), str(product), use_dbus=False)


def raw_variants(machine_id: str, product_uuid: str) -> list[str]:
    """Every spelling in which a raw input could leak into output."""
    out = []
    for value in (machine_id, product_uuid):
        plain = value.replace("-", "").lower()
        dashed = str(uuid.UUID(plain))
        out += [plain, dashed, plain.upper(), dashed.upper()]
    return out


# --- the construction ---------------------------------------------------------------------


def test_app_id_is_the_pinned_uuid() -> None:
    assert bytes.fromhex("8b9faf73c46c44f4ac14ec741c5f2c44") == APP_ID


@pytest.mark.parametrize(
    ("machine_id", "product_uuid", "expected"),
    [
        (MACHINE_ID, PRODUCT_UUID, "f35ce38c-977c-7551-f1a4-484860280269"),
        (MACHINE_ID, None, "340aed0b-6473-717e-ebb1-d5e7efdd84a1"),
        (
            "ffeeddccbbaa99887766554433221100",
            "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90",
            "847f283a-2a71-ef74-fbe6-16499fbe576e",
        ),
        ("ffeeddccbbaa99887766554433221100", None, "5500e783-7a54-1938-2dde-68e140f2d84d"),
        ("ffeeddccbbaa99887766554433221100", PRODUCT_UUID, "20401312-2315-bf38-c726-386c123acee2"),
    ],
)
def test_golden_vectors(machine_id: str, product_uuid: str | None, expected: str) -> None:
    product = uuid.UUID(product_uuid).bytes if product_uuid else None
    assert compute_computer_id(bytes.fromhex(machine_id), product) == expected


def test_construction_derived_independently() -> None:
    key = bytes.fromhex(MACHINE_ID)
    app_id = bytes.fromhex("8b9faf73c46c44f4ac14ec741c5f2c44")
    product = bytes.fromhex(PRODUCT_UUID.replace("-", ""))
    for msg, product_arg in ((app_id + product, product), (app_id, None)):
        h = hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]
        expected = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        assert compute_computer_id(key, product_arg) == expected


def test_compute_rejects_wrong_lengths() -> None:
    with pytest.raises(ValueError):
        compute_computer_id(b"short", None)
    with pytest.raises(ValueError):
        compute_computer_id(bytes(range(16)), b"short")


@given(machine_ids, st.none() | product_uuids)
def test_same_inputs_same_id_and_format(machine_id: bytes, product_uuid: bytes | None) -> None:
    first = compute_computer_id(machine_id, product_uuid)
    assert first == compute_computer_id(bytes(machine_id), product_uuid)
    assert UUID_FORMAT.match(first)


@given(machine_ids, machine_ids, st.none() | product_uuids)
def test_other_machine_id_other_id(a: bytes, b: bytes, product_uuid: bytes | None) -> None:
    if a != b:
        assert compute_computer_id(a, product_uuid) != compute_computer_id(b, product_uuid)


@given(machine_ids, product_uuids, product_uuids)
def test_other_product_uuid_other_id(machine_id: bytes, a: bytes, b: bytes) -> None:
    assert compute_computer_id(machine_id, a) != compute_computer_id(machine_id, None)
    if a != b:
        assert compute_computer_id(machine_id, a) != compute_computer_id(machine_id, b)


@given(machine_ids, st.sampled_from(sorted(PLACEHOLDER_UUIDS)))
def test_placeholder_is_no_uuid(machine_id: bytes, placeholder: bytes) -> None:
    answers = HostnamedAnswers(machine_id=machine_id.hex(), product_uuid=placeholder)
    identity = identity_from(IdentityConfig("/nonexistent", "/nonexistent"), answers)
    assert identity.computer_id == compute_computer_id(machine_id, None)
    assert identity.strength == "software"
    assert identity.product_uuid_source is None
    assert any("placeholder" in w for w in identity.warnings)


@given(machine_ids, product_uuids, st.sampled_from(["", " ", "\n", "\t \n"]))
def test_text_forms_parse(machine_id: bytes, product_uuid: bytes, pad: str) -> None:
    assert parse_machine_id(pad + machine_id.hex() + pad) == machine_id
    assert parse_machine_id((machine_id.hex() + "\n").encode()) == machine_id
    text = str(uuid.UUID(bytes=product_uuid))
    assert parse_product_uuid(pad + text.upper() + pad) == product_uuid
    assert parse_product_uuid(text.encode()) == product_uuid


@pytest.mark.parametrize(
    "text",
    ["", "\n", "uninitialized\n", "0123", "g" * 32, "0" * 32, MACHINE_ID + "00", PRODUCT_UUID],
)
def test_bad_machine_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_machine_id(text)


@pytest.mark.parametrize("text", ["", "1234", PRODUCT_UUID.replace("-", ""), "{" + PRODUCT_UUID + "}"])
def test_bad_product_uuids_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_product_uuid(text)


# --- reading the files --------------------------------------------------------------------


@pytest.mark.usefixtures("clean_env")
def test_hardware_identity_from_files(tmp_path: Path) -> None:
    config = files_config(tmp_path, f"  {MACHINE_ID}\n", PRODUCT_UUID.upper() + "\n")
    identity = read_identity_sync(config)
    assert identity.computer_id == "f35ce38c-977c-7551-f1a4-484860280269"
    assert identity.strength == "hardware"
    assert identity.machine_id_source == f"file {config.machine_id_file}"
    assert identity.product_uuid_source == f"file {config.product_uuid_file}"
    assert identity.warnings == ()
    assert identity.hardware_fingerprint is not None
    for raw in raw_variants(MACHINE_ID, PRODUCT_UUID):
        assert raw not in repr(identity)


@pytest.mark.anyio
@pytest.mark.usefixtures("clean_env")
async def test_async_read_matches_sync(tmp_path: Path) -> None:
    config = files_config(tmp_path, MACHINE_ID, PRODUCT_UUID)
    assert await read_identity(config) == read_identity_sync(config)


@pytest.mark.usefixtures("clean_env")
def test_fingerprints_tell_which_input_changed(tmp_path: Path) -> None:
    def read(machine_id: str, product_uuid: str) -> Identity:
        (tmp_path / "machine-id").write_text(machine_id)
        (tmp_path / "product_uuid").write_text(product_uuid)
        return read_identity_sync(
            IdentityConfig(str(tmp_path / "machine-id"), str(tmp_path / "product_uuid"), False)
        )

    base = read(MACHINE_ID, PRODUCT_UUID)
    new_os = read("ffeeddccbbaa99887766554433221100", PRODUCT_UUID)
    new_hw = read(MACHINE_ID, "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90")
    assert new_os.hardware_fingerprint == base.hardware_fingerprint
    assert new_os.machine_fingerprint != base.machine_fingerprint
    assert new_hw.machine_fingerprint == base.machine_fingerprint
    assert new_hw.hardware_fingerprint != base.hardware_fingerprint
    assert len({base.computer_id, new_os.computer_id, new_hw.computer_id}) == 3
    assert re.fullmatch(r"[0-9a-f]{8}", base.machine_fingerprint)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("  \n", "is empty"),
        ("uninitialized\n", "uninitialized"),
        ("0123456789abcdef\n", "32 hexadecimal"),
        ("0123456789abcdef0123456789abcdeg\n", "32 hexadecimal"),
        ("0" * 32 + "\n", "all zeros"),
    ],
)
@pytest.mark.usefixtures("clean_env")
def test_unusable_machine_id_is_an_error(tmp_path: Path, content: str | None, why: str) -> None:
    config = files_config(tmp_path, content, PRODUCT_UUID)
    with pytest.raises(IdentityError) as caught:
        read_identity_sync(config)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert why in message
    assert config.machine_id_file in message
    assert "systemd-machine-id-setup" in message
    assert "\n" not in message
    assert message.endswith(".")
    if content and content.strip() not in ("", "uninitialized"):
        assert content.strip() not in message


@pytest.mark.usefixtures("clean_env")
def test_machine_id_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    config = files_config(tmp_path, None, PRODUCT_UUID)
    Path(config.machine_id_file).mkdir()
    with pytest.raises(IdentityError, match="cannot be read"):
        read_identity_sync(config)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("not a uuid\n", "8-4-4-4-12"),
        *[(text + "\n", "placeholder") for text in PLACEHOLDER_TEXTS],
    ],
)
@pytest.mark.usefixtures("clean_env")
def test_no_usable_product_uuid_is_software_only(tmp_path: Path, content: str | None, why: str) -> None:
    identity = read_identity_sync(files_config(tmp_path, MACHINE_ID, content))
    assert identity.computer_id == "340aed0b-6473-717e-ebb1-d5e7efdd84a1"
    assert identity.strength == "software"
    assert identity.product_uuid_source is None
    assert identity.hardware_fingerprint is None
    assert any(why in w for w in identity.warnings)
    assert any("software only" in w for w in identity.warnings)


@pytest.mark.usefixtures("clean_env")
def test_product_uuid_that_is_a_directory_is_software_only(tmp_path: Path) -> None:
    config = files_config(tmp_path, MACHINE_ID, None)
    Path(config.product_uuid_file).mkdir()
    identity = read_identity_sync(config)
    assert identity.strength == "software"
    assert any("cannot be read" in w for w in identity.warnings)


def test_systemd_credential_comes_before_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = files_config(tmp_path, MACHINE_ID, "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90")
    (credentials / "product-uuid").write_text(PRODUCT_UUID + "\n")
    identity = read_identity_sync(config)
    assert identity.product_uuid_source == "credential product-uuid"
    assert identity.computer_id == "f35ce38c-977c-7551-f1a4-484860280269"
    (credentials / "product-uuid").write_text("")  # empty: not passed, so the file decides
    identity = read_identity_sync(config)
    assert identity.product_uuid_source == f"file {config.product_uuid_file}"
    assert identity.warnings == ()


# --- the command, end to end --------------------------------------------------------------


def run_cli(config: Path, *args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `paragon-licensed identity`; unprivileged: as root without the right to read any file.

    Dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH makes a root process obey file modes
    the way the daemon's own user does; running as user nobody instead would need an
    interpreter that nobody may execute, which a venv built from /root's Python is not.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "CREDENTIALS_"))}
    env.pop("PARAGON_LICENSED_CONFIG", None)
    prefix: list[str] = []
    if unprivileged and os.geteuid() == 0:
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    return subprocess.run(
        [*prefix, str(CLI), "identity", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=60,
        check=False,
    )


def cli_config(folder: Path, machine_id: str | None, product_uuid: str | None) -> Path:
    files_config(folder, machine_id, product_uuid)
    config = folder / "paragon-licensed.toml"
    config.write_text(
        "[identity]\n"
        'machine_id_file = "machine-id"\n'  # relative: resolved against the file's folder
        f'product_uuid_file = "{folder / "product_uuid"}"\n'
        "use_dbus = false\n"
    )
    return config


def assert_no_raw_values(result: subprocess.CompletedProcess[str], machine_id: str) -> None:
    for raw in raw_variants(machine_id, PRODUCT_UUID):
        assert raw not in result.stdout
        assert raw not in result.stderr


def test_cli_human_output(tmp_path: Path) -> None:
    result = run_cli(cli_config(tmp_path, MACHINE_ID + "\n", PRODUCT_UUID + "\n"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "computer ID        f35ce38c-977c-7551-f1a4-484860280269",
        "strength           hardware",
        f"machine-id from    file {tmp_path / 'machine-id'}",
        f"product UUID from  file {tmp_path / 'product_uuid'}",
    ]
    assert result.stderr == ""
    assert_no_raw_values(result, MACHINE_ID)


def test_cli_json_output(tmp_path: Path) -> None:
    result = run_cli(cli_config(tmp_path, MACHINE_ID, PRODUCT_UUID), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "computer_id": "f35ce38c-977c-7551-f1a4-484860280269",
        "strength": "hardware",
        "sources": {
            "machine_id": f"file {tmp_path / 'machine-id'}",
            "product_uuid": f"file {tmp_path / 'product_uuid'}",
        },
        "warnings": [],
    }
    assert_no_raw_values(result, MACHINE_ID)


@pytest.mark.parametrize("placeholder", PLACEHOLDER_TEXTS)
def test_cli_software_only_warns_and_succeeds(tmp_path: Path, placeholder: str) -> None:
    config = cli_config(tmp_path, MACHINE_ID, placeholder)
    result = run_cli(config)
    assert result.returncode == 0
    assert "strength           software only" in result.stdout
    assert "product UUID from  none" in result.stdout
    warnings = result.stderr.splitlines()
    assert warnings
    assert all(line.startswith("warning: ") for line in warnings)
    assert any("placeholder" in line for line in warnings)
    document = json.loads(run_cli(config, "--json").stdout)
    assert document["strength"] == "software"
    assert document["sources"]["product_uuid"] is None
    assert document["computer_id"] == "340aed0b-6473-717e-ebb1-d5e7efdd84a1"
    assert any("software only" in w for w in document["warnings"])


@pytest.mark.parametrize("content", [None, "", "uninitialized\n", "xyz" * 11])
@pytest.mark.parametrize("as_json", [False, True])
def test_cli_unusable_machine_id_exits_2(tmp_path: Path, content: str | None, as_json: bool) -> None:
    result = run_cli(cli_config(tmp_path, content, PRODUCT_UUID), *(["--json"] if as_json else []))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: The machine-id file ")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert_no_raw_values(result, MACHINE_ID)


def test_cli_unreadable_product_uuid(tmp_path: Path) -> None:
    config = cli_config(tmp_path, MACHINE_ID, PRODUCT_UUID)
    (tmp_path / "product_uuid").chmod(0)  # like the DMI file for the daemon's user
    result = run_cli(config, unprivileged=True)
    assert result.returncode == 0, result.stderr
    assert "strength           software only" in result.stdout
    assert "permission denied" in result.stderr
    assert "LoadCredential=product-uuid:" in result.stderr
    assert_no_raw_values(result, MACHINE_ID)
    if os.geteuid() == 0:
        assert "strength           hardware" in run_cli(config).stdout


def test_cli_unreadable_machine_id(tmp_path: Path) -> None:
    config = cli_config(tmp_path, MACHINE_ID, PRODUCT_UUID)
    (tmp_path / "machine-id").chmod(0)
    result = run_cli(config, unprivileged=True)
    assert result.returncode == 2
    assert "cannot be read (Permission denied)" in result.stderr
    assert_no_raw_values(result, MACHINE_ID)
