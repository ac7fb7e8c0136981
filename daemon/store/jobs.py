"""Jobs: operations any node hands to the coordinator, with their progress and result.

Parameters carry the operation's request_id, so a job re-run after a failover
asks the portal the same question again and gets the same answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from paragon_licensed.daemon.store.db import Tx


@dataclass(frozen=True)
class JobRow:
    id: str
    kind: str
    tenant_id: str
    params: dict[str, Any]
    submitted_by: str
    actor: str
    state: str  # pending, running, done, failed
    claimed_by: str
    claimed_term: int
    progress: list[dict[str, Any]]
    result: Any
    error_name: str
    error_params: dict[str, Any]


_COLUMNS = (
    "id, kind, tenant_id, params, submitted_by, actor, state, claimed_by, claimed_term, progress, "
    "result, error_name, error_params"
)


def _job(row: tuple[Any, ...]) -> JobRow:
    return JobRow(
        id=row[0],
        kind=row[1],
        tenant_id=row[2],
        params=json.loads(row[3]),
        submitted_by=row[4],
        actor=row[5],
        state=row[6],
        claimed_by=row[7],
        claimed_term=int(row[8]),
        progress=json.loads(row[9]),
        result=json.loads(row[10]) if row[10] else None,
        error_name=row[11],
        error_params=json.loads(row[12]) if row[12] else {},
    )


def submit(
    tx: Tx, job_id: str, kind: str, tenant_id: str, params: dict[str, Any], node: str, actor: str
) -> None:
    tx.execute(
        "INSERT INTO jobs (id, kind, tenant_id, params, submitted_by, actor, created_at, updated_at, "
        "state) VALUES (?, ?, ?, ?, ?, ?, {now}, {now}, 'pending')",
        (job_id, kind, tenant_id, json.dumps(params), node, actor),
    )


def get(tx: Tx, job_id: str) -> JobRow | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
    return _job(row) if row else None


def waiting(tx: Tx, term: int) -> bool:
    """Whether a job waits for this term's coordinator (a cheap read before a fenced claim)."""
    return bool(
        tx.scalar(
            "SELECT 1 FROM jobs WHERE state = 'pending' OR (state = 'running' AND claimed_term < ?) LIMIT 1",
            (term,),
        )
    )


def claim_next(tx: Tx, node: str, term: int) -> JobRow | None:
    """Take the oldest pending job, or one a previous coordinator left running."""
    row = tx.one(
        "SELECT id FROM jobs WHERE state = 'pending' OR (state = 'running' AND claimed_term < ?) "
        "ORDER BY created_at LIMIT 1",
        (term,),
    )
    if row is None:
        return None
    tx.execute(
        "UPDATE jobs SET state = 'running', claimed_by = ?, claimed_term = ?, updated_at = {now} "
        "WHERE id = ?",
        (node, term, row[0]),
    )
    return get(tx, str(row[0]))


def release_own(tx: Tx, node: str, term: int) -> int:
    """Put back the jobs this coordinator had claimed but no longer runs (its runner restarted)."""
    return tx.execute(
        "UPDATE jobs SET state = 'pending', updated_at = {now} "
        "WHERE state = 'running' AND claimed_by = ? AND claimed_term = ?",
        (node, term),
    )


def give_up(tx: Tx, job_id: str, error_name: str, error_params: dict[str, Any]) -> bool:
    """Fail a job nobody claimed in time, unless a coordinator took it meanwhile."""
    return (
        tx.execute(
            "UPDATE jobs SET state = 'failed', error_name = ?, error_params = ?, params = '{}', "
            "updated_at = {now} WHERE id = ? AND state = 'pending'",
            (error_name, json.dumps(error_params), job_id),
        )
        > 0
    )


def add_progress(tx: Tx, job_id: str, step: dict[str, Any]) -> None:
    current = tx.scalar("SELECT progress FROM jobs WHERE id = ?", (job_id,))
    steps = json.loads(current) if current else []
    steps.append(step)
    tx.execute("UPDATE jobs SET progress = ?, updated_at = {now} WHERE id = ?", (json.dumps(steps), job_id))


def finish(
    tx: Tx,
    job_id: str,
    result: Any = None,
    error_name: str = "",
    error_params: dict[str, Any] | None = None,
) -> None:
    """Record the outcome; the parameters are scrubbed since they may hold an activation key."""
    tx.execute(
        "UPDATE jobs SET state = ?, result = ?, error_name = ?, error_params = ?, params = ?, "
        "updated_at = {now} WHERE id = ?",
        (
            "failed" if error_name else "done",
            json.dumps(result) if result is not None else "",
            error_name,
            json.dumps(error_params or {}),
            "{}",
            job_id,
        ),
    )


def prune(tx: Tx, older_than: float) -> int:
    return tx.execute(
        "DELETE FROM jobs WHERE state IN ('done', 'failed') AND updated_at < {now} - ?",
        (older_than,),
    )
