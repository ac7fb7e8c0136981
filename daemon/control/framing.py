"""Varlink framing: JSON objects, each terminated by a NUL byte, with a size limit."""

from __future__ import annotations


class MessageTooLarge(Exception):
    """A peer sent more than the limit without ending the message."""


class FrameBuffer:
    """Collects bytes from a stream and hands out complete messages."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if self._buffer.find(0, self._scanned) < 0 and len(self._buffer) > self._limit:
            raise MessageTooLarge(f"message larger than {self._limit} bytes")

    def next(self) -> bytes | None:
        end = self._buffer.find(0, self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            return None
        if end > self._limit:
            raise MessageTooLarge(f"message larger than {self._limit} bytes")
        message = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        return message
