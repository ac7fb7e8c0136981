"""The control socket: taken from systemd (LISTEN_FDS) or bound here, never stolen.

Before binding, an existing socket is probed: if a daemon answers, this one
refuses to start; only a stale socket (nobody listening) is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass

from paragon_licensed.daemon.dirs import make_dirs

SD_LISTEN_FDS_START = 3


class SocketInUse(Exception):
    exit_code = 1


@dataclass
class ControlSocket:
    sock: socket.socket
    path: str
    owned: bool  # bound here (and so removed at exit), rather than passed by systemd


def from_systemd() -> socket.socket | None:
    """The first listening socket systemd passed, if any (sd_listen_fds semantics)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if count < 1:
        return None
    for fd in range(SD_LISTEN_FDS_START + 1, SD_LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    sock.set_inheritable(False)
    return sock


def _probe(path: str) -> bool:
    """True when something accepts connections on path."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise
    finally:
        probe.close()
    return True


def bind(path: str, backlog: int = 128) -> ControlSocket:
    passed = from_systemd()
    if passed is not None:
        return ControlSocket(passed, path, owned=False)
    directory = os.path.dirname(path) or "."
    make_dirs(directory, 0o755)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise SocketInUse(f"{path} exists and is not a socket; refusing to replace it")
        if _probe(path):
            raise SocketInUse(
                f"another paragon-licensed answers on {path}; refusing to start a second daemon"
            )
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        # Reading is open to every local user (like tailscale's LocalAPI socket);
        # changing methods check the caller's credentials on every call.
        os.chmod(path, 0o666)  # noqa: S103 - see the comment above
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return ControlSocket(sock, path, owned=True)


def remove(control: ControlSocket) -> None:
    """Remove the socket file if this process bound it (systemd owns a passed one)."""
    if control.owned:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(control.path)
