"""What the metrics report from the store: the last tenant check and the e-mail outbox.

Read now and then by every node (`metrics.StoreFacts`), never while a scrape
waits: the same figures for the whole cluster, whichever node is asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from paragon_licensed.daemon.store.db import Tx


@dataclass(frozen=True)
class LastCheck:
    started_at: float
    finished_at: float
    results: dict[str, int]  # item state (reactivated, failed, skipped, pending) -> tenants


@dataclass(frozen=True)
class Facts:
    last_check: LastCheck | None = None
    mail_pending: int = 0  # not sent yet
    mail_failed: int = 0  # not sent yet, and at least one delivery attempt failed
    read_at: float = 0.0  # the database's clock


def read_facts(tx: Tx) -> Facts:
    run = tx.one(
        "SELECT id, started_at, finished_at FROM check_runs WHERE finished_at IS NOT NULL "
        "ORDER BY finished_at DESC LIMIT 1"
    )
    last = None
    if run is not None:
        counts = tx.all("SELECT state, count(*) FROM check_items WHERE run_id = ? GROUP BY state", (run[0],))
        last = LastCheck(float(run[1]), float(run[2]), {str(state): int(n) for state, n in counts})
    mail = tx.one(
        "SELECT count(*), coalesce(sum(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0) "
        "FROM outbox WHERE sent_at IS NULL"
    )
    pending, failed = (int(mail[0]), int(mail[1])) if mail else (0, 0)
    return Facts(last, pending, failed, tx.now())
