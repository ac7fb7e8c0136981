"""Configuration that cannot break the daemon: ranges and what `run` needs from the file system.

Every case was once accepted by `check-config` and then broke the running daemon
(a zero period spinning the CPU, a zero limit refusing every call, a traceback
at start). Each is now refused the same way by `check-config`, by `run` and by a
SIGHUP reload: exit 2 (or the old configuration kept), one line naming the key.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.daemon import DaemonProcess, toml

CLI = Path(sys.executable).parent / "paragon-licensed"
UNPRIVILEGED = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def run_cli(*args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the daemon's CLI; unprivileged: as root without the right to ignore file modes."""
    env = {k: v for k, v in os.environ.items() if k != "PARAGON_LICENSED_CONFIG"}
    prefix = UNPRIVILEGED if unprivileged and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, str(CLI), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def base(tmp_path: Path) -> dict[str, object]:
    """A configuration that starts: its own state folder and socket under tmp_path."""
    return {
        "paths": {"state_dir": str(tmp_path / "state")},
        "control": {"socket": str(tmp_path / "run" / "io.paragon.License")},
        "identity": {"use_dbus": False},
    }


def merge(config: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    out = dict(config)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}  # type: ignore[dict-item]
        else:
            out[key] = value
    return out


def refused(path: Path, *, unprivileged: bool = False) -> tuple[list[str], list[str]]:
    """The problem lines of check-config and of run; both must exit 2 without a traceback."""
    checked = run_cli("check-config", "--config", str(path), unprivileged=unprivileged)
    assert checked.returncode == 2, checked
    started = run_cli("run", "--config", str(path), unprivileged=unprivileged)
    assert started.returncode == 2, started
    for result in (checked, started):
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stdout == ""
    return checked.stderr.splitlines(), started.stderr.splitlines()


# -- row 8: numbers and durations out of range, tenant IDs

RANGE_CASES: dict[str, tuple[dict[str, object], str]] = {
    "tenant_check.interval": (
        {"tenant_check": {"interval": "0s"}},
        "tenant_check.interval: expected a duration from 1m to 365d, found 0s",
    ),
    "cluster.heartbeat": (
        {"cluster": {"heartbeat": "0s"}},
        "cluster.heartbeat: expected a duration from 0.1s to 1m, found 0s",
    ),
    "control.max_message": (
        {"control": {"max_message": 0}},
        "control.max_message: expected a number from 4096 to 67108864, found 0",
    ),
    "control.idle_timeout": (
        {"control": {"idle_timeout": "0s"}},
        "control.idle_timeout: expected a duration from 1s to 1d, found 0s",
    ),
    "portal.timeout": (
        {"portal": {"timeout": "0s"}},
        "portal.timeout: expected a duration from 1s to 10m, found 0s",
    ),
    "portal.timeout-400-digits": (
        {"portal": {"timeout": "9" * 400 + "s"}},
        'portal.timeout: expected a duration like "90s", "15m", "2h" or "2d", found "' + "9" * 400 + 's"',
    ),
    "mail.smtp_port": (
        {"mail": {"smtp_port": 70000}},
        "mail.smtp_port: expected a number from 1 to 65535, found 70000",
    ),
    "reactivation.retry_jitter": (
        {"reactivation": {"retry_jitter": 5.0}},
        "reactivation.retry_jitter: expected a number from 0 to 1, found 5",
    ),
    "tenant_check.breaker_failures": (
        {"tenant_check": {"breaker_failures": 0}},
        "tenant_check.breaker_failures: expected a number from 1 to 1000, found 0",
    ),
    "tenant-id-newline": (
        {"tenants": [{"id": "acme\n"}]},
        "tenants[0].id: expected a tenant ID of letters, digits, '.', '_' and '-' (up to 128, "
        "not starting with '.', '_' or '-'), found \"acme\\n\"",
    ),
    "tenant-id-space": (
        {"tenants": [{"id": "acme corp"}]},
        "tenants[0].id: expected a tenant ID of letters, digits, '.', '_' and '-' (up to 128, "
        "not starting with '.', '_' or '-'), found \"acme corp\"",
    ),
    "tenant-id-dot-dot-slash": (
        {"tenants": [{"id": "../acme"}]},
        "tenants[0].id: expected a tenant ID of letters, digits, '.', '_' and '-' (up to 128, "
        "not starting with '.', '_' or '-'), found \"../acme\"",
    ),
}


@pytest.mark.parametrize("case", sorted(RANGE_CASES))
def test_out_of_range_is_refused_by_check_config_and_run(tmp_path: Path, case: str) -> None:
    extra, expected = RANGE_CASES[case]
    path = tmp_path / "paragon-licensed.toml"
    path.write_text(toml(merge(base(tmp_path), extra)))
    checked, started = refused(path)
    assert checked == [f"{path}: {expected}"]
    assert started == checked
    assert not (tmp_path / "state").exists(), "run must refuse before it creates anything"


def test_every_range_is_documented_in_the_sample_configuration() -> None:
    """Each range is on its section's "Ranges:" line of etc/paragon-licensed.toml, word for word."""
    from paragon_licensed.daemon.config import RANGES, Config, Duration, flatten, format_duration

    sample = (Path(__file__).parent.parent / "etc" / "paragon-licensed.toml").read_text()
    sections = {part.split("]", 1)[0]: part for part in sample.split("\n[")[1:]}
    defaults = flatten(Config())
    for key, low, high in RANGES:
        section, name = key.split(".")
        default = defaults[key]
        duration = isinstance(default[0] if isinstance(default, list) else default, Duration)

        def spell(value: float, duration: bool = duration) -> str:
            return format_duration(value) if duration else f"{value:g}" if value % 1 else str(int(value))

        text = " ".join(line.lstrip("# ") for line in sections[section].splitlines())
        assert f"{name} {spell(low)} to {spell(high)}" in text, key


def test_the_edges_of_every_range_are_accepted() -> None:
    from paragon_licensed.daemon.config import (
        RANGES,
        Config,
        Duration,
        flatten,
        format_duration,
        parse_config,
    )

    defaults = flatten(Config())
    related = ("cluster.", "portal.backoff", "portal.max_backoff", "mail.retry_backoff", "mail.max_retry")
    for key, low, high in RANGES:
        if key.startswith(related):
            continue  # bounded by other keys too: test_config.py covers those relations
        section, name = key.split(".")
        default = defaults[key]
        sample = default[0] if isinstance(default, list) else default
        for edge in (low, high):
            value: object = format_duration(edge) if isinstance(sample, Duration) else type(sample)(edge)
            parse_config({section: {name: [value] if isinstance(default, list) else value}})


def test_a_bad_reload_keeps_the_running_configuration(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    daemon.start()
    try:
        daemon.update_config({"tenant_check": {"interval": "0s"}, "cluster": {"heartbeat": "0s"}})
        mark = len(daemon.log())
        daemon.signal(signal.SIGHUP)
        daemon.wait_until(lambda: "reload refused" in daemon.log()[mark:], what="the reload refused")
        line = next(x for x in daemon.log()[mark:].splitlines() if "reload refused" in x)
        assert "tenant_check.interval: expected a duration from 1m to 365d, found 0s" in daemon.log()[mark:]
        assert "cluster.heartbeat" in daemon.log()[mark:], line
        assert daemon.proc is not None
        assert daemon.proc.poll() is None
        assert daemon.status()["node"] == "node-1"
    finally:
        assert daemon.stop() == 0


# -- rows 7 and 9: what `run` needs from the file system


@pytest.fixture
def file_in_the_way(tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    return blocker


def test_state_dir_is_a_file(tmp_path: Path, file_in_the_way: Path) -> None:
    path = tmp_path / "paragon-licensed.toml"
    path.write_text(toml(merge(base(tmp_path), {"paths": {"state_dir": str(file_in_the_way)}})))
    checked, started = refused(path)
    assert checked == [
        f"{path}: paths.state_dir: expected a folder the daemon can create files in, "
        f'found "{file_in_the_way}" (is not a folder)'
    ]
    assert started == checked


def test_state_dir_under_a_file(tmp_path: Path, file_in_the_way: Path) -> None:
    state = file_in_the_way / "state"
    path = tmp_path / "paragon-licensed.toml"
    path.write_text(toml(merge(base(tmp_path), {"paths": {"state_dir": str(state)}})))
    checked, started = refused(path)
    assert checked == [
        f"{path}: paths.state_dir: expected a folder the daemon can create files in, "
        f'found "{state}" ({file_in_the_way} is not a folder)'
    ]
    assert started == checked


def test_state_dir_not_writable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o555)
    state.chmod(0o555)
    path = tmp_path / "paragon-licensed.toml"
    path.write_text(toml(base(tmp_path)))
    checked, started = refused(path, unprivileged=True)
    assert checked == [
        f"{path}: paths.state_dir: expected a folder the daemon can create files in, "
        f'found "{state}" (Permission denied)'
    ]
    assert started == checked


def test_sqlite_store_under_a_file(tmp_path: Path, file_in_the_way: Path) -> None:
    store = file_in_the_way / "store.db"
    path = tmp_path / "paragon-licensed.toml"
    path.write_text(toml(merge(base(tmp_path), {"store": {"url": f"sqlite://{store}"}})))
    checked, started = refused(path)
    assert checked == [
        f"{path}: store.url: expected a folder the daemon can create files in, "
        f'found "{file_in_the_way}" (is not a folder)'
    ]
    assert started == checked


def test_socket_path_too_long(tmp_path: Path) -> None:
    socket = str(tmp_path / ("s" * 120))
    path = tmp_path / "paragon-licensed.toml"
    path.write_text(toml(merge(base(tmp_path), {"control": {"socket": socket}})))
    checked, started = refused(path)
    size = len(os.fsencode(socket))
    assert checked == [
        f"{path}: control.socket: expected a socket path of at most 107 bytes, "
        f'found "{socket}" ({size} bytes)'
    ]
    assert started == checked


def test_socket_parent_is_a_file(tmp_path: Path, file_in_the_way: Path) -> None:
    socket = str(file_in_the_way / "io.paragon.License")
    path = tmp_path / "paragon-licensed.toml"
    path.write_text(toml(merge(base(tmp_path), {"control": {"socket": socket}})))
    checked, started = refused(path)
    assert checked == [
        f"{path}: control.socket: expected a path whose folder is a folder (or can be created), "
        f'found "{socket}" ({file_in_the_way} is not a folder)'
    ]
    assert started == checked


def test_a_configuration_check_config_calls_valid_starts(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    checked = run_cli("check-config", "--config", str(daemon.config_path))
    assert checked.returncode == 0, checked.stderr
    daemon.start()
    try:
        assert daemon.status()["store_available"] is True
    finally:
        assert daemon.stop() == 0
