"""One HTTP exchange with the License Portal, bounded in time and size, never redirected.

The standard library's ``http.client`` over one keep-alive connection per worker
thread and portal address. What a portal, or anything posing as one, can do to
an attempt is bounded: the whole exchange (connecting, sending, every byte of
the answer) ends at its deadline, because the caller aborts the socket then (a
portal dripping one byte at a time is cut off, not waited for); the answer is
read into at most ``max_response`` bytes; a redirect is reported, never
followed, so the activation key goes to the configured address only. TLS is
verified against ``portal.ca_bundle`` or the system trust store; a proxy is
taken from the environment once (``https_proxy``, ``http_proxy``, ``no_proxy``).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Final

READ_CHUNK: Final = 65536
HEADERS: Final = {"User-Agent": "paragon-licensed", "Accept": "application/json"}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class TooLarge(Exception):
    """The answer is larger than the configured maximum; the connection was dropped."""


@dataclass
class Abort:
    """Shared by an attempt's thread and its caller: the caller shuts the socket at the deadline."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sock: socket.socket | None = None
    aborted: bool = False

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.aborted:
                _shutdown(sock)

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            _shutdown(self._sock)


def _shutdown(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Transport:
    def __init__(self, ca_bundle: str, timeout: float, max_response: int) -> None:
        self.timeout = timeout
        self.max_response = max_response
        self._tls = ssl.create_default_context(cafile=ca_bundle or None)
        self._proxies = urllib.request.getproxies_environment()
        self._routes: dict[tuple[str, str], str | None] = {}  # (scheme, host) -> proxy, decided once
        self._local = threading.local()

    def exchange(self, method: str, url: str, body: bytes | None, abort: Abort) -> Reply:
        """One request and its whole answer; a stale keep-alive connection is replaced once."""
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        for fresh in (False, True):
            conn, reused = self._connection(key, fresh)
            try:
                return self._exchange(conn, method, parts, body, abort)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop(key)
                if not reused or abort.aborted:
                    raise
            except BaseException:
                self._drop(key)
                raise
        raise AssertionError("unreachable: the second try returns or raises")

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        parts: urllib.parse.SplitResult,
        body: bytes | None,
        abort: Abort,
    ) -> Reply:
        headers = dict(HEADERS, Host=parts.netloc)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if conn.sock is None:
            conn.connect()
        abort.attach(conn.sock)
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        if parts.scheme == "http" and self._proxy_for(parts.scheme, parts.hostname or ""):
            target = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_response:
            raise TooLarge(f"the answer announces {length} bytes, more than {self.max_response}")
        data = bytearray()
        while chunk := response.read(min(READ_CHUNK, self.max_response + 1 - len(data))):
            data += chunk
            if len(data) > self.max_response:
                raise TooLarge(f"the answer is larger than {self.max_response} bytes")
        if response.will_close:
            self._drop((parts.scheme, parts.hostname or "", parts.port))
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, bytes(data))

    def _connection(
        self, key: tuple[str, str, int | None], fresh: bool
    ) -> tuple[http.client.HTTPConnection, bool]:
        pool: dict[tuple[str, str, int | None], http.client.HTTPConnection]
        pool = self._local.__dict__.setdefault("pool", {})
        conn = None if fresh else pool.get(key)
        if conn is not None:
            return conn, True
        self._drop(key)
        conn = self._new_connection(*key)
        pool[key] = conn
        return conn, False

    def _new_connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        proxy = self._proxy_for(scheme, host)
        if proxy is not None:
            proxied = urllib.parse.urlsplit(proxy)
            address, proxy_port = proxied.hostname or "", proxied.port
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    address, proxy_port or 443, timeout=self.timeout, context=self._tls
                )
                conn.set_tunnel(host, port or 443)
                return conn
            return http.client.HTTPConnection(address, proxy_port or 80, timeout=self.timeout)
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy for this scheme and host (no_proxy applied), decided once per pair."""
        key = (scheme, host)
        if key not in self._routes:
            proxy = self._proxies.get(scheme)
            bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed
            self._routes[key] = None if not proxy or bypass(host, self._proxies) else proxy
        return self._routes[key]

    def _drop(self, key: tuple[str, str, int | None]) -> None:
        pool = self._local.__dict__.get("pool", {})
        conn = pool.pop(key, None)
        if conn is not None:
            conn.close()
