"""What changed while the daemon was down: a new identity, a restored store, a newer portal license.

Each node, after READY=1, compares its identity with its previous registration
(an OS reinstall or new hardware: the tenants need a transfer, and no portal
call is made) and the store with its marker file (a store whose generation went
back, or another store id, was restored). The coordinator also asks the portal
whether it issued a newer license than the one stored, which catches a restore
of the whole state folder. Reactivating what these checks flag is the
reactivator's job; first activations from the configuration's seeds are here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from paragon_licensed import text
from paragon_licensed.daemon import log
from paragon_licensed.daemon.localstate import Marker
from paragon_licensed.daemon.pace import Pace
from paragon_licensed.daemon.store import checks
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store import nodes as node_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.db import StoreUnavailableError, Tx
from paragon_licensed.interface.errors import (
    CTL,
    PortalNotConfigured,
    PortalRejected,
    PortalUnreachable,
    VarlinkError,
)

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon

ACTOR = "coordinator"
QUERY = "/licenses/current/query"
QUERY_SIZE = 1000  # tenants per query: the portal API's limit
ANSWER_BYTES = 200  # an answer's bytes per tenant beyond its tenant ID and integrity key
SYNC_INTERVAL = 5.0  # the restore marker
COPY_INTERVAL = 60.0  # the local license copies of a large installation


def changed_part(previous: node_q.NodeRow, machine_fp: str, hardware_fp: str) -> str:
    """Which input of the computer ID changed, in words, without any raw value."""
    parts = []
    if previous.machine_fp and previous.machine_fp != machine_fp:
        parts.append("the OS installation's machine-id changed (was the OS reinstalled?)")
    if previous.hardware_fp != hardware_fp:
        if not hardware_fp:
            parts.append("the hardware's product UUID is no longer readable")
        elif not previous.hardware_fp:
            parts.append("a hardware product UUID is now readable")
        else:
            parts.append("the hardware's product UUID changed (was the hardware replaced?)")
    return " and ".join(parts) or "the computer ID changed"


class Startup:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self.marker_checked = False
        self.done = anyio.Event()  # the coordinator's take-over checks ran (seeds, portal's current)
        self._marker_generation = -1
        self._synced_at = 0.0
        self._copied_at = 0.0

    # -- every node, once after READY=1

    async def node_checks(self) -> None:
        app = self.app
        app.set_activity("checking for identity changes and restores")
        try:
            await self.check_identity()
            await self.check_marker()
        except StoreUnavailableError as exc:
            log.warning("start-up checks postponed: store unavailable", reason=exc)
            return
        finally:
            app.set_activity("idle")

    async def check_identity(self) -> None:
        app = self.app
        previous = app.cluster.previous_node
        identity = app.identity
        if previous is None or previous.computer_id == identity.computer_id:
            return
        what = changed_part(previous, identity.machine_fingerprint, identity.hardware_fingerprint or "")
        old = previous.computer_id
        reason = (
            f"this node's computer ID changed from {old} to {identity.computer_id}: {what}. "
            f"Transfer the license: `{CTL} license transfer --replace {old}`"
        )
        log.warning("computer ID changed: the license must be transferred", node=app.node, change=what)

        def write(tx: Tx) -> list[str]:
            flagged = []
            for row in tenant_q.all_tenants(tx):
                if row.license is None or old not in self._licensed_ids(row):
                    continue
                if tenant_q.set_flag(tx, row.id, "needs_transfer", "identity", reason):
                    msg_q.notify(tx, row.id, "error", "needs_transfer", "License must be transferred", reason)
                    flagged.append(row.id)
            return flagged

        flagged = await app.db.write(write)
        await app.refresh()
        for tenant in flagged:
            log.warning("tenant needs a transfer", tenant=tenant)

    def _licensed_ids(self, row: tenant_q.TenantRow) -> list[str]:
        return self.app.licensing.licensed_ids(row)

    async def check_marker(self) -> None:
        """Compare the store with this node's marker; a store that went back in time was restored."""
        app = self.app
        marker = app.local.read_marker()
        snapshot = app.view.snapshot
        self.marker_checked = True
        if marker is None or not marker.store_id:
            await self.sync_local_state(force=True)
            return
        if marker.store_id != snapshot.store_id:
            why = "the store was replaced (another store id)"
        elif snapshot.generation < marker.generation:
            why = (
                f"the store went back in time (generation {snapshot.generation}, "
                f"last seen {marker.generation})"
            )
        else:
            await self.sync_local_state(force=True)
            return
        log.warning("restore detected", reason=why)
        await self.flag_restore([t for t in app.view.tenants], why)
        await self.sync_local_state(force=True)

    async def flag_restore(self, tenants: list[str], why: str) -> None:
        app = self.app
        reason = f"restored from a backup: {why}; the license is reactivated automatically"

        def write(tx: Tx) -> None:
            for tenant in tenants:
                if tenant_q.set_flag(tx, tenant, "needs_reactivation", "restore", reason):
                    msg_q.notify(tx, tenant, "warning", "restore_detected", "Restore detected", reason)

        await app.db.write(write)
        await app.refresh()
        app.reactivator.wake()

    async def sync_local_state(self, force: bool = False) -> None:
        """Record the store's generation and keep a verified copy of every license in state_dir.

        Runs after the start-up check, when the generation moved, at most every few seconds
        (a tenant check of thousands of tenants must not rewrite the copies each time).
        """
        view, local = self.app.view, self.app.local
        if not self.marker_checked or not local.due():
            return  # before the start-up check, or backing off after a failed write
        if view.snapshot.generation == self._marker_generation and local.write_problem is None:
            return
        if not force and time.monotonic() - self._synced_at < SYNC_INTERVAL and local.write_problem is None:
            return
        self._synced_at = time.monotonic()
        # The copies are rewritten whole: with thousands of tenants, not at every change.
        every = SYNC_INTERVAL if len(view.tenants) <= 1000 else COPY_INTERVAL
        pace = Pace()
        tenants = list(view.tenants.items())  # the view changes while this hands the loop back
        if force or local.write_problem is not None or time.monotonic() - self._copied_at >= every:
            documents = {}
            for name, tenant in tenants:
                await pace.turn()
                stored, payload = tenant.row.license, tenant.payload
                if stored is not None and payload is not None and tenant.state != "invalid":
                    documents[name] = (stored.document, payload.issued_at.timestamp())
            if not await anyio.to_thread.run_sync(local.save_licenses, documents):
                return  # reported in status; retried after the backoff
            self._copied_at = time.monotonic()
            for name, tenant in tenants:
                await pace.turn()
                if tenant.payload is not None and local.copies.get(name) == documents.get(name, ("",))[0]:
                    self.app.local_copies.keep(name, local.copies[name], tenant.payload)
        licenses = {}
        for name, tenant in tenants:
            await pace.turn()
            if tenant.payload is not None:
                licenses[name] = tenant.payload.license_id
        marker = Marker(view.snapshot.store_id, view.snapshot.generation, licenses)
        if marker != local.read_marker() and not await anyio.to_thread.run_sync(local.write_marker, marker):
            return
        self._marker_generation = view.snapshot.generation

    # -- the coordinator, once per take-over

    async def run(self) -> None:
        """Coordinator duty: seeds and the portal check first, then keep reactivating what needs it."""
        await self.activate_seeds()
        await self.check_portal_current()
        self.done.set()
        await self.app.reactivator.run()

    async def activate_seeds(self) -> None:
        """Activate each seeded tenant that has an activation key and no license yet."""
        app = self.app
        for seed in app.config.tenants:
            view = app.view.tenants.get(seed.id)
            if not seed.activation_key or view is None or view.state != "unlicensed" or view.row.flag:
                continue
            app.set_activity(f"activating tenant {seed.id}")

            async def report(step: str, message: str, tenant: str = seed.id) -> None:
                log.info(message, tenant=tenant, step=step)

            try:
                await app.licensing.activate(
                    tenant=seed.id,
                    activation_key=seed.activation_key,
                    request_id=str(uuid.uuid4()),
                    actor=f"{ACTOR} {app.node} (seed)",
                    report=report,
                )
            except VarlinkError as exc:
                log.warning("activation from the configuration failed", tenant=seed.id, reason=exc.sentence())
            finally:
                app.set_activity("idle")

    async def check_portal_current(self) -> None:
        """Ask the portal for each tenant's newest license; a newer one than ours means a restore.

        In queries of up to QUERY_SIZE tenants (POST /licenses/current/query); a portal without
        that endpoint is asked once per tenant (GET /licenses/current), as before it existed.
        """
        app = self.app
        if not app.config.portal.url:
            return
        ours = {
            name: (view.payload.license_id, view.payload.integrity_key)
            for name, view in app.view.tenants.items()
            if view.payload is not None
        }
        if not ours:
            return
        app.set_activity("asking the portal for the current licenses")
        started = time.monotonic()
        try:
            newer, requests = await self._query_current(ours)
            if newer is None:
                log.info("the portal has no current-license query: asking for each tenant", tenants=len(ours))
                newer = await self._ask_each(ours)
                requests += len(ours)
            restored = await self._lost_licenses(newer)
        finally:
            app.set_activity("idle")
        log.info(
            "current licenses checked on the portal",
            tenants=len(ours),
            requests=requests,
            seconds=round(time.monotonic() - started, 3),
        )
        if restored:
            log.warning(
                "the portal issued newer licenses than the stored ones: restore", tenants=",".join(restored)
            )
            await self.flag_restore(restored, "the License Portal issued a newer license than the stored one")

    async def _query_current(self, ours: dict[str, tuple[str, str]]) -> tuple[dict[str, str] | None, int]:
        """(tenant -> the portal's license ID where it is not ours, queries sent); None for the map
        when the portal does not have the query. Queries go one after the other: no burst."""
        app = self.app
        newer: dict[str, str] = {}
        sent = 0
        for chunk in query_chunks(ours, app.config.portal.max_response):
            body = {"tenants": [{"tenant_id": t, "integrity_key": ours[t][1]} for t in chunk]}
            sent += 1
            try:
                answer = await app.portal.query(QUERY, body, what="licenses/current/query")
            except (PortalUnreachable, PortalRejected, PortalNotConfigured) as exc:
                log.info("portal's current licenses unknown", tenants=len(chunk), reason=exc.short_name)
                continue
            if answer is None:
                if sent == 1:
                    return None, sent
                log.info("portal's current licenses unknown", tenants=len(chunk), reason="no query")
                continue
            found = _current_ids(answer)
            missing = [t for t in chunk if t not in found]
            if missing:
                log.info(
                    "portal's current licenses unknown", tenants=len(missing), reason="missing from answer"
                )
            for tenant in chunk:
                portal_id = found.get(tenant, "")
                if portal_id not in ("", ours[tenant][0]):
                    newer[tenant] = portal_id
        return newer, sent

    async def _ask_each(self, ours: dict[str, tuple[str, str]]) -> dict[str, str]:
        """One GET /licenses/current per tenant, for a portal without the query."""
        app = self.app
        newer: dict[str, str] = {}
        limiter = anyio.CapacityLimiter(app.config.portal.max_concurrency)

        async def ask(tenant: str, license_id: str, key: str) -> None:
            async with limiter:
                try:
                    current = await app.portal.get(
                        "/licenses/current",
                        {"tenant_id": tenant, "integrity_key": key},
                        what="licenses/current",
                    )
                except (PortalUnreachable, PortalRejected, PortalNotConfigured) as exc:
                    log.info("portal's current license unknown", tenant=tenant, reason=exc.short_name)
                    return
                portal_id = text.clean(current.get("license_id") or "", 128)
                if portal_id not in ("", license_id):
                    newer[tenant] = portal_id

        async with anyio.create_task_group() as tg:
            for tenant, (license_id, key) in ours.items():
                tg.start_soon(ask, tenant, license_id, key)
        return newer

    async def _lost_licenses(self, newer: dict[str, str]) -> list[str]:
        """The tenants whose newer portal license the store lost: it was restored.

        A license this store never installed, and no request of ours waiting for its answer
        (an offline response not imported yet, a call cut short by a crash). Each tenant is
        looked at under its lock, so an operation that was running when the portal answered
        has finished (and installed what the portal issued it) before.
        """
        app = self.app
        restored: list[str] = []
        limiter = anyio.CapacityLimiter(app.config.portal.max_concurrency)

        async def look(tenant: str, portal_id: str) -> None:
            async with limiter, app.tenant_lock(tenant):
                known, waiting = await app.db.read(
                    lambda tx: (
                        tenant_q.license_ids(tx, tenant),
                        tenant_q.pending_offline_requests(tx, tenant) or checks.pending_for(tx, tenant),
                    )
                )
                if portal_id not in known and not waiting:
                    restored.append(tenant)

        async with anyio.create_task_group() as tg:
            for tenant, portal_id in newer.items():
                tg.start_soon(look, tenant, portal_id)
        return sorted(restored)


def query_chunks(ours: Mapping[str, tuple[str, str]], max_response: int) -> Iterator[list[str]]:
    """The tenants in queries of at most QUERY_SIZE whose answer fits in ``max_response`` bytes.

    An answer repeats each tenant and integrity key and adds the current license's ID and
    times (about ANSWER_BYTES more); a chunk is cut when its estimate passes half of the
    limit, so a portal that spends more bytes per entry still fits.
    """
    chunk: list[str] = []
    size = 0
    for tenant, (_, key) in ours.items():
        entry = len(tenant.encode()) + len(key.encode()) + ANSWER_BYTES
        if chunk and (len(chunk) >= QUERY_SIZE or size + entry > max_response // 2):
            yield chunk
            chunk, size = [], 0
        chunk.append(tenant)
        size += entry
    if chunk:
        yield chunk


def _current_ids(answer: dict[str, Any]) -> dict[str, str]:
    """tenant -> the license ID the portal answered for it ("" for none), from a query's answer."""
    found: dict[str, str] = {}
    entries = answer.get("tenants")
    if not isinstance(entries, list):
        return found
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("tenant_id"), str):
            continue
        current = entry.get("current")
        license_id = current.get("license_id") if isinstance(current, dict) else None
        found[entry["tenant_id"]] = text.clean(license_id if isinstance(license_id, str) else "", 128)
    return found
