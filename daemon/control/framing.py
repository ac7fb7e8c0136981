"""Varlink framing: JSON objects, each terminated by a NUL byte, with bounds on size and depth.

The size bound covers everything buffered for a connection, not only the message
being read: a client that writes complete messages behind a running call (a
`Watch` never ends) cannot make the daemon hold more than the limit for it.
"""

from __future__ import annotations

import re
from typing import Final

MAX_DEPTH: Final = 32  # our parameters nest four levels at most; the decoder recurses per level

_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET: Final = re.compile(rb"[\[\]{}]")


class MessageTooLarge(Exception):
    """A peer sent, or queued, more than the limit."""


class FrameBuffer:
    """Collects bytes from a stream and hands out complete messages."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self.limit + 1:  # one message of the limit and its NUL
            raise MessageTooLarge(f"more than {self.limit} bytes sent or queued")

    def next(self) -> bytes | None:
        end = self._buffer.find(0, self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            return None
        message = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        return message


def too_deep(message: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text nests objects and arrays deeper than ``limit``.

    Checked before decoding, which recurses once per level. Counting brackets is done
    in C; only a message with many of them is scanned, outside its strings.
    """
    if message.count(b"[") + message.count(b"{") <= limit:
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', message)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
