"""Attacks an unprivileged local user can make on the control socket, for tests and benchmarks.

Each returns a function for ``support.unprivileged.Nobody``: it runs as uid 65534,
reports what it achieved as one JSON line (or a word), and holds on until stopped.

PYTEST_DONT_REWRITE: imported by test modules and benchmarks; it has no assert statements.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from support.unprivileged import wait_for_stop

MIB = 1024 * 1024
STATUS = b'{"method": "io.paragon.License.GetStatus", "parameters": {}}\0'
Attack = Callable[[Callable[[str], None]], None]


def hold_connections(path: str, count: int, then: bytes) -> Callable[[Callable[[str], None]], None]:
    """As nobody: open ``count`` connections and report how many the daemon admitted.

    Each connection first asks for the status: an admitted one gets it, a refused one
    gets a ConnectionLimit error instead, so every connection's fate is known without
    waiting for anything. Then ``then`` (a Watch call, or nothing: idle) goes on the
    admitted ones, which are held until the test stops the child.
    """

    def attack(report: Callable[[str], None]) -> None:
        socks = []
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            sock.sendall(STATUS)
            socks.append(sock)
        admitted: list[socket.socket] = []
        refused: dict[str, int] = {}
        for sock in socks:
            sock.settimeout(30)
            data = b""
            while b"\0" not in data and (chunk := sock.recv(65536)):
                data += chunk
            reply: dict[str, Any] = json.loads(data.split(b"\0")[0]) if data else {"error": "closed"}
            if "error" in reply:
                key = f"{reply['error']}:{reply.get('parameters', {}).get('scope', '')}"
                refused[key] = refused.get(key, 0) + 1
            else:
                admitted.append(sock)
                if then:
                    sock.sendall(then)
        report(json.dumps({"admitted": len(admitted), "refused": refused}))
        wait_for_stop()

    return attack


def flood(path: str, threads: int = 4) -> Attack:
    """Open and close connections in a loop (non-blocking connects), from several threads."""

    def attack(report: Callable[[str], None]) -> None:
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.connect(path)
                sock.close()

        workers = [threading.Thread(target=loop) for _ in range(threads)]
        for worker in workers:
            worker.start()
        report("flooding")
        wait_for_stop()
        stop.set()
        for worker in workers:
            worker.join()

    return attack


def stuff_watch(path: str, limit: int = 1024 * MIB) -> Attack:
    """Open a Watch, then write small complete messages into it until cut off (or ``limit``)."""

    def attack(report: Callable[[str], None]) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(b'{"method": "io.paragon.License.Watch", "parameters": {}, "more": true}\0')
        sent = 0
        sock.settimeout(10)
        with contextlib.suppress(OSError):
            while sent < limit:
                sock.sendall(STATUS * 1000)
                sent += len(STATUS) * 1000
        reply = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                reply += chunk
        report(json.dumps({"sent": sent, "reply": reply.decode(errors="replace")}))

    return attack
