"""The varlink server: connections, limits, credentials, and dispatch through the method table.

Calls on one connection are answered in order. A message over the size limit (or
too much queued behind a running call), a message nested too deep, a client idle
past the timeout, or a connection past its user's share or the total is dropped
on its own, with a named error where the peer can still read one; other clients
never notice, and warnings about one caller are rate-limited.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.to_thread
import msgspec

from paragon_licensed import __version__, text
from paragon_licensed.daemon import log
from paragon_licensed.daemon.control.admission import Admission, ConnectionRate
from paragon_licensed.daemon.control.framing import MAX_DEPTH, FrameBuffer, MessageTooLarge, too_deep
from paragon_licensed.daemon.control.peer import Peer, may_change, peer_of
from paragon_licensed.daemon.store.db import StoreUnavailableError
from paragon_licensed.interface.errors import (
    INTERFACE,
    INTERFACE_FILE,
    SERVICE,
    ConnectionLimit,
    ExpectedMore,
    InterfaceNotFound,
    InternalError,
    InvalidParameter,
    MethodNotFound,
    PermissionDenied,
    StoreUnavailable,
    VarlinkError,
)
from paragon_licensed.interface.errors import MessageTooLarge as ProtocolMessageTooLarge

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon
    from paragon_licensed.daemon.control.methods import Method


class CallMessage(msgspec.Struct, frozen=True):
    method: str
    parameters: msgspec.Raw = msgspec.Raw(b"{}")
    more: bool = False
    oneway: bool = False
    upgrade: bool = False


SERVICE_DESCRIPTION = """\
# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

# The requested interface was not found.
error InterfaceNotFound (interface: string)

# The requested method was not found
error MethodNotFound (method: string)

# The interface defines the requested method, but the service does not
# implement it.
error MethodNotImplemented (method: string)

# One of the passed parameters is invalid.
error InvalidParameter (parameter: string)

# Client is denied access
error PermissionDenied ()

# Method is expected to be called with 'more' set to true, but wasn't
error ExpectedMore ()
"""

_DECODE_CALL = msgspec.json.Decoder(CallMessage)
_ENCODE = msgspec.json.Encoder()
_FIELD = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)|field `([A-Za-z_][A-Za-z0-9_]*)`")


def _parameters(call: CallMessage) -> bytes:
    raw = bytes(call.parameters)
    return b"{}" if raw.strip() == b"null" else raw


def _error_frame(error: VarlinkError) -> bytes:
    return _ENCODE.encode({"error": error.name, "parameters": error.parameters}) + b"\0"


async def _last_word(stream: anyio.abc.SocketStream, error: VarlinkError) -> None:
    """Tell a peer why it is being dropped (if it still reads, within a second), then close."""
    with anyio.move_on_after(1), contextlib.suppress(anyio.BrokenResourceError, OSError):
        await stream.send(_error_frame(error))
    await stream.aclose()


def _bad_parameter(exc: msgspec.ValidationError | msgspec.DecodeError) -> InvalidParameter:
    match = _FIELD.search(str(exc))
    name = (match.group(1) or match.group(2)) if match else "parameters"
    return InvalidParameter(parameter=name)


@dataclass
class CallContext:
    """What a handler knows about its call: the daemon, the caller, and how to stream."""

    app: Daemon
    peer: Peer
    method: str
    more: bool
    _send: Callable[[bytes], Awaitable[None]]

    async def emit(self, reply: msgspec.Struct) -> None:
        """Send an intermediate reply when the caller asked for more; otherwise drop it."""
        if self.more:
            await self._send(_ENCODE.encode({"parameters": reply, "continues": True}) + b"\0")


class ControlServer:
    def __init__(self, app: Daemon, methods: dict[str, Method]) -> None:
        self.app = app
        self.methods = methods
        self.admission = Admission(self._connection_limits)
        self.rate = ConnectionRate(lambda: float(self._limits.connection_rate_per_user))
        self.pending = 0  # accepted connections not yet admitted or refused
        self.closed_oversized = 0
        with open(INTERFACE_FILE, encoding="utf-8") as handle:
            self.description = handle.read()

    @property
    def _limits(self) -> Any:
        return self.app.config.control

    def _connection_limits(self) -> tuple[int, int, int]:
        c = self._limits
        return (
            c.max_connections,
            c.max_connections_per_user,
            min(c.reserved_connections, c.max_connections // 2),
        )

    async def serve(self, listener: anyio.abc.SocketListener) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and friends: back off instead of spinning
                    log.throttle.warning(("accept",), "control socket accept failed", reason=exc.strerror)
                    await anyio.sleep(0.1)
                    continue
                try:
                    peer = peer_of(stream.extra(anyio.abc.SocketAttribute.raw_socket))
                except OSError:
                    await stream.aclose()
                    continue
                if not Admission.is_root(peer) and not self.rate.allow(peer.uid):
                    # Over its rate: closed at once, no task, no reply, no log line each.
                    await stream.aclose()
                    if self.rate.dropped in (1, 100) or self.rate.dropped % 10000 == 0:
                        log.throttle.warning(
                            ("rate", peer.uid),
                            "control connections dropped: over the per-user rate",
                            peer=peer.describe(),
                            dropped=self.rate.dropped,
                        )
                    continue
                if self.pending >= self._limits.max_connections:
                    # A flood of connections that never get to their credentials check: shed them
                    # here, without a task each, so the accept loop keeps draining the backlog.
                    self.admission.refused += 1
                    total = self._limits.max_connections
                    await _last_word(stream, ConnectionLimit(scope="total", limit=total))
                    continue
                self.pending += 1
                tg.start_soon(self._connection, stream, peer)

    async def _admit(self, stream: anyio.abc.SocketStream, peer: Peer) -> Peer | None:
        """The caller, once it has a slot; None when refused (it was told why, and closed)."""
        try:
            admin = False
            if self.admission.needs_group_lookup(peer):
                group = self._limits.admin_group
                admin = await anyio.to_thread.run_sync(may_change, peer, group)
        finally:
            self.pending -= 1
        refusal = self.admission.admit(peer, admin)
        if refusal is None:
            return peer
        log.throttle.warning(
            ("refused", peer.uid),
            "control connection refused: too many connections",
            scope=refusal.scope,
            limit=refusal.limit,
            peer=peer.describe(),
        )
        await _last_word(stream, ConnectionLimit(scope=refusal.scope, limit=refusal.limit))
        return None

    async def _connection(self, stream: anyio.abc.SocketStream, caller: Peer) -> None:
        try:
            peer = await self._admit(stream, caller)
        except Exception as exc:  # the peer vanished before its credentials were read
            log.throttle.warning(("admission",), "control connection dropped", reason=text.clean(exc, 200))
            await stream.aclose()
            return
        if peer is None:
            return
        try:
            await self._serve_peer(stream, peer)
        finally:
            self.admission.release(peer)

    async def _serve_peer(self, stream: anyio.abc.SocketStream, peer: Peer) -> None:
        try:
            async with stream:
                await self._read_calls(stream, peer)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        except OSError as exc:
            log.throttle.warning(("failed", peer.uid), "control connection failed", reason=exc.strerror)
        except Exception:  # a connection's failure must never reach the accept loop's task group
            log.logger.exception("control connection failed unexpectedly")

    async def _read_calls(self, stream: anyio.abc.SocketStream, peer: Peer) -> None:
        frames = FrameBuffer(self._limits.max_message)
        idle = self._limits.idle_timeout
        try:
            # One cancel scope for the connection's whole life, its deadline moved after each call:
            # cheaper than a new timeout scope per read, and no idle timeout while a call runs.
            with anyio.CancelScope(deadline=anyio.current_time() + idle) as idle_scope:
                while True:
                    message = frames.next()
                    if message is None:
                        frames.feed(await stream.receive())
                        continue
                    idle_scope.deadline = math.inf
                    if not await self._call(stream, peer, message, frames):
                        return
                    idle_scope.deadline = anyio.current_time() + idle
            if idle_scope.cancelled_caught:
                log.info("control connection closed: idle", peer=peer.describe())
        except MessageTooLarge:
            self.closed_oversized += 1
            log.throttle.warning(
                ("too large", peer.uid),
                "control connection closed: message too large",
                limit=frames.limit,
                peer=peer.describe(),
            )
            await _last_word(stream, ProtocolMessageTooLarge(limit=frames.limit))

    async def _call(
        self, stream: anyio.abc.SocketStream, peer: Peer, raw: bytes, frames: FrameBuffer
    ) -> bool:
        """Answer one call; False closes the connection (the peer speaks no varlink)."""
        try:
            if too_deep(raw):
                raise msgspec.DecodeError(f"nested deeper than {MAX_DEPTH} levels")
            call = _DECODE_CALL.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            log.throttle.warning(
                ("not varlink", peer.uid),
                "control connection closed: not a varlink message",
                reason=text.clean(exc, 200),
                peer=peer.describe(),
            )
            return False

        async def send(data: bytes) -> None:
            if not call.oneway:
                await stream.send(data)

        ctx = CallContext(self.app, peer, call.method, call.more and not call.oneway, send)
        try:
            reply = await self._dispatch(ctx, call, stream, frames)
        except VarlinkError as exc:
            await send(_error_frame(exc))
            return True
        except StoreUnavailableError as exc:
            await send(_error_frame(StoreUnavailable(reason=str(exc))))
            return True
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, MessageTooLarge):
            raise
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.logger.exception("internal error in %s reference=%s", call.method, reference)
            await send(_error_frame(InternalError(reference=reference)))
            return True
        await send(_ENCODE.encode({"parameters": reply}) + b"\0")
        return True

    async def _dispatch(
        self,
        ctx: CallContext,
        call: CallMessage,
        stream: anyio.abc.SocketStream,
        frames: FrameBuffer,
    ) -> Any:
        interface, _, name = call.method.rpartition(".")
        if interface == SERVICE:
            return self._service(name, call)
        if interface != INTERFACE:
            raise InterfaceNotFound(interface=interface)
        method = self.methods.get(name)
        if method is None:
            raise MethodNotFound(method=call.method)
        try:
            params = msgspec.json.decode(_parameters(call), type=method.params)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise _bad_parameter(exc) from None
        if method.changing:
            group = self.app.config.control.admin_group
            if not await anyio.to_thread.run_sync(may_change, ctx.peer, group):
                log.throttle.warning(
                    ("denied", ctx.peer.uid, name), "permission denied", method=name, peer=ctx.peer.describe()
                )
                raise PermissionDenied(method=name, required_group=group)
        if method.needs_more and not ctx.more:
            raise ExpectedMore()
        if not ctx.more:
            return await method.handler(ctx, params)
        return await self._streaming(ctx, method, params, stream, frames)

    async def _streaming(
        self, ctx: CallContext, method: Method, params: Any, stream: Any, frames: FrameBuffer
    ) -> Any:
        """Run a streaming call while watching the connection, so a gone client ends it.

        What the client writes meanwhile is queued for after the call, within the size bound.
        """
        result: list[Any] = []
        failure: list[Exception] = []
        async with anyio.create_task_group() as tg:

            async def watch_peer() -> None:
                try:
                    while True:
                        frames.feed(await stream.receive())
                except MessageTooLarge as exc:
                    failure.append(exc)
                    tg.cancel_scope.cancel()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    tg.cancel_scope.cancel()

            async def run() -> None:
                try:
                    result.append(await method.handler(ctx, params))
                except Exception as exc:  # re-raised below, outside the task group
                    failure.append(exc)
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(watch_peer)
            tg.start_soon(run)
        if failure:
            raise failure[0]
        if not result:
            raise anyio.EndOfStream
        return result[0]

    def _service(self, name: str, call: CallMessage) -> dict[str, Any]:
        if name == "GetInfo":
            return {
                "vendor": "paragon-licensed",
                "product": "paragon-licensed",
                "version": __version__,
                "url": "https://paragon.example/docs/paragon-licensed",
                "interfaces": [SERVICE, INTERFACE],
            }
        if name == "GetInterfaceDescription":
            try:
                params = msgspec.json.decode(_parameters(call), type=dict[str, str])
            except (msgspec.ValidationError, msgspec.DecodeError):
                raise InvalidParameter(parameter="interface") from None
            wanted = params.get("interface", "")
            if wanted == INTERFACE:
                return {"description": self.description}
            if wanted == SERVICE:
                return {"description": SERVICE_DESCRIPTION}
            raise InterfaceNotFound(interface=wanted)
        raise MethodNotFound(method=call.method)
