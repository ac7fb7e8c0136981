"""Reactivate by itself: after an upgrade, a restore, or a change of the cluster's nodes.

A coordinator duty. Every tenant that needs a reactivation is reactivated as soon
as every node is online; when the portal cannot be reached, the tenant keeps its
previous license for the grace period while retries follow a growing schedule
(15 min, 30 min, 1 h, then every 6 h, with jitter), and a notification explains
the offline way with the exact commands.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import TYPE_CHECKING

import anyio

from paragon_licensed.daemon import log
from paragon_licensed.daemon.pace import Pace
from paragon_licensed.daemon.states import TenantView
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.db import Tx
from paragon_licensed.daemon.timefmt import days_left, rfc3339
from paragon_licensed.interface.errors import (
    CTL,
    DuplicateComputerId,
    NodesOffline,
    PortalNotConfigured,
    PortalRejected,
    PortalUnreachable,
    VarlinkError,
)

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon


def offline_hint(tenant: str) -> str:
    return (
        "To reactivate offline: "
        f"`{CTL} license reactivate --tenant {tenant} --offline --out request.txt`, upload request.txt "
        "on the License Portal's offline activation page (/offline on the portal), then "
        f"`{CTL} license import response.txt`."
    )


class Reactivator:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self._wake = anyio.Event()
        self._waiting_for_nodes = False

    def wake(self) -> None:
        self._wake.set()

    def cause(self, view: TenantView) -> str:
        """The cause recorded with the new license: upgrade:BUILD, restore, or reactivation."""
        build = self.app.build.value
        if view.row.flag_cause == "restore":
            return "restore"
        if view.payload is not None and build is not None and view.payload.build != build:
            return f"upgrade:{build}"
        if view.row.flag_cause.startswith("upgrade:"):
            return view.row.flag_cause
        return "reactivation"

    async def due(self, now: float) -> list[TenantView]:
        due = []
        pace = Pace()
        for view in list(self.app.view.tenants.values()):
            await pace.turn()
            flagged = view.row.flag == "needs_reactivation"
            if view.state != "needs_reactivation" and not flagged:
                continue
            if view.row.next_retry_at is not None and view.row.next_retry_at > now:
                continue
            due.append(view)
        return due

    async def run(self) -> None:
        while True:
            await self.tick()
            schedule = self.app.config.reactivation.retry_schedule
            with anyio.move_on_after(max(0.2, min(5.0, min(schedule) / 2))):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def tick(self) -> None:
        """Reactivate every tenant that is due, as many at once as the portal client allows
        (``portal.max_concurrency``): after an upgrade that is every tenant of the cluster."""
        app = self.app
        due = await self.due(time.time())
        queue = iter(due)
        done = 0

        async def worker() -> None:
            nonlocal done
            for view in queue:
                try:
                    app.licensing.cluster_ids()
                except (NodesOffline, DuplicateComputerId) as exc:
                    if not self._waiting_for_nodes:
                        log.info("reactivation waits until every node is online", reason=exc.sentence())
                    self._waiting_for_nodes = True
                    return
                self._waiting_for_nodes = False
                if len(due) == 1:
                    cause = self.cause(view).replace(":", " to ")
                    app.set_activity(f"reactivating tenant {view.tenant} ({cause})")
                await self.reactivate(view)
                done += 1
                if len(due) > 1 and (done % 100 == 0 or done == len(due)):
                    app.set_activity(f"reactivating tenants: {done}/{len(due)}")

        if due:
            if len(due) > 1:
                app.set_activity(f"reactivating tenants: 0/{len(due)}")
            try:
                async with anyio.create_task_group() as tg:
                    for _ in range(min(app.config.portal.max_concurrency, len(due))):
                        tg.start_soon(worker)
            finally:
                app.set_activity("idle")
        await self.remind()

    async def reactivate(self, view: TenantView) -> None:
        app = self.app
        tenant = view.tenant
        cause = self.cause(view)

        async def report(step: str, message: str) -> None:
            log.info(message, tenant=tenant, step=step)

        try:
            async with app.tenant_lock(tenant):
                current = app.view.tenants.get(tenant)
                if current is None or not (
                    current.state == "needs_reactivation" or current.row.flag == "needs_reactivation"
                ):
                    return  # done meanwhile by a ctl call or the tenant check
                await app.licensing.reactivate(
                    tenant=tenant,
                    request_id=str(uuid.uuid4()),
                    actor=f"{ACTOR} {app.node}",
                    report=report,
                    cause=cause,
                )
        except (PortalUnreachable, PortalNotConfigured, PortalRejected) as exc:
            await self.failed(view, cause, exc)
        except VarlinkError as exc:
            await self.failed(view, cause, exc)

    async def failed(self, view: TenantView, cause: str, error: VarlinkError) -> None:
        """Keep the previous license for the grace period and schedule the next try."""
        app = self.app
        settings = app.config.reactivation
        now = time.time()
        count = view.row.retry_count
        step = settings.retry_schedule[min(count, len(settings.retry_schedule) - 1)]
        delay = step * random.uniform(1 - settings.retry_jitter, 1 + settings.retry_jitter)
        grace_until = view.row.grace_until or now + settings.grace_period
        reason = (
            f"reactivation ({cause.replace(':', ' to ')}) failed: {error.sentence()} The previous license "
            f"counts until {rfc3339(grace_until)[:10]}; next try at {rfc3339(now + delay)}."
        )
        tenant = view.tenant

        def write(tx: Tx) -> int:
            attempts = tenant_q.schedule_retry(tx, tenant, cause, reason, grace_until, now + delay)
            if attempts == 1:
                msg_q.notify(
                    tx,
                    tenant,
                    "error",
                    "reactivation_failed",
                    "Reactivation failed",
                    f"{reason} {offline_hint(tenant)}",
                )
            return attempts

        attempts = await app.db.write(write, fence=app.cluster.fence())
        log.warning(
            "reactivation failed; grace period running",
            tenant=tenant,
            attempt=attempts,
            error=error.short_name,
            retry_in=f"{delay:.0f}s",
            grace_days=days_left(grace_until, now),
        )
        await app.refresh()

    async def remind(self) -> None:
        """While a grace period runs, a reminder notification at most once per grace_reminder."""
        app = self.app
        interval = app.config.reactivation.grace_reminder
        now = time.time()
        pace = Pace()
        for name in list(app.view.index.by_state["needs_reactivation"]):
            await pace.turn()
            view = app.view.tenants.get(name)
            if view is None or view.state != "needs_reactivation" or view.grace_until is None:
                continue
            tenant = view.tenant
            left = days_left(view.grace_until, now)

            def write(tx: Tx, tenant: str = tenant, left: int = left) -> bool:
                last = msg_q.last_notification(tx, tenant, "grace_reminder")
                first = msg_q.last_notification(tx, tenant, "reactivation_failed")
                newest = max((n.created_at for n in (last, first) if n is not None), default=0.0)
                if tx.now() - newest < interval:
                    return False
                text = (
                    f"The license of tenant {tenant} still needs a reactivation; {max(left, 0)} day(s) of "
                    f"grace left. {offline_hint(tenant)}"
                )
                msg_q.notify(tx, tenant, "warning", "grace_reminder", "Reactivation still needed", text)
                return True

            await app.db.write(write, fence=app.cluster.fence())


ACTOR = "coordinator"
