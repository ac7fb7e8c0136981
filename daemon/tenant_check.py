"""Automatic tenant license processing: reactivate what is expired, expiring or not properly licensed.

A coordinator duty: every `tenant_check.interval` (the first run after a random
splay) it reactivates, through the Online License Activation URL, every tenant
whose license is expired or expires within `expiring_within`, and every tenant
that is unlicensed, invalid or needs a reactivation. A run is recorded in the
store with one request_id per tenant before any portal call, so a coordinator
that takes over mid-run finishes it without reactivating anyone twice.

Success leaves an info notification; failure an error notification and a line
in the run's digest e-mail (tenant administrator in single-tenant deployments,
cloud administrator in multi-tenant ones), at most once per reminder_interval
for the same failure. When the portal cannot be reached, a circuit breaker
stops the run with one "portal unreachable" notification instead of one
failure per tenant.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from paragon_licensed.daemon import log
from paragon_licensed.daemon.digest import compose_digest, failure_key
from paragon_licensed.daemon.pace import Pace
from paragon_licensed.daemon.store import checks
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store.db import Tx
from paragon_licensed.daemon.timefmt import rfc3339
from paragon_licensed.interface import wire
from paragon_licensed.interface.errors import (
    CTL,
    DuplicateComputerId,
    NodesOffline,
    PortalUnreachable,
    VarlinkError,
)
from paragon_licensed.licensefile import Payload

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon

Progress = Callable[[int, int, str | None, str | None], Awaitable[None]]
NOT_PROPERLY_LICENSED = frozenset({"unlicensed", "invalid", "needs_reactivation"})
DUE = frozenset({"expired", "expiring"}) | NOT_PROPERLY_LICENSED


@dataclass
class Breaker:
    """Stops a run: after `limit` consecutive unreachable-portal failures, or at once when the
    cluster is not whole (a node offline): asking on would only fail every remaining tenant."""

    limit: int
    failures: int = 0
    open: bool = False
    kind: str = ""
    reason: str = ""

    def success(self) -> None:
        self.failures = 0

    def failure(self, error: VarlinkError) -> None:
        self.failures += 1
        if self.failures >= self.limit:
            self.trip("portal_unreachable", error.sentence())

    def trip(self, kind: str, reason: str) -> None:
        if not self.open:
            self.open, self.kind, self.reason = True, kind, reason


@dataclass
class Outcome:
    results: list[wire.CheckResult]
    note: str
    looked_at: int = 0  # the tenants this node knew when the run selected its work


class TenantCheck:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self.running = anyio.Lock()
        self.next_run: float | None = None  # Unix time of the next scheduled run, when known

    # -- selection

    async def select(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
        """The tenants to process (tenant, request_id, kind) and those left alone (tenant, why),
        in name order."""
        todo: list[tuple[str, str, str]] = []
        skipped: list[tuple[str, str]] = []
        seeds = {s.id: s.activation_key for s in self.app.config.tenants if s.activation_key}
        views = self.app.view.tenants
        pace = Pace()
        for name in list(self.app.view.index.names):
            await pace.turn()
            view = views.get(name)
            if view is None:
                continue
            if view.state == "needs_transfer":
                skipped.append((name, f"needs a transfer, not a reactivation: {view.reason}"))
            elif view.state not in DUE:
                continue
            elif view.state == "unlicensed" and name in seeds and not view.row.flag:
                todo.append((name, str(uuid.uuid4()), "activate"))
            elif view.state == "unlicensed" and not view.row.flag:
                # Never activated here and no key to do it with: nothing the portal could renew.
                skipped.append(
                    (name, f"not activated yet: `{CTL} license activate --key KEY --tenant {name}`")
                )
            else:
                todo.append((name, str(uuid.uuid4()), "reactivate"))
        return todo, skipped

    # -- runs

    async def run_periodically(self) -> None:
        """Coordinator duty: finish a run a previous coordinator left, then run every interval."""
        app = self.app
        async with self.running:
            for run in await app.db.read(checks.unfinished):
                log.info("finishing a tenant check left unfinished", run=run.id, trigger=run.trigger)
                await self.process(run.id, None)
        settings = app.config.tenant_check
        splay = random.uniform(0, settings.splay)
        self.next_run = time.time() + splay
        await anyio.sleep(splay)
        await app.startup.done.wait()  # upgrade and restore reactivations go first, with their own message
        while True:
            started = time.monotonic()
            self.next_run = time.time() + app.config.tenant_check.interval
            await self.run("scheduled")
            interval = app.config.tenant_check.interval
            pause = max(0.0, interval - (time.monotonic() - started))
            self.next_run = time.time() + pause
            await anyio.sleep(pause)

    async def run(self, trigger: str, progress: Progress | None = None, run_id: str | None = None) -> Outcome:
        """Run a check; with the id of a run a previous coordinator started, finish that one."""
        app = self.app
        run_id = run_id or str(uuid.uuid4())
        async with self.running:
            if await app.db.read(checks.get, run_id) is None:
                todo, skipped = await self.select()
                await app.db.write(checks.start, run_id, trigger, todo, skipped, fence=app.cluster.fence())
                log.info(
                    "tenant check started",
                    run=run_id,
                    trigger=trigger,
                    tenants=len(todo),
                    skipped=len(skipped),
                )
            else:
                log.info("tenant check resumed", run=run_id, trigger=trigger)
            return await self.process(run_id, progress)

    async def process(self, run_id: str, progress: Progress | None) -> Outcome:
        app = self.app
        run = await app.db.read(checks.get, run_id)
        if run is not None and run.finished:
            results = [self.result(i) for i in await app.db.read(checks.items, run_id)]
            return Outcome(results, run.note, looked_at=len(app.view.tenants))
        items = await app.db.read(checks.items, run_id)
        pending = [i for i in items if i.state == "pending"]
        total = len(items)
        done = total - len(pending)
        breaker = Breaker(app.config.tenant_check.breaker_failures)
        unreachable: list[tuple[checks.Item, VarlinkError]] = []
        app.set_activity(f"tenant check: {done}/{total}")
        if progress is not None:
            await progress(done, total, None, None)
        queue = iter(pending)

        async def worker() -> None:
            # A fixed set of workers taking the next tenant: no task per tenant waiting in line.
            nonlocal done
            for item in queue:
                outcome = "skipped"
                if not breaker.open:
                    outcome = await self.process_one(run_id, item, breaker, unreachable)
                done += 1
                if progress is not None:
                    await progress(done, total, item.tenant_id, outcome)
                if done % 100 == 0 or done == total:
                    app.set_activity(f"tenant check: {done}/{total}")

        async with anyio.create_task_group() as tg:
            for _ in range(min(app.config.tenant_check.concurrency, max(len(pending), 1))):
                tg.start_soon(worker)
        await self.settle_stopped(run_id, breaker, unreachable)
        note = f"the run stopped: {breaker.reason}" if breaker.open else ""
        await self.finish(run_id, note)
        app.set_activity("idle")
        results = [self.result(i) for i in await app.db.read(checks.items, run_id)]
        counts = {k: sum(1 for r in results if r.outcome == k) for k in ("reactivated", "failed", "skipped")}
        log.info("tenant check finished", run=run_id, **counts, note=note)
        return Outcome(results, note, looked_at=len(app.view.tenants))

    async def process_one(
        self,
        run_id: str,
        item: checks.Item,
        breaker: Breaker,
        unreachable: list[tuple[checks.Item, VarlinkError]],
    ) -> str:
        app = self.app
        tenant = item.tenant_id

        def settle_success(tx: Tx, payload: Payload) -> None:
            checks.settle(tx, run_id, tenant, "reactivated", "", payload.valid_until.timestamp())

        async def quiet(step: str, message: str) -> None:
            return None

        try:
            async with app.tenant_lock(tenant):
                view = app.view.tenants.get(tenant)
                if view is None or view.state not in DUE:
                    # Reactivated meanwhile (after an upgrade, say) by the reactivator or a ctl call.
                    await app.db.write(
                        checks.settle,
                        run_id,
                        tenant,
                        "skipped",
                        "already reactivated",
                        fence=app.cluster.fence(),
                    )
                    return "skipped"
                cause = app.reactivator.cause(view) if view.state == "needs_reactivation" else "tenant_check"
                if item.kind == "activate":
                    key = next(s.activation_key for s in app.config.tenants if s.id == tenant)
                    await app.licensing.activate(
                        tenant=tenant,
                        activation_key=key,
                        request_id=item.request_id,
                        actor=self.actor,
                        report=quiet,
                        extra=settle_success,
                        tracked=True,
                    )
                else:
                    await app.licensing.reactivate(
                        tenant=tenant,
                        request_id=item.request_id,
                        actor=self.actor,
                        report=quiet,
                        cause=cause,
                        extra=settle_success,
                        tracked=True,
                    )
        except PortalUnreachable as exc:
            breaker.failure(exc)
            unreachable.append((item, exc))
            return "unreachable"
        except (NodesOffline, DuplicateComputerId) as exc:
            # The cluster is not whole: every other tenant would fail the same way. Stop the run;
            # the tenants stay pending here and are settled as skipped with this reason.
            breaker.trip("nodes_offline", exc.sentence())
            return "skipped"
        except VarlinkError as exc:
            breaker.success()
            await self.failed(run_id, tenant, exc)
            return "failed"
        breaker.success()
        return "reactivated"

    @property
    def actor(self) -> str:
        return f"tenant check on {self.app.node}"

    # -- failures, notifications and the digest

    def recipient(self, tenant: str) -> tuple[str, str]:
        """(address, the setting that holds it) for this tenant's failure e-mails."""
        app = self.app
        if app.config.product.deployment == "multi-tenant":
            return app.view.snapshot.cloud_admin_email, f"`{CTL} cloud set-admin-email ADDR`"
        view = app.view.tenants.get(tenant)
        email = view.admin_email if view is not None else ""
        return email, f"`{CTL} tenants set {tenant} --admin-email ADDR`"

    async def failed(self, run_id: str, tenant: str, error: VarlinkError) -> None:
        app = self.app
        interval = app.config.tenant_check.reminder_interval
        reason = error.sentence()
        key = failure_key(tenant, error)
        address, setting = self.recipient(tenant)

        def write(tx: Tx) -> None:
            checks.settle(tx, run_id, tenant, "failed", reason)
            if msg_q.reminder_due(tx, f"notification:{tenant}", key, interval):
                msg_q.notify(
                    tx,
                    tenant,
                    "error",
                    "tenant_check_failed",
                    "License reactivation failed",
                    f"The automatic license reactivation of tenant {tenant} failed: {reason}",
                )
                msg_q.remember_reminder(tx, f"notification:{tenant}", key)
            if address:
                checks.add_failure(tx, run_id, address, tenant, key, reason, interval)
            elif msg_q.reminder_due(tx, f"notification:{tenant}", "no_address", interval):
                msg_q.notify(
                    tx,
                    tenant,
                    "error",
                    "no_admin_email",
                    "No address for failure e-mails",
                    f"No e-mail was sent about the failed reactivation of tenant {tenant}: set the "
                    f"address with {setting}.",
                )
                msg_q.remember_reminder(tx, f"notification:{tenant}", "no_address")

        await app.db.write(write, fence=app.cluster.fence())

    async def settle_stopped(
        self, run_id: str, breaker: Breaker, unreachable: list[tuple[checks.Item, VarlinkError]]
    ) -> None:
        """One notification for a stopped run; tenant failures only for a few unreachable stragglers."""
        app = self.app
        if not breaker.open:
            for item, error in unreachable:
                await self.failed(run_id, item.tenant_id, error)
            return
        reason, kind = breaker.reason, breaker.kind
        title = (
            "License Portal unreachable"
            if kind == "portal_unreachable"
            else "Tenant check waits for every node"
        )
        interval = app.config.tenant_check.reminder_interval

        def write(tx: Tx) -> None:
            for item in checks.items(tx, run_id):
                if item.state == "pending":
                    checks.settle(tx, run_id, item.tenant_id, "skipped", f"not tried: {reason}")
            if msg_q.reminder_due(tx, "notification:*", kind, interval):
                msg_q.notify(
                    tx,
                    None,
                    "error",
                    kind,
                    title,
                    f"The automatic tenant license processing stopped: {reason} It runs again in "
                    f"{app.config.tenant_check.interval / 60:g} minutes.",
                )
                msg_q.remember_reminder(tx, "notification:*", kind)
            for address in self.installation_recipients():
                checks.add_failure(tx, run_id, address, "*", kind, reason, interval)

        log.warning("tenant check stopped", run=run_id, cause=kind, reason=reason)
        await app.db.write(write, fence=app.cluster.fence())

    def installation_recipients(self) -> list[str]:
        """Who hears of a failure of the whole run: the cloud administrator, or in a single-tenant
        deployment the tenant administrator(s)."""
        app = self.app
        if app.config.product.deployment == "multi-tenant":
            return [app.view.snapshot.cloud_admin_email] if app.view.snapshot.cloud_admin_email else []
        return sorted({v.admin_email for v in app.view.tenants.values() if v.admin_email})

    async def finish(self, run_id: str, note: str) -> None:
        """Close the run and turn its failures into one digest per recipient, in one transaction."""
        app = self.app

        def write(tx: Tx) -> int:
            mails = 0
            for recipient, entries in checks.open_failures(tx).items():
                subject, body = compose_digest(app.node, entries)
                msg_q.enqueue_mail(tx, recipient, subject, body)
                checks.mark_mailed(tx, [e[0] for e in entries])
                for _, _, key, _ in entries:
                    msg_q.remember_reminder(tx, recipient, key)
                mails += 1
            checks.finish(tx, run_id, note)
            return mails

        mails = await app.db.write(write, fence=app.cluster.fence())
        if mails:
            log.info("failure digests queued", run=run_id, mails=mails)
            app.mailer.wake()
        await app.refresh()

    def result(self, item: checks.Item) -> wire.CheckResult:
        outcome: wire.CheckOutcome = "skipped"
        if item.state in ("reactivated", "failed"):
            outcome = item.state  # type: ignore[assignment]
        valid = rfc3339(item.valid_until) if item.valid_until is not None else None
        return wire.CheckResult(tenant=item.tenant_id, outcome=outcome, reason=item.reason, valid_until=valid)
