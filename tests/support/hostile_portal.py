"""A portal that misbehaves on purpose: huge answers, answers a byte at a time, redirects, poison text.

It speaks just enough HTTP/1.1 over a raw socket to control every byte it sends,
and records each request it read (method, path, body) and, for a dripped answer,
when the client hung up. Each test picks one behaviour:

- ``huge``: 200 with a JSON content type, no length, and an endless body (capped at ``huge_bytes``);
- ``drip``: a valid answer, sent one byte every ``drip_interval`` seconds, headers included;
- ``redirect``: 302 to ``location``;
- ``poison``: a 400 problem whose title and detail carry terminal escapes and 64 KiB of text.

PYTEST_DONT_REWRITE: imported by test modules; it has no assert statements.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import Any

ESCAPES = "\x1b[2J\x1b[31mPWNED\x1b]0;title\x07\r\n\x9b1m"
CHUNK = b"x" * 65536


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    hung_up_at: float | None = None


@dataclass
class HostilePortal:
    mode: str
    location: str = ""
    drip_interval: float = 0.5
    huge_bytes: int = 1 << 30
    seen: list[Seen] = field(default_factory=list)
    sent: int = 0  # body bytes sent by the huge mode, all requests together

    def __post_init__(self) -> None:
        portal = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                portal._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        while True:
            request = _read_request(conn)
            if request is None:
                return
            self.seen.append(request)
            try:
                if not self._answer(conn, request):
                    return
            except OSError:
                request.hung_up_at = time.monotonic()
                return

    def _answer(self, conn: socket.socket, request: Seen) -> bool:
        """Send the answer of the mode; False when the connection is done."""
        if self.mode == "huge":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            while self.sent < self.huge_bytes:
                conn.sendall(CHUNK)
                self.sent += len(CHUNK)
            return False
        if self.mode == "drip":
            body = json.dumps({"code": "internal", "title": "slow", "detail": "slow"}).encode()
            answer = _response(500, "application/problem+json", body)
            for byte in answer:
                conn.sendall(bytes([byte]))
                time.sleep(self.drip_interval)
            return True
        if self.mode == "redirect":
            extra = f"Location: {self.location}\r\n"
            conn.sendall(_response(302, "text/html", b"moved", extra))
            return True
        problem: dict[str, Any] = {
            "type": "about:blank",
            "code": "subscription_ended",
            "title": ESCAPES + " ended",
            "detail": ESCAPES + "y" * 65536,
        }
        conn.sendall(_response(400, "application/problem+json", json.dumps(problem).encode()))
        return True


def _response(status: int, content_type: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _read_request(conn: socket.socket) -> Seen | None:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = conn.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return Seen(method, path, body)
