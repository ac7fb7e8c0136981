"""Events for `Watch`: state changes, notifications and cluster changes, fanned out to watchers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paragon_licensed.daemon.timefmt import rfc3339
from paragon_licensed.interface import wire

_BUFFER = 256


class EventBus:
    """Each watcher gets its own bounded queue; a watcher too slow to keep up loses events,
    never the daemon its pace."""

    def __init__(self) -> None:
        self._watchers: set[MemoryObjectSendStream[wire.Event]] = set()
        self.dropped = 0

    @property
    def watched(self) -> bool:
        return bool(self._watchers)

    def publish(self, event: wire.Event) -> None:
        for send in list(self._watchers):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                self.dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._watchers.discard(send)

    def emit(
        self,
        kind: wire.EventKind,
        message: str,
        tenant: str | None = None,
        state: str | None = None,
        notification: wire.Notification | None = None,
        at: float | None = None,
    ) -> None:
        self.publish(
            wire.Event(
                at=rfc3339(at),
                kind=kind,
                message=message,
                tenant=tenant,
                state=state,
                notification=notification,
            )
        )

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[wire.Event]]:
        send, receive = anyio.create_memory_object_stream[wire.Event](_BUFFER)
        self._watchers.add(send)
        try:
            yield receive
        finally:
            self._watchers.discard(send)
            send.close()
            receive.close()
