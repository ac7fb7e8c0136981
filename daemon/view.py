"""The daemon's picture of the cluster and its tenants, answered from memory.

Control calls read this snapshot and never wait on the database; it is
refreshed from the store when the store's generation moves (another node's
change) and right after this node's own changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import msgspec

from paragon_licensed.daemon.pace import Pace
from paragon_licensed.daemon.states import TenantView, evaluate, facts
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store import nodes as node_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.db import Tx
from paragon_licensed.daemon.tenant_index import TenantIndex
from paragon_licensed.daemon.timefmt import rfc3339
from paragon_licensed.interface import wire

_ENCODE = msgspec.json.Encoder().encode
# The most tenants GetStatus lists by name (those that need attention); the rest are counted.
ATTENTION_LIMIT = 50

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon


@dataclass
class Snapshot:
    """What one read transaction saw."""

    generation: int = 0
    store_id: str = ""
    db_now: float = 0.0
    cloud_admin_email: str = ""
    tenants: list[tenant_q.TenantRow] = field(default_factory=list)
    nodes: list[node_q.NodeRow] = field(default_factory=list)
    lease: node_q.LeaseRow | None = None
    last_notification: int = 0
    full: bool = True  # tenants holds every tenant, not only those changed since the last look
    taken_at: float = field(default_factory=time.monotonic)  # to age the lease while the store is away


def read_snapshot(tx: Tx, since: tuple[str, int] | None = None) -> Snapshot:
    """What the store holds now; with `since` (store id, generation), only the tenants changed since.

    A store with another id, or whose generation went back, is read in full.
    """
    meta = tenant_q.meta(tx)
    full = since is None or since[0] != meta.store_id or meta.generation < since[1]
    if full:
        tenants = tenant_q.all_tenants(tx)
    elif since is not None and meta.generation > since[1]:
        tenants = tenant_q.changed_since(tx, since[1])
    else:
        tenants = []
    return Snapshot(
        generation=meta.generation,
        store_id=meta.store_id,
        db_now=tx.now(),
        cloud_admin_email=meta.cloud_admin_email,
        tenants=tenants,
        nodes=node_q.all_nodes(tx),
        lease=node_q.lease(tx),
        last_notification=msg_q.last_notification_id(tx),
        full=full,
    )


class View:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self.snapshot = Snapshot()
        # Every tenant's view, by name. Written only here (``_put``, ``load``), so that the index
        # (names in order, by state) always agrees with it.
        self.tenants: dict[str, TenantView] = {}
        self.index = TenantIndex()
        self._status: msgspec.Raw | None = None
        self._status_at = 0.0
        self._loading = anyio.Lock()

    def since(self) -> tuple[str, int] | None:
        """Where the next snapshot may start from (None before the store was read in full)."""
        if not self.snapshot.store_id:
            return None
        return self.snapshot.store_id, self.snapshot.generation

    async def load(self, snapshot: Snapshot) -> list[TenantView]:
        """Take a new snapshot (all tenants, or the changed ones); return those whose state changed.

        One load at a time; a long one (every tenant, after the node set changed) hands the
        event loop back every few milliseconds.
        """
        async with self._loading:
            previous = self.snapshot
            try:
                return await self._load(snapshot)
            except BaseException:
                # Cancelled (a start-up deadline, a shutdown) or failed half-way: this snapshot
                # was not taken, so the next read starts from the previous one again (in full,
                # if there was none) rather than from a generation whose tenants never arrived.
                self.snapshot = previous
                raise

    async def _load(self, snapshot: Snapshot) -> list[TenantView]:
        nodes_changed = [n.computer_id for n in snapshot.nodes] != [
            n.computer_id for n in self.snapshot.nodes
        ]
        tenants = snapshot.tenants
        if snapshot.full:
            rows = tenants
        elif nodes_changed:
            # The integrity key of every tenant depends on the node set: evaluate them all again.
            changed_ids = {row.id for row in tenants}
            rows = [v.row for k, v in self.tenants.items() if k not in changed_ids] + tenants
        else:
            rows = tenants
        self.snapshot = snapshot  # its node set is what the tenants are judged against
        changed = []
        # A full load builds a new dict, swapped in at the end; otherwise the few tenants changed
        # since the last heartbeat are updated in place.
        fresh: dict[str, TenantView] = {} if snapshot.full else self.tenants
        overlay = self.app.local_copies.overlay
        pace = Pace()
        known = facts(self.app)
        for stored in rows:
            if await pace.turn():
                known = facts(self.app)
            row = overlay(stored)  # a license the store lost is still judged from the local copy
            old = self.tenants.get(row.id)
            if old is not None and old.row == row and not nodes_changed:
                fresh[row.id] = old  # this node already evaluated this very row
                continue
            view = evaluate(self.app, row, known=known)
            self._forget_replaced(old, row)
            if old is None or old.state != view.state:
                changed.append(view)
            fresh[row.id] = view
            if not snapshot.full:
                self.index.put(row.id, view.state, view.valid_until)
        if snapshot.full:
            self.tenants = fresh
            self.index.rebuild((name, v.state, v.valid_until) for name, v in fresh.items())
        if rows or nodes_changed:
            self._status = None
        return changed

    def load_local(self) -> None:
        """Before the store answers: the licenses from this node's verified local copies."""
        known = facts(self.app)
        self.tenants = {}
        for stored in self.app.local_copies.tenant_rows():
            row = self.app.local_copies.overlay(stored)
            self.tenants[row.id] = evaluate(self.app, row, known=known)
        self.index.rebuild((name, v.state, v.valid_until) for name, v in self.tenants.items())
        self._status = None

    def update_tenant(self, row: tenant_q.TenantRow) -> TenantView | None:
        """Take one tenant's new row; return its view when its state changed."""
        row = self.app.local_copies.overlay(row)
        view = evaluate(self.app, row)
        old = self.tenants.get(row.id)
        self._forget_replaced(old, row)
        self._put(view)
        return view if old is None or old.state != view.state else None

    def _put(self, view: TenantView) -> None:
        self.tenants[view.tenant] = view
        self.index.put(view.tenant, view.state, view.valid_until)
        self._status = None

    def _forget_replaced(self, old: TenantView | None, row: tenant_q.TenantRow) -> None:
        """Drop the verified payload of a license a tenant no longer uses (memory stays flat)."""
        previous = old.row.license if old is not None else None
        if previous is not None and (row.license is None or row.license.row != previous.row):
            self.app.verifier.forget(previous.row)

    def invalidate(self) -> None:
        self._status = None

    async def reevaluate(self) -> list[TenantView]:
        """Evaluate every tenant again as time passes (licenses expire, grace ends), handing the
        event loop back every few milliseconds so that control calls keep being answered."""
        changed = []
        pace = Pace()
        known = facts(self.app)
        for name in list(self.tenants):
            if await pace.turn():
                known = facts(self.app)
            old = self.tenants.get(name)
            if old is None:
                continue
            view = evaluate(self.app, old.row, known=known)
            if self.tenants.get(name) is not old:
                continue  # replaced while this pass was yielding: the newer view stands
            self._put(view)
            if view.state != old.state:
                changed.append(view)
        self._status = None
        return changed

    # -- what control calls read

    def names(
        self, state: wire.State | None = None, after: str = "", limit: int = 1000
    ) -> tuple[list[str], int]:
        """A page of tenant names in order (those in ``state``, or all) after ``after``, and the total."""
        return self.index.page(state, after, limit)

    def coordinator(self) -> str | None:
        """The lease holder, if its lease has not run out (aged since the snapshot was read).

        This node's own lease is known at once, before the next heartbeat reads the store:
        status, the node list and is_coordinator agree from the moment it takes over or
        steps down.
        """
        if self.app.is_coordinator:
            return self.app.node
        lease = self.snapshot.lease
        if lease is None or lease.remaining - (time.monotonic() - self.snapshot.taken_at) <= 0:
            return None
        if lease.holder == self.app.node:
            return None  # stepped down since the snapshot was read
        return lease.holder

    def node_list(self) -> list[wire.Node]:
        timeout = self.app.config.cluster.node_timeout
        coordinator = self.coordinator()
        names_by_id: dict[str, list[str]] = {}
        for n in self.snapshot.nodes:
            names_by_id.setdefault(n.computer_id, []).append(n.name)
        return [
            wire.Node(
                name=n.name,
                computer_id=n.computer_id,
                build=n.build,
                version=n.version,
                online=n.age <= timeout,
                last_seen=rfc3339(n.last_seen),
                seconds_since_seen=round(max(n.age, 0.0), 1),
                coordinator=n.name == coordinator,
                this_node=n.name == self.app.node,
                problem=_duplicate(n.name, names_by_id[n.computer_id]),
            )
            for n in self.snapshot.nodes
        ]

    def status(self) -> wire.Status:
        names, total = self.index.attention(ATTENTION_LIMIT)
        return self._build_status([self.tenants[name].wire_state for name in names], total)

    def status_reply(self) -> msgspec.Raw:
        """GetStatus's reply, encoded: rebuilt after a change or a second, with each listed
        tenant's part encoded once per evaluation. Its size does not grow with the tenants:
        counts per state and at most ATTENTION_LIMIT tenants."""
        now = time.monotonic()
        if self._status is None or now - self._status_at > 1.0:
            names, total = self.index.attention(ATTENTION_LIMIT)
            document = msgspec.structs.asdict(self._build_status([], total))
            document["attention"] = [self.tenants[name].wire_json for name in names]
            self._status = msgspec.Raw(_ENCODE({"status": document}))
            self._status_at = now
        return self._status

    def _soonest(self) -> wire.TenantState | None:
        name = self.index.soonest_expiry()
        return self.tenants[name].wire_state if name is not None else None

    def _build_status(self, attention: list[wire.TenantState], attention_total: int) -> wire.Status:
        app = self.app
        identity = app.identity
        return wire.Status(
            node=app.node,
            computer_id=identity.computer_id,
            identity_strength=identity.strength,
            build=app.build.value,
            build_problem=app.build.problem,
            deployment="multi_tenant" if app.config.product.deployment == "multi-tenant" else "single_tenant",
            store_backend="postgresql" if app.db.backend_name == "postgresql" else "sqlite",
            store_available=app.store_problem is None,
            store_problem=app.store_problem,
            version=app.version,
            coordinator=self.coordinator(),
            is_coordinator=app.is_coordinator,
            activity=app.activity,
            nodes=self.node_list(),
            tenant_total=len(self.index),
            tenant_states=self.index.counts(),
            attention=attention,
            attention_total=attention_total,
            soonest_expiry=self._soonest(),
            state_problem=app.local.problem,
            clock_problem=app.clock.problem,
        )


def _duplicate(name: str, names: list[str]) -> str | None:
    others = [other for other in names if other != name]
    if not others:
        return None
    return (
        f"DuplicateComputerId: same computer ID as {', '.join(others)} (a cloned machine?); give each "
        "node its own machine-id (systemd-machine-id-setup) and restart it"
    )
