"""[metrics]: the listen address (a configuration error naming the key when wrong, a sentence and
exit 1 when the node cannot listen there) and which tenants get series of their own."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from paragon_licensed.daemon.config import ConfigError, parse_config, parse_listen

DAEMON = str(Path(sys.executable).parent / "paragon-licensed")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9477", ("127.0.0.1", 9477)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9477", ("::1", 9477)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_listen_addresses_accepted(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    "text", ["9477", ":9477", "host:", "host:port", "host:65536", "::1:9477", "[nope]:1"]
)
def test_listen_addresses_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)
    with pytest.raises(ConfigError) as caught:
        parse_config({"metrics": {"listen": text}})
    (problem,) = caught.value.problems
    assert problem.key == "metrics.listen"


def write(tmp_path: Path, metrics: str) -> Path:
    path = tmp_path / "paragon-licensed.toml"
    path.write_text(
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[control]\nsocket = "{tmp_path / "run" / "sock"}"\n'
        "[identity]\nuse_dbus = false\n"
        f"[metrics]\n{metrics}\n"
    )
    return path


def test_a_bad_listen_address_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'listen = "9477"')
    for command in ("check-config", "run"):
        result = subprocess.run(
            [DAEMON, command, "--config", str(path)], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 2, result
        assert result.stderr == (
            f'{path}: metrics.listen: expected an address like "127.0.0.1:9477" or "[::1]:9477" '
            '(HOST:PORT, port 0 to 65535), found "9477"\n'
        )


def test_a_port_in_use_stops_the_daemon_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(tmp_path, f'listen = "127.0.0.1:{port}"')
        result = subprocess.run(
            [DAEMON, "run", "--config", str(path)], capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert (
        f"cannot serve metrics on 127.0.0.1:{port} (metrics.listen): Address already in use; set "
        "metrics.listen to a free port" in result.stderr
    )
    assert not (tmp_path / "run" / "sock").exists()  # the control socket is removed again
