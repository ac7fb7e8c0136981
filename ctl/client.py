"""A small synchronous varlink client: one socket, NUL-framed JSON, no event loop.

It tells a daemon that is not there (no socket, connection refused, or it closed
the connection without an answer: it stopped) from one that is busy (its listen
backlog stayed full, or it refused the connection with ConnectionLimit): the
first is `Unreachable`, the second `Busy` or the ConnectionLimit error. A full
backlog is waited out briefly with a blocking connect, not reported at once.
"""

from __future__ import annotations

# The socket module's C core: the module itself turns hundreds of constants into enums
# at import, a few milliseconds of every ctl start, and ctl needs none of them.
import _socket as socket
import errno
import json
import os
import struct
import time
from collections.abc import Iterator

from paragon_licensed.interface.errors import (
    EXIT_BUSY,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    INTERFACE,
    VarlinkError,
    error_from_reply,
)

TYPE_CHECKING = False  # typing itself costs ctl a few milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SOCKET = "/run/paragon-licensed/io.paragon.License"
DEFAULT_MAX_MESSAGE = 1024 * 1024  # the daemon's control.max_message unless the configuration says
CONNECT_PATIENCE = 10.0  # seconds a full backlog is waited out before ctl says the daemon is busy
_ABSENT = frozenset({errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR, errno.ENOTSOCK})


class Unreachable(Exception):
    """The daemon does not answer on the socket: it is not running, or listens elsewhere."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class Busy(Exception):
    """The daemon is there but cannot take this call now; trying again later may work."""

    exit_code = EXIT_BUSY

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class TooLarge(Exception):
    """A call ctl will not send: the daemon would refuse a message of this size."""

    exit_code = EXIT_USAGE

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the request is {size} bytes once encoded, more than the daemon accepts in one "
            f"message ({limit} bytes, control.max_message); nothing was sent"
        )


class ConfigUnreadable(Exception):
    """The configuration named with --config cannot be read."""

    exit_code = 2


class Client:
    def __init__(
        self, path: str, timeout: float | None = 120.0, max_message: int = DEFAULT_MAX_MESSAGE
    ) -> None:
        self.path = path
        self.max_message = max_message
        self._sock = _connect(path, CONNECT_PATIENCE)
        self._sock.settimeout(timeout)
        self._buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def call(self, method: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a method of io.paragon.License (or a full name) and return its parameters."""
        self._send(method, parameters, more=False)
        return self._reply()[0]

    def stream(self, method: str, parameters: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Call with "more" and yield every reply's parameters, the last one included."""
        self._send(method, parameters, more=True)
        while True:
            reply, continues = self._reply()
            yield reply
            if not continues:
                return

    def _send(self, method: str, parameters: dict[str, Any] | None, more: bool) -> None:
        name = method if "." in method else f"{INTERFACE}.{method}"
        message: dict[str, Any] = {"method": name, "parameters": parameters or {}}
        if more:
            message["more"] = True
        data = json.dumps(message).encode()
        if len(data) > self.max_message:
            raise TooLarge(len(data), self.max_message)
        try:
            self._sock.sendall(data + b"\0")
        except OSError as exc:
            # The daemon may have refused the connection with a reply that says why.
            self._raise_pending_error()
            raise self._lost(f"the daemon closed the connection ({exc.strerror or exc})") from None

    def _lost(self, reason: str) -> Unreachable:
        """A connection lost without an answer. A running daemon tells a caller it refuses
        (ConnectionLimit, MessageTooLarge) and never drops an admitted one mid-call: it stopped."""
        return Unreachable(self.path, f"{reason}; it stopped or restarted")

    def _raise_pending_error(self) -> None:
        try:
            self._sock.settimeout(0.5)
            while b"\0" not in self._buffer and (chunk := self._sock.recv(65536)):
                self._buffer += chunk
        except OSError:
            pass
        if b"\0" in self._buffer:
            self._reply()

    def _reply(self) -> tuple[dict[str, Any], bool]:
        while b"\0" not in self._buffer:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise Busy(self.path, "the daemon did not answer in time") from None
            except OSError as exc:
                raise self._lost(f"the connection failed ({exc.strerror or exc})") from None
            if not chunk:
                raise self._lost("the daemon closed the connection before answering")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        reply = json.loads(raw)
        if "error" in reply:
            raise error_from_reply(reply["error"], reply.get("parameters"))
        return reply.get("parameters") or {}, bool(reply.get("continues"))


def _connect(path: str, patience: float) -> socket.socket:
    """A connected socket; a full listen backlog is waited for (blocking connect with a send
    timeout, then a few retries) instead of being taken for an absent daemon."""
    deadline = time.monotonic() + patience
    pause = 0.01
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wait = max(0.05, min(1.0, deadline - time.monotonic()))
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(wait), int(wait % 1 * 1e6))
        )
        try:
            sock.connect(path)
            return sock
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc)
            if exc.errno in _ABSENT or exc.errno == errno.EACCES:
                raise Unreachable(path, reason) from None
            if time.monotonic() >= deadline:
                raise Busy(path, f"its listen queue stayed full for {patience:g} s ({reason})") from None
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


class Endpoint:
    """Where ctl finds the daemon, and why there: shown when the daemon cannot be reached.

    A plain class: a dataclass (dataclasses and inspect) or a NamedTuple (typing) would
    cost ctl milliseconds of imports at every start.
    """

    __slots__ = ("config", "max_message", "portal_url", "socket", "source")

    def __init__(
        self,
        socket: str,
        source: str,  # "--socket", "$PARAGON_LICENSED_SOCKET", "control.socket in FILE", "the default"
        max_message: int = DEFAULT_MAX_MESSAGE,
        portal_url: str = "",
        config: str | None = None,  # the configuration file read, if any
    ) -> None:
        self.socket = socket
        self.source = source
        self.max_message = max_message
        self.portal_url = portal_url
        self.config = config

    def __repr__(self) -> str:
        return f"Endpoint({self.socket!r}, {self.source!r})"


def endpoint(explicit: str | None, config: str | None) -> Endpoint:
    """--socket, else $PARAGON_LICENSED_SOCKET, else the configuration's control.socket, else the default.

    The configuration (--config, else $PARAGON_LICENSED_CONFIG) is read once, for the
    socket, the message limit and the portal's address.
    """
    config_file = config or os.environ.get("PARAGON_LICENSED_CONFIG") or None
    data = _read_config(config_file) if config_file else {}
    control = _table(data, "control")
    portal = _table(data, "portal")
    limit = control.get("max_message")
    extra: dict[str, Any] = {
        "max_message": limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_MESSAGE,
        "portal_url": portal.get("url") if isinstance(portal.get("url"), str) else "",
        "config": config_file,
    }
    if explicit:
        return Endpoint(explicit, "--socket", **extra)
    from_env = os.environ.get("PARAGON_LICENSED_SOCKET")
    if from_env:
        return Endpoint(from_env, "$PARAGON_LICENSED_SOCKET", **extra)
    value = control.get("socket")
    if config_file and isinstance(value, str) and value:
        if not os.path.isabs(value):
            value = os.path.join(os.path.dirname(os.path.abspath(config_file)), value)
        return Endpoint(value, f"control.socket in {config_file}", **extra)
    if config_file:
        return Endpoint(DEFAULT_SOCKET, f"the default ({config_file} sets no control.socket)", **extra)
    return Endpoint(DEFAULT_SOCKET, "the default", **extra)


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name)
    return table if isinstance(table, dict) else {}


def socket_path(explicit: str | None, config: str | None) -> str:
    return endpoint(explicit, config).socket


def _read_config(path: str) -> dict[str, Any]:
    import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigUnreadable(f"{path}: cannot read the configuration ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigUnreadable(f"{path}: not valid TOML ({exc})") from None


__all__ = [
    "Busy",
    "Client",
    "ConfigUnreadable",
    "Endpoint",
    "TooLarge",
    "Unreachable",
    "VarlinkError",
    "endpoint",
    "socket_path",
]
