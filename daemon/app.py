"""The daemon: start-up, one task group owning every job, and shutdown.

Start-up computes the identity, opens and migrates the store, registers this
node, binds the control socket and only then says READY=1. Background jobs
(heartbeat and lease, coordinator duties, watchdog, signals, the control server)
all live in one task group, so a signal cancels every one of them.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from paragon_licensed import __version__
from paragon_licensed.daemon import log
from paragon_licensed.daemon.build import read_build
from paragon_licensed.daemon.clock import TrustedClock
from paragon_licensed.daemon.cluster import Cluster
from paragon_licensed.daemon.config import Config, ConfigError, changed_keys, load_config
from paragon_licensed.daemon.control.listener import SocketInUse, bind, remove
from paragon_licensed.daemon.control.methods import METHODS
from paragon_licensed.daemon.control.server import ControlServer
from paragon_licensed.daemon.events import EventBus
from paragon_licensed.daemon.identity import Identity, IdentityError, read_identity
from paragon_licensed.daemon.jobs import Jobs
from paragon_licensed.daemon.keys import load_keys
from paragon_licensed.daemon.licensing import Licensing
from paragon_licensed.daemon.localcopy import LocalCopies
from paragon_licensed.daemon.localstate import LocalState
from paragon_licensed.daemon.mailer import Mailer
from paragon_licensed.daemon.nometrics import NoMetrics
from paragon_licensed.daemon.notify import notification_to_wire
from paragon_licensed.daemon.portal_client import PortalClient
from paragon_licensed.daemon.reactivator import Reactivator
from paragon_licensed.daemon.sdnotify import Notifier, watchdog_interval
from paragon_licensed.daemon.startup import Startup
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.connect import describe_url, open_database
from paragon_licensed.daemon.store.db import Database, StoreUnavailableError, Tx
from paragon_licensed.daemon.store.group_commit import GroupCommit
from paragon_licensed.daemon.store_health import StoreHealth
from paragon_licensed.daemon.tenant_check import TenantCheck
from paragon_licensed.daemon.verifier import Verifier
from paragon_licensed.daemon.view import View, read_snapshot
from paragon_licensed.licensefile import KeyFileError

if TYPE_CHECKING:
    from paragon_licensed.daemon.metrics import Metrics

SWEEP_INTERVAL = 30.0
STORE_WAIT = 3.0


class Daemon:
    version = __version__

    def __init__(self, config: Config, config_path: str) -> None:
        self.config = config
        self.config_path = config_path
        self.node = config.node.name or socket.gethostname()
        self.notifier = Notifier()
        self.events = EventBus()
        self.build = read_build(config.product)
        self.verifier = Verifier({})
        self.view = View(self)
        self.cluster = Cluster(self)
        self.server = ControlServer(self, METHODS)
        self.db: Database = open_database(config)
        self.group_commit = GroupCommit(self.db)  # the installs of a mass reactivation share commits
        self.portal = PortalClient(config.portal)
        self.local = LocalState(config.paths.state_dir)
        self.local_copies = LocalCopies(self)
        self.clock = TrustedClock(self)
        self.licensing = Licensing(self)
        self.jobs = Jobs(self)
        self.startup = Startup(self)
        self.reactivator = Reactivator(self)
        self.tenant_check = TenantCheck(self)
        self.mailer = Mailer(self)
        self.metrics: Metrics | NoMetrics = NoMetrics()
        if config.metrics.listen:  # prometheus_client only on a node that serves metrics
            from paragon_licensed.daemon.metrics import Metrics

            self.metrics = Metrics(self)
        self.portal.observe = self.metrics.portal_attempt
        # Weak: a tenant's lock lives while someone holds or awaits it, not forever.
        self._tenant_locks: weakref.WeakValueDictionary[str, anyio.Lock] = weakref.WeakValueDictionary()
        self._last_notification = -1
        self.identity: Identity
        self.store = StoreHealth(self.view.invalidate)
        self.activity = "starting"
        self.started = time.monotonic()
        self._coordinator_duties: list[Callable[[], Awaitable[None]]] = [
            self.jobs.run,
            self.startup.run,
            self.tenant_check.run_periodically,
            self.mailer.run,
        ]

    # -- what other modules ask the daemon

    @property
    def store_problem(self) -> str | None:
        return self.store.problem

    @property
    def store_opened(self) -> bool:
        return self.store.opened

    @property
    def is_coordinator(self) -> bool:
        return self.cluster.is_coordinator

    def cluster_computer_ids(self) -> list[str]:
        """The computer IDs of every registered node: with the tenant, the integrity key."""
        ids = {n.computer_id for n in self.view.snapshot.nodes}
        ids.add(self.identity.computer_id)
        return sorted(ids)

    def set_activity(self, activity: str) -> None:
        self.activity = activity
        self.view.invalidate()
        self.notifier.status(activity)

    def tenant_lock(self, tenant: str) -> anyio.Lock:
        """One operation per tenant at a time on this coordinator."""
        lock = self._tenant_locks.get(tenant)
        if lock is None:
            lock = anyio.Lock()
            self._tenant_locks[tenant] = lock
        return lock

    def add_coordinator_duty(self, duty: Callable[[], Awaitable[None]]) -> None:
        """A job that runs only while this node is the coordinator, cancelled when it stops."""
        self._coordinator_duties.append(duty)

    @property
    def coordinator_duties(self) -> list[Callable[[], Awaitable[None]]]:
        return self._coordinator_duties

    async def refresh(self) -> None:
        """Read the store again and publish the tenants whose state changed."""
        snapshot = await self.db.read(read_snapshot, self.view.since())
        await self.apply_snapshot(snapshot)
        await self.publish_notifications()

    def take_tenant(self, row: tenant_q.TenantRow) -> None:
        """A tenant row this node has just written: show it at once."""
        view = self.view.update_tenant(row)
        if view is not None:
            self.events.emit("state_changed", view.reason, tenant=row.id, state=view.state)

    async def publish_notifications(self) -> None:
        """Pass notifications written since the last look (by any node) to the watchers."""
        newest = self.view.snapshot.last_notification
        if self._last_notification < 0 or not self.events.watched:
            self._last_notification = newest  # nobody watches: nothing to read
        while newest > self._last_notification:
            rows = await self.db.read(msg_q.notifications_after, self._last_notification)
            if not rows:
                break
            for row in rows:
                self.events.emit(
                    "notification", row.title, tenant=row.tenant_id, notification=notification_to_wire(row)
                )
            self._last_notification = rows[-1].id

    async def apply_snapshot(self, snapshot: Any) -> None:
        for tenant in await self.view.load(snapshot):
            self.events.emit("state_changed", tenant.reason, tenant=tenant.tenant, state=tenant.state)

    # -- life cycle

    async def run(self) -> int:
        try:
            self.identity = await read_identity(self.config.identity)
            self.verifier.set_keys(load_keys(self.config))
        except (IdentityError, ConfigError) as exc:
            log.error(str(exc))
            return exc.exit_code
        except KeyFileError as exc:
            log.error(f"{self.config_path}: portal.public_keys: {exc}")
            return 2
        for warning in self.identity.warnings:
            log.warning(warning)
        log.info(
            "starting",
            node=self.node,
            computer_id=self.identity.computer_id,
            build=self.build.value or "unknown",
            store=describe_url(self.config.store_url),
        )
        if self.build.problem:
            log.warning(f"product build unknown: {self.build.problem}")
        self.clock.install()
        self._load_local_copies()
        try:
            control = bind(self.config.control.socket)
        except SocketInUse as exc:
            log.error(str(exc))
            return 1
        except OSError as exc:
            log.error(f"cannot listen on {self.config.control.socket}: {exc.strerror}")
            return 1
        try:
            metrics = None if isinstance(self.metrics, NoMetrics) else self.metrics
            if metrics is not None:
                from paragon_licensed.daemon.metrics import MetricsListenError

                try:
                    host, port = metrics.bind()
                except MetricsListenError as exc:
                    log.error(str(exc))
                    return exc.exit_code
                log.info("serving metrics", url=f"http://{host}:{port}/metrics")
            listener = await anyio.abc.SocketListener.from_socket(control.sock)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.server.serve, listener)
                if metrics is not None:
                    tg.start_soon(metrics.serve)
                await tg.start(self._signals, tg.cancel_scope)
                tg.start_soon(self._watchdog)
                tg.start_soon(self._watch_faults)
                # Normally the store answers at once and READY=1 means "fully up"; a store that is
                # down must not keep the node from serving what it knows from its local copies.
                await tg.start(self._with_store)
                self.notifier.ready(f"serving on {control.path}")
                log.info("ready", socket=control.path, seconds=round(time.monotonic() - self.started, 3))
        finally:
            self.notifier.stopping()
            remove(control)
            with anyio.CancelScope(shield=True), anyio.move_on_after(3):
                if self.store_opened:
                    await self.cluster.shutdown()
                    with contextlib.suppress(StoreUnavailableError, OSError):
                        await self.refresh()
                        await self.startup.sync_local_state(force=True)
            self.metrics.close()
            self.db.close()
            log.info("stopped", node=self.node)
        return 0

    async def _with_store(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Open the store (waiting for it if it is down), then run the checks and the cluster loops.

        Reports itself started once the store is open, or after STORE_WAIT if it is not.
        """
        self.set_activity("opening the store")
        with anyio.move_on_after(STORE_WAIT):
            await self._open_store()
        task_status.started()
        if not self.store_opened:
            log.warning("serving from the local license copies until the store answers")
            await self._open_store()
        self.set_activity("idle")
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.startup.node_checks)
            tg.start_soon(self.cluster.run)
            tg.start_soon(self._sweep)

    async def _open_store(self) -> None:
        """Migrate, register this node and seed tenants; while the store is down, keep trying."""
        delay = 1.0
        while True:
            try:
                applied = await anyio.to_thread.run_sync(self.db.migrate)
                if applied:
                    log.info("store migrated", versions=",".join(map(str, applied)))
                await self.cluster.register()
                await self.db.write(self._seed_tenants)
                self.store.mark_opened()  # before the first read: tenants are judged with the node set
                await self.refresh()
                self.store.answered()
                return
            except StoreUnavailableError as exc:
                self.store.failed(exc)
                log.info("store still unavailable, retrying", retry_in=f"{delay:.0f}s")
                self.notifier.status(f"store unavailable: {exc}")
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _load_local_copies(self) -> None:
        documents = self.local.load_licenses()
        self.local_copies.load(documents)
        self.local.copies = documents
        self.local.issued = {t: row.issued_at for t, row in self.local_copies.rows.items()}
        self.view.load_local()

    async def _watch_faults(self) -> None:
        """Every heartbeat: the clock against the trusted time, the state folder's disk; a failed
        local write is retried. Never ends on an error: the daemon outlives its disk."""
        reported: str | None = None
        while True:
            try:
                changed = self.clock.sample()
                await anyio.to_thread.run_sync(self.local.probe)
                problem = self.local.problem
                if problem != reported:
                    changed = True
                    if problem is not None:
                        log.warning("state folder problem", detail=problem)
                    else:
                        log.info("state folder writable again", folder=str(self.local.root))
                    reported = problem
                if self.local.write_problem is not None and self.store_opened:
                    await self.startup.sync_local_state(force=True)
                if changed:
                    for view in await self.view.reevaluate():
                        self.events.emit("state_changed", view.reason, tenant=view.tenant, state=view.state)
                    self.view.invalidate()
                await self.clock.persist()
            except (OSError, StoreUnavailableError) as exc:
                log.warning("fault watch: will try again", reason=exc)
            await anyio.sleep(self.config.cluster.heartbeat)

    def _seed_tenants(self, tx: Tx) -> None:
        for seed in self.config.tenants:
            if tenant_q.ensure_tenant(tx, seed.id, seed.admin_email):
                log.info("tenant created from configuration", tenant=seed.id)
        cloud = self.config.cloud.admin_email
        if cloud and not tenant_q.meta(tx).cloud_admin_email:
            tenant_q.set_cloud_admin_email(tx, cloud)

    async def _signals(
        self, scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            task_status.started()  # the handlers are installed before READY=1 is sent
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await self.reload()
                    continue
                break
        log.info("stopping", signal=signal.Signals(signum).name)
        # A second Ctrl-C or SIGTERM (a terminal and a script both passing it on) must not turn
        # the clean shutdown, which is bounded, into an abrupt one that leaves the socket behind.
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, signal.SIG_IGN)
        self.notifier.stopping()
        scope.cancel()

    async def reload(self) -> None:
        self.notifier.reloading()
        try:
            new = await anyio.to_thread.run_sync(load_config, self.config_path)
            keys = await anyio.to_thread.run_sync(load_keys, new)
        except ConfigError as exc:
            log.error(f"reload refused, keeping the running configuration: {exc}")
            self.notifier.status(self.activity)
            return
        except KeyFileError as exc:
            log.error(f"reload refused, keeping the running configuration: portal.public_keys: {exc}")
            self.notifier.status(self.activity)
            return
        live, restart = changed_keys(self.config, new)
        if restart:
            log.warning("these changed keys take effect after a restart", keys=",".join(restart))
        self.config = new
        self.build = read_build(new.product)
        self.verifier.set_keys(keys)
        self.portal.reconfigure(new.portal)
        async with self.db_guard():
            await self.db.write(self._seed_tenants)
            await self.refresh()
        log.info("configuration reloaded", applied=",".join(live) or "nothing changed")
        self.notifier.send("READY=1", f"STATUS={self.activity}")

    def db_guard(self) -> _StoreGuard:
        return _StoreGuard(self)

    async def _sweep(self) -> None:
        """Evaluate every tenant again now and then: licenses expire and grace periods end with time."""
        while True:
            await anyio.sleep(SWEEP_INTERVAL)
            for tenant in await self.view.reevaluate():
                self.events.emit("state_changed", tenant.reason, tenant=tenant.tenant, state=tenant.state)

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await anyio.sleep(interval)


class _StoreGuard:
    """Turns a store outage inside a block into a logged, reported condition."""

    def __init__(self, app: Daemon) -> None:
        self.app = app

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if isinstance(exc, StoreUnavailableError):
            self.app.store.failed(exc)
            return True
        return False
