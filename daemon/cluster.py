"""Membership and leadership: heartbeats, the coordinator lease, and the coordinator's duties.

Every node heartbeats into the shared store and reads back the cluster. One
node holds the lease (timed by the database's clock) and runs the coordinator
duties in a cancel scope of their own; a node that cannot renew within the
renew deadline cancels them by itself, and its term fences any write it still
attempts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from paragon_licensed.daemon import log
from paragon_licensed.daemon.store import nodes as node_q
from paragon_licensed.daemon.store.db import Fence, FencedOut, StoreUnavailableError, Tx
from paragon_licensed.daemon.view import Snapshot, read_snapshot

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon


# Reconnecting to a lost store backs off up to this; a node notices the store's return within it.
MAX_BACKOFF = 5.0


class NotCoordinator(Exception):
    """This node does not hold a current lease."""


class Cluster:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self.term: int | None = None
        self._deadline = 0.0  # monotonic time after which an unrenewed lease must not be used
        self._duties: anyio.CancelScope | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._wake = anyio.Event()
        self.new_node = False
        self.previous_node: node_q.NodeRow | None = None
        self._membership: tuple[frozenset[str], str | None] | None = None  # online nodes, coordinator

    @property
    def is_coordinator(self) -> bool:
        return self.term is not None and time.monotonic() < self._deadline

    def fence(self) -> Fence:
        """The fence for a coordinator write; raises NotCoordinator when the lease is not ours."""
        if self.term is None or time.monotonic() >= self._deadline:
            raise NotCoordinator(f"{self.app.node} is not the coordinator")
        return Fence(self.app.node, self.term)

    async def register(self) -> None:
        app, identity = self.app, self.app.identity

        def write(tx: Tx) -> tuple[node_q.NodeRow | None, bool]:
            previous = node_q.get(tx, app.node)
            new = node_q.register(
                tx,
                app.node,
                identity.computer_id,
                identity.machine_fingerprint,
                identity.hardware_fingerprint or "",
                app.build.value or "",
                app.version,
            )
            return previous, new

        self.previous_node, self.new_node = await app.db.write(write)
        if self.new_node:
            log.info("node registered in the cluster", node=app.node)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._heartbeat_loop)
            tg.start_soon(self._lease_loop)

    async def _heartbeat_loop(self) -> None:
        """Heartbeat and read the cluster back in one transaction; back off while the store is down."""
        app = self.app
        failures = 0
        while True:
            interval = app.config.cluster.heartbeat
            try:
                snapshot = await app.db.write(self._beat, app.view.since())
            except StoreUnavailableError as exc:
                failures += 1
                app.store.failed(exc)
                await anyio.sleep(min(interval * 2 ** min(failures, 8), max(interval, MAX_BACKOFF)))
                continue
            app.store.answered()
            failures = 0
            went_back = snapshot.full and bool(app.view.snapshot.store_id)
            await app.apply_snapshot(snapshot)
            self._report_membership()
            try:
                if went_back:
                    await app.startup.check_marker()
                await app.publish_notifications()
                await app.startup.sync_local_state()
            except StoreUnavailableError as exc:
                log.warning("store unavailable after the heartbeat", reason=exc)  # the next beat reports it
            await anyio.sleep(interval)

    def _report_membership(self) -> None:
        """Tell watchers when a node falls silent or comes back, and when the coordinator changes
        elsewhere: only the heartbeat notices these, no call does. This node's own take-over and
        step-down are reported where they happen."""
        view = self.app.view
        online = frozenset(n.name for n in view.node_list() if n.online)
        coordinator = view.coordinator()
        previous, self._membership = self._membership, (online, coordinator)
        if previous is None:
            return
        was_online, was_coordinator = previous
        changes = [f"node {name} is offline" for name in sorted(was_online - online)]
        changes += [f"node {name} is online" for name in sorted(online - was_online)]
        if changes:
            self.app.events.emit("nodes_changed", "; ".join(changes))
        if coordinator != was_coordinator and self.app.node not in (coordinator, was_coordinator):
            message = f"{coordinator} is the coordinator" if coordinator else "no node is the coordinator"
            self.app.events.emit("coordinator_changed", message)

    def _beat(self, tx: Tx, since: tuple[str, int] | None) -> Snapshot:
        if not node_q.heartbeat(tx, self.app.node):
            identity = self.app.identity
            node_q.register(
                tx,
                self.app.node,
                identity.computer_id,
                identity.machine_fingerprint,
                identity.hardware_fingerprint or "",
                self.app.build.value or "",
                self.app.version,
            )
        return read_snapshot(tx, since)

    async def _lease_loop(self) -> None:
        app = self.app
        while True:
            cluster = app.config.cluster
            attempt = time.monotonic()
            try:
                lease = await app.db.write(node_q.acquire_or_renew, app.node, cluster.lease)
            except StoreUnavailableError:
                lease = None
            if lease is not None:
                if self.term != lease.term:
                    await self._take_over(lease.term)
                self._deadline = attempt + cluster.renew_deadline
            elif self.term is not None and time.monotonic() >= self._deadline:
                self._step_down("the lease could not be renewed in time")
            with anyio.move_on_after(cluster.renew):
                await self._wake.wait()
            self._wake = anyio.Event()
            if self.term is not None and time.monotonic() >= self._deadline:
                self._step_down("the lease could not be renewed in time")

    async def _take_over(self, term: int) -> None:
        if self.term is not None:
            self._step_down("a new term began")
        self.term = term
        log.info("this node is now the coordinator", node=self.app.node, term=term)
        self.app.events.emit("coordinator_changed", f"{self.app.node} is the coordinator (term {term})")
        self.app.view.invalidate()
        self._duties = anyio.CancelScope()
        assert self._tg is not None, "take-over happens only inside run()"
        self._tg.start_soon(self._run_duties, self._duties)

    async def _run_duties(self, scope: anyio.CancelScope) -> None:
        with scope:
            async with anyio.create_task_group() as tg:
                for duty in self.app.coordinator_duties:
                    tg.start_soon(self._supervise, duty)

    async def _supervise(self, duty: Callable[[], Awaitable[None]]) -> None:
        """Run a duty; if it fails unexpectedly, log it and start it again after a pause."""
        name = getattr(duty, "__qualname__", repr(duty))
        waiting = ""
        while True:
            try:
                await _unwrapped(duty)
                return
            except (NotCoordinator, FencedOut) as exc:
                log.warning("coordinator duty stopped: no longer the coordinator", duty=name, reason=exc)
                return
            except StoreUnavailableError as exc:
                if str(exc) != waiting:  # once per outage, not every 5 s while it lasts
                    log.warning("coordinator duty waits for the store", duty=name, reason=exc)
                waiting = str(exc)
            except Exception:
                log.logger.exception("coordinator duty %s failed; restarting it in 5 s", name)
            await anyio.sleep(5.0)

    def _step_down(self, reason: str) -> None:
        log.warning("this node stops acting as coordinator", node=self.app.node, reason=reason)
        self.term = None
        if self._duties is not None:
            self._duties.cancel()
            self._duties = None
        self.app.events.emit("coordinator_changed", f"{self.app.node} stopped coordinating: {reason}")
        self.app.view.invalidate()

    async def shutdown(self) -> None:
        """Hand the lease back so another node takes over at once instead of after expiry."""
        if self.term is None:
            return
        term, self.term = self.term, None
        with contextlib.suppress(StoreUnavailableError):
            await self.app.db.write(lambda tx: node_q.release(tx, self.app.node, term))


async def _unwrapped(duty: Callable[[], Awaitable[None]]) -> None:
    """Run a duty; a failure from inside its task group is raised as itself, not as a group,
    so that the supervisor tells a lost lease from a store outage by its type."""
    try:
        await duty()
    except BaseExceptionGroup as group:
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
