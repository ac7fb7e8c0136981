"""A small synchronous varlink client: one socket, NUL-framed JSON, no event loop."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from paragon_licensed.daemon.protocol import EXIT_UNREACHABLE, INTERFACE, VarlinkError, error_from_reply

DEFAULT_SOCKET = "/run/paragon-licensed/io.paragon.License"


class Unreachable(Exception):
    """The daemon does not answer on the socket."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class ConfigUnreadable(Exception):
    """The configuration named with --config cannot be read."""

    exit_code = 2


class Client:
    def __init__(self, path: str, timeout: float | None = 120.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as exc:
            self._sock.close()
            raise Unreachable(path, exc.strerror or str(exc)) from None
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
        try:
            self._sock.sendall(json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise Unreachable(self.path, exc.strerror or str(exc)) from None

    def _reply(self) -> tuple[dict[str, Any], bool]:
        while b"\0" not in self._buffer:
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:
                raise Unreachable(self.path, exc.strerror or str(exc)) from None
            if not chunk:
                raise Unreachable(self.path, "the daemon closed the connection")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        reply = json.loads(raw)
        if "error" in reply:
            raise error_from_reply(reply["error"], reply.get("parameters"))
        return reply.get("parameters") or {}, bool(reply.get("continues"))


def socket_path(explicit: str | None, config: str | None) -> str:
    """--socket, else $PARAGON_LICENSED_SOCKET, else the configuration's control.socket, else the default."""
    if explicit:
        return explicit
    from_env = os.environ.get("PARAGON_LICENSED_SOCKET")
    if from_env:
        return from_env
    config_file = config or os.environ.get("PARAGON_LICENSED_CONFIG")
    if config_file:
        return _socket_from_config(config_file)
    return DEFAULT_SOCKET


def _socket_from_config(path: str) -> str:
    import tomllib

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigUnreadable(f"{path}: cannot read the configuration ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigUnreadable(f"{path}: not valid TOML ({exc})") from None
    control = data.get("control")
    value = control.get("socket") if isinstance(control, dict) else None
    if not isinstance(value, str) or not value:
        return DEFAULT_SOCKET
    if not os.path.isabs(value):
        value = os.path.join(os.path.dirname(os.path.abspath(path)), value)
    return value


__all__ = ["Client", "ConfigUnreadable", "Unreachable", "VarlinkError", "socket_path"]
