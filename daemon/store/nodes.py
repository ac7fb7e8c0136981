"""The node registry and the coordinator lease, both timed by the database's clock."""

from __future__ import annotations

from dataclasses import dataclass

from paragon_licensed.daemon.store.db import Tx


@dataclass(frozen=True)
class NodeRow:
    name: str
    computer_id: str
    machine_fp: str
    hardware_fp: str
    build: str
    version: str
    registered_at: float
    started_at: float
    last_seen: float
    age: float  # seconds since last_seen, on the database's clock


@dataclass(frozen=True)
class LeaseRow:
    holder: str
    term: int
    acquired_at: float
    expires_at: float
    remaining: float  # seconds until expiry on the database's clock; negative when expired


_NODE_COLUMNS = (
    "name, computer_id, machine_fp, hardware_fp, build, version, registered_at, started_at, "
    "last_seen, {now} - last_seen"
)


def register(
    tx: Tx,
    name: str,
    computer_id: str,
    machine_fp: str,
    hardware_fp: str,
    build: str,
    version: str,
) -> bool:
    """Record this node as started now; return True when the node is new to the cluster."""
    updated = tx.execute(
        "UPDATE nodes SET computer_id = ?, machine_fp = ?, hardware_fp = ?, build = ?, "
        "version = ?, started_at = {now}, last_seen = {now} WHERE name = ?",
        (computer_id, machine_fp, hardware_fp, build, version, name),
    )
    if updated:
        return False
    tx.execute(
        "INSERT INTO nodes (name, computer_id, machine_fp, hardware_fp, build, version, "
        "registered_at, started_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, {now}, {now}, {now})",
        (name, computer_id, machine_fp, hardware_fp, build, version),
    )
    return True


def heartbeat(tx: Tx, name: str) -> bool:
    """Refresh this node's last_seen; False when the node was forgotten meanwhile."""
    return tx.execute("UPDATE nodes SET last_seen = {now} WHERE name = ?", (name,)) > 0


def get(tx: Tx, name: str) -> NodeRow | None:
    row = tx.one(f"SELECT {_NODE_COLUMNS} FROM nodes WHERE name = ?", (name,))
    return NodeRow(*row) if row else None


def all_nodes(tx: Tx) -> list[NodeRow]:
    return [NodeRow(*r) for r in tx.all(f"SELECT {_NODE_COLUMNS} FROM nodes ORDER BY name")]


def forget(tx: Tx, name: str) -> bool:
    return tx.execute("DELETE FROM nodes WHERE name = ?", (name,)) > 0


def lease(tx: Tx) -> LeaseRow | None:
    row = tx.one("SELECT holder, term, acquired_at, expires_at, expires_at - {now} FROM lease")
    return LeaseRow(*row) if row else None


def acquire_or_renew(tx: Tx, holder: str, duration: float) -> LeaseRow | None:
    """Take the lease if it is free or expired, or renew it if this holder has it.

    Taking it over increments the term, which fences every write of the previous
    holder. Returns the lease when this holder has it afterwards, else None.
    """
    current = tx.one("SELECT holder, term, expires_at > {now} FROM lease WHERE id = 1{lock}")
    if current is None:
        tx.execute(
            "INSERT INTO lease (id, holder, term, acquired_at, expires_at) "
            "VALUES (1, ?, 1, {now}, {now} + ?)",
            (holder, duration),
        )
    elif current[0] == holder and current[2]:
        tx.execute("UPDATE lease SET expires_at = {now} + ? WHERE id = 1", (duration,))
    elif not current[2]:
        tx.execute(
            "UPDATE lease SET holder = ?, term = term + 1, acquired_at = {now}, "
            "expires_at = {now} + ? WHERE id = 1",
            (holder, duration),
        )
    else:
        return None
    return lease(tx)


def release(tx: Tx, holder: str, term: int) -> None:
    """Give the lease up at shutdown so another node takes over without waiting for expiry."""
    tx.execute(
        "UPDATE lease SET expires_at = {now} WHERE id = 1 AND holder = ? AND term = ?",
        (holder, term),
    )
