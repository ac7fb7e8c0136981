"""The systemd units: systemd-analyze verify and security, and what the daemon relies on.

Every unit check runs twice: on the files in the repository, and on the files the
Debian package installs (extracted from the package built by support.package, the
same one tests/test_package.py installs), so that packaging cannot change them unseen.

systemd need not be PID 1 here: `systemd-analyze verify` and
`systemd-analyze security --offline=yes` read the unit files directly. Neither is
optional, so a missing `systemd-analyze` fails these tests instead of skipping them.
"""

from __future__ import annotations

import codecs
import ctypes.util
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.package import Packages

from paragon_licensed.daemon.config import ControlConfig, IdentityConfig, PathsConfig
from paragon_licensed.daemon.identity import CREDENTIAL

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "systemd"
SERVICE = "paragon-licensed.service"
SOCKET = "paragon-licensed.socket"
SYSUSERS = UNITS / "sysusers.d" / "paragon-licensed.conf"
DOCS = ROOT / "docs" / "systemd.md"
PROGRAM = Path(sys.executable).parent / "paragon-licensed"
MAX_EXPOSURE = 2.0

pytest_plugins = ["support.package"]
# The first test with the packaged units builds the package when no earlier module did.
# With the package tests on one worker: the packaged units come from the same build.
pytestmark = [pytest.mark.timeout(1500), pytest.mark.xdist_group("debian-package")]

# Sandboxing and privilege settings: each one needs a comment line right above it
# saying why (STYLE.md point 9).
HARDENING = re.compile(
    r"^(Protect\w+|Private\w+|Restrict\w+|SystemCall\w+|CapabilityBoundingSet|"
    r"AmbientCapabilities|NoNewPrivileges|LockPersonality|MemoryDenyWriteExecute|"
    r"RemoveIPC|UMask|ProcSubset|IPAddress\w+|Device\w+|KeyringMode|User|Group|"
    r"DynamicUser|SupplementaryGroups|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|"
    r"SocketBind\w+|StateDirectoryMode|NotifyAccess)$"
)

# Warnings systemd-analyze may print about *other* units it loads while resolving
# ours (sockets.target, network-online.target, ...): distribution unit files are
# outside this project's control and differ between hosts. Any other line on stderr,
# and any line naming our units, fails the test.
UNRELATED_UNIT_NOISE = (
    re.compile(r"^/(usr/)?lib/systemd/system/[^:]+:\d*:? "),
    re.compile(r"^/etc/systemd/system/[^:]+:\d*:? "),
    re.compile(r"^/run/systemd/(system|generator[^/]*)/[^:]+:\d*:? "),
)


@dataclass(frozen=True)
class Line:
    section: str
    key: str
    value: str
    number: int
    commented: bool  # the line right above it is a comment


def parse_unit(path: Path) -> list[Line]:
    """Assignments of a unit file in order; enough of the format for these files."""
    lines: list[Line] = []
    section = ""
    previous_is_comment = False
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        text = raw.strip()
        if not text:
            previous_is_comment = False
            continue
        if text.startswith(("#", ";")):
            previous_is_comment = True
            continue
        if text.startswith("[") and text.endswith("]"):
            section = text[1:-1]
        elif "=" in text:
            key, _, value = text.partition("=")
            lines.append(Line(section, key.strip(), value.strip(), number, previous_is_comment))
        previous_is_comment = False
    return lines


def values(lines: list[Line], section: str, key: str) -> list[str]:
    return [line.value for line in lines if line.section == section and line.key == key]


def only(lines: list[Line], section: str, key: str) -> str:
    found = values(lines, section, key)
    assert len(found) == 1, f"[{section}] {key}= set {len(found)} times, expected once"
    return found[0]


def seconds(timespan: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?", timespan)
    assert match, f"unexpected time span {timespan!r}"
    factor = {"ms": 0.001, "s": 1, None: 1, "min": 60, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * factor


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze is required (Debian: apt-get install systemd)"
    return path


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def problems(stderr: str) -> list[str]:
    """stderr lines that are not allow-listed noise about unrelated system units."""
    found = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        unrelated = any(pattern.match(line) for pattern in UNRELATED_UNIT_NOISE)
        if not unrelated or "paragon" in line:
            found.append(line)
    return found


@dataclass(frozen=True)
class Units:
    directory: Path  # holds SERVICE and SOCKET
    sysusers: Path


@pytest.fixture(scope="session")
def packaged_units(packages: Packages, tmp_path_factory: pytest.TempPathFactory) -> Units:
    """The unit and sysusers.d files as the package installs them."""
    unpacked = tmp_path_factory.mktemp("packaged-units")
    result = run("dpkg-deb", "--extract", packages.current, unpacked)
    assert result.returncode == 0, result.stderr
    # debhelper 13.11 ships units in /lib/systemd/system, the same folder as
    # /usr/lib/systemd/system on Debian 12's merged /usr.
    folders = ("usr/lib/systemd/system", "lib/systemd/system")
    found = [d for d in folders if (unpacked / d / SERVICE).is_file()]
    assert found, "no unit files in the package"
    return Units(unpacked / found[0], unpacked / "usr/lib/sysusers.d/paragon-licensed.conf")


@pytest.fixture(params=["repository", "package"])
def units(request: pytest.FixtureRequest) -> Units:
    if request.param == "repository":
        return Units(UNITS, SYSUSERS)
    packaged: Units = request.getfixturevalue("packaged_units")
    return packaged


@pytest.fixture
def unit_dir(tmp_path: Path, units: Units) -> Path:
    """Copies of both units whose commands exist on this machine, as verify requires."""
    assert PROGRAM.is_file(), f"{PROGRAM} is not installed (pip install .)"
    kill = shutil.which("kill")
    assert kill, "kill(1) not found"
    service = (units.directory / SERVICE).read_text()
    assert "ExecStart=/usr/bin/paragon-licensed run\n" in service
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in service
    service = service.replace("ExecStart=/usr/bin/paragon-licensed", f"ExecStart={PROGRAM}")
    service = service.replace("ExecReload=/bin/kill", f"ExecReload={kill}")
    (tmp_path / SERVICE).write_text(service)
    shutil.copy(units.directory / SOCKET, tmp_path / SOCKET)
    return tmp_path


def verify(directory: Path) -> subprocess.CompletedProcess[str]:
    # --recursive-errors=no: the exit status covers our two units, not the distribution's.
    return run(
        systemd_analyze(),
        "verify",
        "--man=no",
        "--recursive-errors=no",
        SERVICE,
        SOCKET,
        cwd=directory,
    )


def security(directory: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    result = run(
        systemd_analyze(),
        "security",
        "--offline=yes",
        f"--threshold={int(MAX_EXPOSURE * 10)}",
        directory / SERVICE,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no exposure level in:\n{result.stdout}\n{result.stderr}"
    return result, float(match.group(1))


def documented_drop_ins() -> Iterator[tuple[str, str, str]]:
    """(unit, file name, text) of each drop-in shown in docs/systemd.md."""
    pattern = re.compile(
        r"```ini\n# /etc/systemd/system/(?P<unit>[\w.-]+)\.d/(?P<name>[\w.-]+\.conf)\n"
        r"(?P<body>.*?)```",
        re.S,
    )
    for match in pattern.finditer(DOCS.read_text()):
        yield match["unit"], match["name"], match["body"]


# --- systemd-analyze -----------------------------------------------------------


def test_units_verify_cleanly(unit_dir: Path) -> None:
    result = verify(unit_dir)
    assert problems(result.stderr) == [], result.stderr
    assert result.returncode == 0, result.stderr


def test_verify_check_catches_a_broken_unit(unit_dir: Path) -> None:
    """The stderr check above is not vacuous: a typo in our unit is reported and fails."""
    service = unit_dir / SERVICE
    service.write_text(service.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    result = verify(unit_dir)
    assert any("ProtectHom" in line for line in problems(result.stderr)), result.stderr
    assert result.returncode != 0


def test_security_exposure_at_most_2(unit_dir: Path) -> None:
    result, exposure = security(unit_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert exposure <= MAX_EXPOSURE, result.stdout
    assert problems(result.stderr) == [], result.stderr


def test_documented_drop_ins_verify_and_keep_the_score(unit_dir: Path) -> None:
    drop_ins = list(documented_drop_ins())
    assert {unit for unit, _, _ in drop_ins} == {SERVICE, SOCKET}, drop_ins
    for unit, name, body in drop_ins:
        (unit_dir / f"{unit}.d").mkdir(exist_ok=True)
        (unit_dir / f"{unit}.d" / name).write_text(body)
    result = verify(unit_dir)
    assert problems(result.stderr) == [], result.stderr
    assert result.returncode == 0, result.stderr
    result, exposure = security(unit_dir)
    assert result.returncode == 0, result.stdout
    assert exposure <= MAX_EXPOSURE


def test_sysusers_creates_the_admin_group_and_the_daemon_account(tmp_path: Path, units: Units) -> None:
    sysusers = shutil.which("systemd-sysusers")
    assert sysusers, "systemd-sysusers is required (Debian: apt-get install systemd)"
    (tmp_path / "etc").mkdir()
    result = run(sysusers, "--dry-run", f"--root={tmp_path}", units.sysusers)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "Creating group 'paragon-license'" in output, output
    assert "Creating user 'paragon-licensed'" in output, output
    assert not (tmp_path / "etc" / "passwd").exists()


# --- what the units promise -----------------------------------------------------


def test_service_lifecycle_settings(units: Units) -> None:
    unit = parse_unit(units.directory / SERVICE)
    assert only(unit, "Service", "Type") == "notify"
    assert only(unit, "Service", "NotifyAccess") == "main"
    assert only(unit, "Service", "ExecStart") == "/usr/bin/paragon-licensed run"
    assert only(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert seconds(only(unit, "Service", "WatchdogSec")) == 30
    assert only(unit, "Service", "Restart") == "on-failure"
    assert seconds(only(unit, "Service", "RestartSec")) >= 1
    # The daemon exits within 5 s of SIGTERM; the stop timeout leaves margin.
    assert seconds(only(unit, "Service", "TimeoutStopSec")) > 5
    assert values(unit, "Unit", "Requires") == [SOCKET]
    assert SOCKET in values(unit, "Unit", "After")
    assert "network-online.target" in values(unit, "Unit", "Wants")
    assert "network-online.target" in values(unit, "Unit", "After")
    assert values(unit, "Install", "WantedBy") == ["multi-user.target"]
    assert values(unit, "Install", "Also") == [SOCKET]


def test_service_directories_match_the_daemon_defaults(units: Units) -> None:
    unit = parse_unit(units.directory / SERVICE)
    assert f"/var/lib/{only(unit, 'Service', 'StateDirectory')}" == PathsConfig().state_dir
    assert only(unit, "Service", "ConfigurationDirectory") == "paragon-licensed"
    # RuntimeDirectory= would chown /run/paragon-licensed and the socket node in it to
    # the service user (systemd.exec(5)), undoing SocketGroup= of the documented drop-in.
    assert values(unit, "Service", "RuntimeDirectory") == []


def test_product_uuid_credential_has_a_fallback(units: Units) -> None:
    unit = parse_unit(units.directory / SERVICE)
    loaded = dict(v.split(":", 1) for v in values(unit, "Service", "LoadCredential"))
    assert loaded == {CREDENTIAL: IdentityConfig().product_uuid_file}
    fallback = dict(v.split(":", 1) for v in values(unit, "Service", "SetCredential"))
    assert set(fallback) == {CREDENTIAL}
    # systemd C-unescapes the value; the daemon reads whitespace as "no product UUID".
    assert codecs.decode(fallback[CREDENTIAL], "unicode_escape").strip() == ""


def test_service_runs_unprivileged_without_user_namespace(units: Units) -> None:
    unit = parse_unit(units.directory / SERVICE)
    user = only(unit, "Service", "User")
    assert user != "root"
    assert values(unit, "Service", "DynamicUser") == []
    # SO_PEERCRED authorization: a user namespace would remap every caller's uid.
    assert values(unit, "Service", "PrivateUsers") in ([], ["no"])
    sysusers = [line.split() for line in units.sysusers.read_text().splitlines() if line[:2] == "u "]
    assert [fields[1] for fields in sysusers] == [user]
    assert only(unit, "Service", "Group") == user


def test_every_hardening_line_says_why(units: Units) -> None:
    unit = parse_unit(units.directory / SERVICE)
    hardening = [line for line in unit if HARDENING.match(line.key)]
    assert len(hardening) >= 25
    bare = [f"line {line.number}: {line.key}={line.value}" for line in hardening if not line.commented]
    assert bare == []


def test_socket_settings(units: Units) -> None:
    unit = parse_unit(units.directory / SOCKET)
    assert only(unit, "Socket", "ListenStream") == ControlConfig().socket
    assert only(unit, "Socket", "SocketMode") == "0666"
    assert only(unit, "Socket", "DirectoryMode") == "0755"
    assert values(unit, "Install", "WantedBy") == ["sockets.target"]
    restrict = [body for unit_name, _, body in documented_drop_ins() if unit_name == SOCKET]
    assert restrict == ["[Socket]\nSocketMode=0660\nSocketGroup=paragon-license\n"]


def test_admin_group_matches_the_daemon_default(units: Units) -> None:
    groups = [line.split()[1] for line in units.sysusers.read_text().splitlines() if line[:2] == "g "]
    assert groups == [ControlConfig().admin_group]


# --- MemoryDenyWriteExecute=yes -----------------------------------------------------

# Installs the filter systemd 252 uses for MemoryDenyWriteExecute=yes
# (seccomp_memory_deny_write_execute() in src/shared/seccomp-util.c) and execs argv[1:]:
# mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect adding PROT_EXEC, and shmat
# with SHM_EXEC fail with EPERM. It runs in a child, never in the test process.
MDWE_EXEC = textwrap.dedent(
    """
    import ctypes, os, sys
    class Cmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
    lib = ctypes.CDLL(sys.argv[1], use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Cmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ALLOW, EPERM, MASKED_EQ = 0x7FFF0000, 0x00050000 | 1, 7
    ctx = lib.seccomp_init(ALLOW)
    for name, mask in (("mmap", 0x2 | 0x4), ("mprotect", 0x4), ("pkey_mprotect", 0x4),
                       ("shmat", 0o100000)):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        assert lib.seccomp_rule_add_array(ctx, EPERM, nr, 1, Cmp(2, MASKED_EQ, mask, mask)) == 0
    assert lib.seccomp_load(ctx) == 0
    os.execv(sys.argv[2], sys.argv[2:])
    """
)

# What the daemon does with its compiled dependencies, under that filter.
MDWE_WORKLOAD = textwrap.dedent(
    """
    import mmap, sqlite3, ssl
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        raise SystemExit("the filter is not active")
    except PermissionError:
        pass
    from cryptography.hazmat.primitives import hashes, hmac
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.bindings.openssl.binding import Binding
    Binding()
    key = Ed25519PrivateKey.generate()
    key.public_key().verify(key.sign(b"payload"), b"payload")
    mac = hmac.HMAC(bytes(16), hashes.SHA256())
    mac.update(b"x")
    mac.finalize()
    ssl.create_default_context()
    db = sqlite3.connect(":memory:")
    db.create_function("inc", 1, lambda x: x + 1)
    assert db.execute("select inc(1)").fetchone() == (2,)
    import anyio, click, dbus_fast, msgspec, psycopg, requests
    async def main():
        return await anyio.to_thread.run_sync(lambda: 42)
    assert anyio.run(main) == 42
    psycopg.pq.version()
    print("workload ok")
    """
)


def mdwe(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    libseccomp = ctypes.util.find_library("seccomp")
    assert libseccomp, "libseccomp is required (it ships with systemd: libseccomp2)"
    return run(sys.executable, "-c", MDWE_EXEC, libseccomp, *argv)


def test_memory_deny_write_execute_fits_the_daemon(tmp_path: Path) -> None:
    result = mdwe(sys.executable, "-c", MDWE_WORKLOAD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "workload ok" in result.stdout
    config = tmp_path / "empty.toml"
    config.write_text("")
    result = mdwe(PROGRAM, "check-config", "--config", config)
    assert result.returncode == 0, result.stdout + result.stderr
