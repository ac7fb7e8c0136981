"""The SQLite store (ARCHITECTURE.md §4, §6): migrations, durability, meta, the lease and fencing, queries.

Everything runs against a real database file; the concurrency test runs two
real processes that share it, as two daemons on one host would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from paragon_licensed.daemon.store import audit
from paragon_licensed.daemon.store import jobs as job_q
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store import nodes as node_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.db import (
    Database,
    Fence,
    FencedOut,
    Tx,
    migrations,
    schema_version,
)
from paragon_licensed.daemon.store.sqlite import SqliteBackend

TABLES = {
    "meta",
    "nodes",
    "lease",
    "tenants",
    "licenses",
    "orders_used",
    "notifications",
    "outbox",
    "mail_reminders",
    "jobs",
    "audit",
    "offline_requests",
    "schema_migrations",
}


def open_db(path: Path, busy_timeout: float = 10.0) -> Database:
    return Database(SqliteBackend(str(path), busy_timeout))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "store.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_db(db_path)
    database.migrate()
    yield database
    database.close()


# -- migrations and settings


def test_migrations_are_versioned_and_idempotent(db_path: Path) -> None:
    shipped = migrations()
    assert shipped, "no migration shipped in the package"
    versions = [version for version, _, _ in shipped]
    assert versions == sorted(set(versions))
    assert versions[0] == 1

    first = open_db(db_path)
    assert first.migrate() == versions
    assert first.migrate() == []
    second = open_db(db_path)  # a second Database (another daemon) on the same file
    assert second.migrate() == []
    assert schema_version(first) == schema_version(second) == versions[-1]
    recorded = second.read_sync(
        lambda tx: tx.all("SELECT version, name FROM schema_migrations ORDER BY version")
    )
    assert [(v, n) for v, n, _ in shipped] == [(int(v), str(n)) for v, n in recorded]
    tables = {
        str(r[0])
        for r in second.read_sync(lambda tx: tx.all("SELECT name FROM sqlite_master WHERE type = 'table'"))
    }
    assert tables >= TABLES
    first.close()
    second.close()


def test_database_file_is_private(db: Database, db_path: Path) -> None:
    assert db_path.stat().st_mode & 0o777 == 0o600


def test_wal_and_synchronous_full(db: Database, db_path: Path) -> None:
    assert db.backend_name == "sqlite"
    conn = db.backend.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # WAL is a property of the file: another connection sees it too.
    other = open_db(db_path)
    assert other.backend.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_every_thread_gets_its_own_connection_with_the_settings(db: Database) -> None:
    seen: list[tuple[int, int]] = []

    def worker() -> None:
        conn = db.backend.connection()
        seen.append((id(conn), conn.execute("PRAGMA synchronous").fetchone()[0]))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen[0][0] != id(db.backend.connection())
    assert seen[0][1] == 2


# -- meta


def test_meta_has_store_id_and_generation(db: Database, db_path: Path) -> None:
    meta = db.read_sync(tenant_q.meta)
    assert str(uuid.UUID(meta.store_id)) == meta.store_id
    assert meta.generation == 1
    assert meta.cloud_admin_email == ""
    other = open_db(db_path)
    other.migrate()
    assert other.read_sync(tenant_q.meta).store_id == meta.store_id  # migrating again keeps it
    other.close()


def test_generation_bumps_on_changes(db: Database) -> None:
    start = db.read_sync(tenant_q.generation)
    assert db.write_sync(lambda tx: tx.bump_generation()) == start + 1
    assert db.write_sync(tenant_q.ensure_tenant, "acme", "")
    assert db.read_sync(tenant_q.generation) == start + 2
    assert not db.write_sync(tenant_q.ensure_tenant, "acme", "")  # no change, no bump
    assert db.read_sync(tenant_q.generation) == start + 2
    db.write_sync(tenant_q.set_cloud_admin_email, "cloud@example.com")
    meta = db.read_sync(tenant_q.meta)
    assert (meta.generation, meta.cloud_admin_email) == (start + 3, "cloud@example.com")


def test_a_failed_write_rolls_back(db: Database) -> None:
    def fail(tx: Tx) -> None:
        tenant_q.ensure_tenant(tx, "ghost")
        raise RuntimeError("boom")

    before = db.read_sync(tenant_q.generation)
    with pytest.raises(RuntimeError):
        db.write_sync(fail)
    assert db.read_sync(tenant_q.tenant_ids) == []
    assert db.read_sync(tenant_q.generation) == before


def test_database_clock(db: Database) -> None:
    assert abs(db.read_sync(lambda tx: tx.now()) - time.time()) < 5


# -- the lease and fencing


def expire_lease(db: Database) -> None:
    db.write_sync(lambda tx: tx.execute("UPDATE lease SET expires_at = {now} - 1 WHERE id = 1"))


def test_lease_acquire_renew_takeover(db: Database) -> None:
    assert db.read_sync(node_q.lease) is None
    first = db.write_sync(node_q.acquire_or_renew, "mgmt-1", 15.0)
    assert first is not None
    assert (first.holder, first.term) == ("mgmt-1", 1)
    assert 14 < first.remaining <= 15

    renewed = db.write_sync(node_q.acquire_or_renew, "mgmt-1", 15.0)
    assert renewed is not None
    assert (renewed.holder, renewed.term, renewed.acquired_at) == ("mgmt-1", 1, first.acquired_at)
    assert renewed.expires_at >= first.expires_at

    assert db.write_sync(node_q.acquire_or_renew, "mgmt-2", 15.0) is None  # held by mgmt-1

    expire_lease(db)
    taken = db.write_sync(node_q.acquire_or_renew, "mgmt-2", 15.0)
    assert taken is not None
    assert (taken.holder, taken.term) == ("mgmt-2", 2)
    assert db.write_sync(node_q.acquire_or_renew, "mgmt-1", 15.0) is None

    expire_lease(db)  # even the same holder gets a new term after its lease lapsed
    again = db.write_sync(node_q.acquire_or_renew, "mgmt-2", 15.0)
    assert again is not None
    assert again.term == 3


def test_release_lets_another_node_take_over_at_once(db: Database) -> None:
    lease = db.write_sync(node_q.acquire_or_renew, "mgmt-1", 15.0)
    assert lease is not None
    db.write_sync(node_q.release, "mgmt-1", 99)  # a stale term releases nothing
    assert db.write_sync(node_q.acquire_or_renew, "mgmt-2", 15.0) is None
    db.write_sync(node_q.release, "mgmt-1", lease.term)
    taken = db.write_sync(node_q.acquire_or_renew, "mgmt-2", 15.0)
    assert taken is not None
    assert taken.term == lease.term + 1


def count_notifications(db: Database) -> int:
    return int(db.read_sync(lambda tx: tx.scalar("SELECT count(*) FROM notifications")))


def test_fenced_write_succeeds_with_the_current_term(db: Database) -> None:
    lease = db.write_sync(node_q.acquire_or_renew, "mgmt-1", 15.0)
    assert lease is not None
    db.write_sync(msg_q.notify, None, "info", "test", "t", "b", fence=Fence("mgmt-1", lease.term))
    assert count_notifications(db) == 1


def test_fencing_refuses_a_moved_on_term_and_writes_nothing(db: Database) -> None:
    old = db.write_sync(node_q.acquire_or_renew, "mgmt-1", 15.0)
    assert old is not None
    expire_lease(db)
    new = db.write_sync(node_q.acquire_or_renew, "mgmt-2", 15.0)
    assert new is not None
    assert new.term == old.term + 1
    before = db.read_sync(tenant_q.generation)
    called: list[bool] = []

    def write(tx: Tx) -> None:
        called.append(True)
        msg_q.notify(tx, None, "info", "test", "t", "b")
        tx.bump_generation()

    with pytest.raises(FencedOut):
        db.write_sync(write, fence=Fence("mgmt-1", old.term))
    assert called == []
    assert count_notifications(db) == 0
    assert db.read_sync(tenant_q.generation) == before
    # The same node with a stale term, and a right term with the wrong holder, are refused too.
    with pytest.raises(FencedOut):
        db.write_sync(write, fence=Fence("mgmt-2", old.term))
    with pytest.raises(FencedOut):
        db.write_sync(write, fence=Fence("mgmt-1", new.term))
    assert count_notifications(db) == 0


def test_fencing_refuses_an_expired_lease(db: Database) -> None:
    lease = db.write_sync(node_q.acquire_or_renew, "mgmt-1", 15.0)
    assert lease is not None
    expire_lease(db)
    with pytest.raises(FencedOut):
        db.write_sync(msg_q.notify, None, "info", "k", "t", "b", fence=Fence("mgmt-1", lease.term))
    assert count_notifications(db) == 0


def test_fencing_without_any_lease(db: Database) -> None:
    with pytest.raises(FencedOut):
        db.write_sync(msg_q.notify, None, "info", "k", "t", "b", fence=Fence("mgmt-1", 1))


def test_fence_check_and_write_share_one_transaction(db: Database, db_path: Path) -> None:
    """While a fenced write is open, no other node can take the lease over in between."""
    lease = db.write_sync(node_q.acquire_or_renew, "mgmt-1", 0.5)
    assert lease is not None
    inside = threading.Event()
    release = threading.Event()

    def slow_write(tx: Tx) -> None:
        inside.set()
        assert release.wait(10)
        msg_q.notify(tx, None, "info", "k", "t", "b")

    writer = threading.Thread(
        target=lambda: db.write_sync(slow_write, fence=Fence("mgmt-1", lease.term)), daemon=True
    )
    writer.start()
    assert inside.wait(10)
    other = open_db(db_path, busy_timeout=0.2)
    time.sleep(0.6)  # the lease has expired on the clock, but the fenced transaction holds the lock
    with pytest.raises(Exception, match="locked"):
        other.write_sync(node_q.acquire_or_renew, "mgmt-2", 15.0)
    release.set()
    writer.join(10)
    assert count_notifications(db) == 1
    taken = other.write_sync(node_q.acquire_or_renew, "mgmt-2", 15.0)
    assert taken is not None
    assert taken.term == lease.term + 1
    other.close()


# -- the node registry


def test_node_registry(db: Database) -> None:
    assert db.write_sync(node_q.register, "mgmt-1", "cid-1", "mfp", "hfp", "3.2.1", "0.1.0") is True
    assert db.write_sync(node_q.register, "mgmt-2", "cid-2", "mfp2", "", "3.2.1", "0.1.0") is True
    assert db.write_sync(node_q.register, "mgmt-1", "cid-1b", "mfp", "hfp", "3.3.0", "0.2.0") is False
    one = db.read_sync(node_q.get, "mgmt-1")
    assert one is not None
    assert (one.computer_id, one.build, one.version, one.hardware_fp) == ("cid-1b", "3.3.0", "0.2.0", "hfp")
    assert one.registered_at <= one.started_at
    assert 0 <= one.age < 5
    assert db.write_sync(node_q.heartbeat, "mgmt-2") is True
    assert [n.name for n in db.read_sync(node_q.all_nodes)] == ["mgmt-1", "mgmt-2"]
    assert db.write_sync(node_q.forget, "mgmt-2") is True
    assert db.write_sync(node_q.forget, "mgmt-2") is False
    assert db.write_sync(node_q.heartbeat, "mgmt-2") is False  # forgotten meanwhile
    assert db.read_sync(node_q.get, "mgmt-2") is None
    assert [n.name for n in db.read_sync(node_q.all_nodes)] == ["mgmt-1"]


def test_node_age_uses_the_database_clock(db: Database) -> None:
    db.write_sync(node_q.register, "mgmt-1", "cid", "", "", "", "")
    db.write_sync(lambda tx: tx.execute("UPDATE nodes SET last_seen = {now} - 30 WHERE name = 'mgmt-1'"))
    node = db.read_sync(node_q.get, "mgmt-1")
    assert node is not None
    assert 29 < node.age < 35


# -- tenants and licenses


def test_tenants_round_trip(db: Database) -> None:
    assert db.write_sync(tenant_q.ensure_tenant, "beta", "b@example.com")
    assert db.write_sync(tenant_q.ensure_tenant, "alpha", "")
    assert not db.write_sync(tenant_q.ensure_tenant, "alpha", "ignored@example.com")  # seeds never overwrite
    assert db.read_sync(tenant_q.tenant_ids) == ["alpha", "beta"]
    assert db.write_sync(tenant_q.set_admin_email, "alpha", "a@example.com")
    assert not db.write_sync(tenant_q.set_admin_email, "nobody", "x@example.com")
    alpha = db.read_sync(tenant_q.get_tenant, "alpha")
    assert alpha is not None
    assert (alpha.admin_email, alpha.flag, alpha.license, alpha.retry_count) == ("a@example.com", "", None, 0)
    assert db.read_sync(tenant_q.get_tenant, "nobody") is None
    assert [t.id for t in db.read_sync(tenant_q.all_tenants)] == ["alpha", "beta"]


def install(db: Database, license_id: str, valid_until: float = 2e9) -> bool:
    return db.write_sync(
        tenant_q.install_license,
        "acme",
        license_id,
        f"-----BEGIN PARAGON LICENSE-----\n{license_id}\n-----END PARAGON LICENSE-----\n",
        "3.2.1",
        "ik-1",
        1.7e9,
        valid_until,
        "mgmt-1",
        "activation",
        [("order-1", "print"), ("order-2", "scan")],
    )


def test_licenses_history_and_orders(db: Database) -> None:
    db.write_sync(tenant_q.ensure_tenant, "acme", "")
    db.write_sync(tenant_q.set_flag, "acme", "needs_reactivation", "upgrade", "build changed", 2e9, 1.8e9)
    assert install(db, "lic-1") is True
    assert install(db, "lic-1") is False  # already current
    assert install(db, "lic-2") is True
    tenant = db.read_sync(tenant_q.get_tenant, "acme")
    assert tenant is not None
    assert tenant.license is not None
    assert (tenant.license.license_id, tenant.license.cause, tenant.license.installed_by) == (
        "lic-2",
        "activation",
        "mgmt-1",
    )
    assert (tenant.flag, tenant.flag_cause, tenant.grace_until, tenant.next_retry_at) == ("", "", None, None)
    assert [row.license_id for row in db.read_sync(tenant_q.license_history, "acme")] == ["lic-2", "lic-1"]
    assert install(db, "lic-1") is True  # going back to an older one keeps one history row per license
    assert [row.license_id for row in db.read_sync(tenant_q.license_history, "acme")] == ["lic-2", "lic-1"]
    assert db.read_sync(tenant_q.license_ids, "acme") == {"lic-1", "lic-2"}
    assert db.read_sync(tenant_q.orders_used, "ik-1") == [("order-1", "print"), ("order-2", "scan")]
    assert db.read_sync(tenant_q.orders_used, "ik-other") == []


def test_flags_and_retries(db: Database) -> None:
    db.write_sync(tenant_q.ensure_tenant, "acme", "")
    flag = ("needs_reactivation", "upgrade", "build changed", 2e9, 1.8e9)
    assert db.write_sync(tenant_q.set_flag, "acme", *flag) is True
    assert db.write_sync(tenant_q.set_flag, "acme", *flag) is False  # already flagged for this cause
    assert db.write_sync(tenant_q.set_flag, "nobody", *flag) is False
    first = db.read_sync(tenant_q.get_tenant, "acme")
    assert first is not None
    assert (first.flag, first.flag_cause, first.flag_reason, first.grace_until, first.next_retry_at) == (
        "needs_reactivation",
        "upgrade",
        "build changed",
        2e9,
        1.8e9,
    )
    assert first.flag_since is not None
    assert db.write_sync(tenant_q.schedule_retry, "acme", "upgrade", "portal down", 2.1e9, 1.9e9) == 1
    assert db.write_sync(tenant_q.schedule_retry, "acme", "upgrade", "portal down", 2.1e9, 1.95e9) == 2
    again = db.read_sync(tenant_q.get_tenant, "acme")
    assert again is not None
    assert (again.retry_count, again.flag_since, again.flag_reason) == (2, first.flag_since, "portal down")
    assert (again.grace_until, again.next_retry_at) == (2e9, 1.95e9)  # the grace period is kept
    assert db.write_sync(tenant_q.set_flag, "acme", "needs_transfer", "identity", "computer ID changed")
    moved = db.read_sync(tenant_q.get_tenant, "acme")
    assert moved is not None
    assert (moved.flag, moved.flag_cause, moved.retry_count) == ("needs_transfer", "identity", 0)
    db.write_sync(tenant_q.clear_flag, "acme")
    cleared = db.read_sync(tenant_q.get_tenant, "acme")
    assert cleared is not None
    assert (cleared.flag, cleared.flag_cause, cleared.flag_since, cleared.retry_count) == ("", "", None, 0)


def test_offline_requests(db: Database) -> None:
    db.write_sync(tenant_q.record_offline_request, "req-1", "acme", "reactivation", "{}")
    db.write_sync(tenant_q.record_offline_request, "req-2", "acme", "transfer", "{}")
    pending = db.read_sync(tenant_q.pending_offline_requests, "acme")
    assert [(r, k) for r, k, _ in pending] == [("req-1", "reactivation"), ("req-2", "transfer")]
    db.write_sync(tenant_q.complete_offline_requests, "acme")
    assert db.read_sync(tenant_q.pending_offline_requests, "acme") == []


# -- notifications, outbox, reminders


def test_notifications_round_trip(db: Database) -> None:
    first = db.write_sync(msg_q.notify, "acme", "info", "reactivated", "Reactivated", "ok")
    second = db.write_sync(msg_q.notify, "beta", "error", "failed", "Failed", "portal down")
    third = db.write_sync(msg_q.notify, None, "warning", "cluster", "Node offline", "mgmt-2")
    assert first < second < third
    assert [n.id for n in db.read_sync(msg_q.notifications)] == [third, second, first]
    assert [n.id for n in db.read_sync(msg_q.notifications, "acme")] == [first]
    assert db.read_sync(msg_q.last_notification_id) == third
    assert [n.id for n in db.read_sync(msg_q.notifications_after, first)] == [second, third]
    latest = db.read_sync(msg_q.last_notification, None, "cluster")
    assert latest is not None
    assert (latest.id, latest.tenant_id, latest.severity) == (third, None, "warning")
    assert db.read_sync(msg_q.last_notification, "acme", "failed") is None
    assert db.write_sync(msg_q.ack, [first, second, 9999]) == 2
    assert db.write_sync(msg_q.ack, [first]) == 0  # already read
    assert [n.id for n in db.read_sync(msg_q.notifications, None, True)] == [third]
    acked = db.read_sync(msg_q.notifications, "acme")[0]
    assert acked.acked_at is not None


def test_outbox_round_trip(db: Database) -> None:
    assert db.read_sync(msg_q.next_mail_due_in) is None
    mail = db.write_sync(msg_q.enqueue_mail, "admin@example.com", "License failed", "body")
    due = db.read_sync(msg_q.due_mail)
    assert [(m.id, m.recipient, m.subject, m.attempts) for m in due] == [
        (mail, "admin@example.com", "License failed", 0)
    ]
    db.write_sync(msg_q.mark_failed, mail, "connection refused", 60.0)
    assert db.read_sync(msg_q.due_mail) == []
    wait = db.read_sync(msg_q.next_mail_due_in)
    assert wait is not None
    assert 55 < wait <= 60
    assert db.write_sync(msg_q.mark_sent, mail) is True
    assert db.write_sync(msg_q.mark_sent, mail) is False  # sent once
    sent = db.read_sync(msg_q.sent_mail)
    assert [(m.id, m.attempts) for m in sent] == [(mail, 2)]
    assert db.read_sync(msg_q.next_mail_due_in) is None


def test_mail_reminders(db: Database) -> None:
    assert db.read_sync(msg_q.reminder_due, "a@example.com", "acme:portal", 3600.0)
    db.write_sync(msg_q.remember_reminder, "a@example.com", "acme:portal")
    assert not db.read_sync(msg_q.reminder_due, "a@example.com", "acme:portal", 3600.0)
    assert db.read_sync(msg_q.reminder_due, "a@example.com", "acme:portal", 0.0)
    assert db.read_sync(msg_q.reminder_due, "b@example.com", "acme:portal", 3600.0)
    db.write_sync(msg_q.remember_reminder, "a@example.com", "acme:portal")  # upsert, no conflict error


# -- jobs and audit


def test_jobs_round_trip(db: Database) -> None:
    db.write_sync(job_q.submit, "job-1", "activate", "acme", {"activation_key": "AK-1"}, "mgmt-2", "uid=0")
    db.write_sync(job_q.submit, "job-2", "reactivate", "beta", {}, "mgmt-2", "uid=0")
    job = db.read_sync(job_q.get, "job-1")
    assert job is not None
    assert (job.state, job.params, job.submitted_by, job.progress) == (
        "pending",
        {"activation_key": "AK-1"},
        "mgmt-2",
        [],
    )
    claimed = db.write_sync(job_q.claim_next, "mgmt-1", 1)
    assert claimed is not None
    assert (claimed.id, claimed.state, claimed.claimed_by, claimed.claimed_term) == (
        "job-1",
        "running",
        "mgmt-1",
        1,
    )
    db.write_sync(job_q.add_progress, "job-1", {"step": "portal", "message": "asking"})
    db.write_sync(job_q.add_progress, "job-1", {"step": "verify", "message": "checking"})
    db.write_sync(job_q.finish, "job-1", {"license_id": "lic-1"})
    done = db.read_sync(job_q.get, "job-1")
    assert done is not None
    assert (done.state, done.result, done.params) == ("done", {"license_id": "lic-1"}, {})  # key scrubbed
    assert [p["step"] for p in done.progress] == ["portal", "verify"]

    second = db.write_sync(job_q.claim_next, "mgmt-1", 1)
    assert second is not None
    assert second.id == "job-2"
    assert db.write_sync(job_q.claim_next, "mgmt-1", 1) is None  # running under the current term
    retaken = db.write_sync(job_q.claim_next, "mgmt-3", 2)  # a new coordinator takes over a stale claim
    assert retaken is not None
    assert (retaken.id, retaken.claimed_by, retaken.claimed_term) == ("job-2", "mgmt-3", 2)
    db.write_sync(job_q.finish, "job-2", None, "io.paragon.License.PortalUnreachable", {"url": "u"})
    failed = db.read_sync(job_q.get, "job-2")
    assert failed is not None
    assert (failed.state, failed.error_name, failed.error_params, failed.result) == (
        "failed",
        "io.paragon.License.PortalUnreachable",
        {"url": "u"},
        None,
    )
    assert db.write_sync(job_q.prune, 3600.0) == 0
    assert db.write_sync(job_q.prune, -1.0) == 2
    assert db.read_sync(job_q.get, "job-1") is None


def test_audit_round_trip(db: Database) -> None:
    db.write_sync(audit.record, "uid=0(root)", "activate", "acme", "req-1", "ok", "lic-1")
    db.write_sync(audit.record, "mgmt-1", "reactivate", "acme", "req-2", "failed", "portal down")
    db.write_sync(audit.record, "mgmt-1", "reactivate", "beta", "req-3", "ok")
    rows = db.read_sync(audit.for_tenant, "acme")
    assert [(r.action, r.request_id, r.outcome, r.detail) for r in rows] == [
        ("reactivate", "req-2", "failed", "portal down"),
        ("activate", "req-1", "ok", "lic-1"),
    ]
    assert [r.tenant_id for r in db.read_sync(audit.for_tenant, "beta", 1)] == ["beta"]


# -- two processes sharing one file


WRITER = textwrap.dedent(
    """
    import sys
    from paragon_licensed.daemon.store.db import Database
    from paragon_licensed.daemon.store.sqlite import SqliteBackend
    from paragon_licensed.daemon.store import messages

    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    db = Database(SqliteBackend(path, 30.0))
    db.migrate()
    print("ready", flush=True)
    sys.stdin.readline()  # start together

    def write(tx, i):
        # A read-modify-write done in Python: only BEGIN IMMEDIATE keeps it from losing updates.
        value = int(tx.scalar("SELECT retry_count FROM tenants WHERE id = 'counter'"))
        tx.execute("UPDATE tenants SET retry_count = ? WHERE id = 'counter'", (value + 1,))
        messages.notify(tx, None, "info", name, f"{name}-{i}", "")
        tx.bump_generation()

    for i in range(count):
        db.write_sync(write, i)
    db.close()
    print("done", flush=True)
    """
)


def test_two_processes_share_one_file_without_losing_writes(db: Database, db_path: Path) -> None:
    count = 150
    db.write_sync(tenant_q.ensure_tenant, "counter", "")
    start_generation = db.read_sync(tenant_q.generation)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("writer-a", "writer-b")
    ]
    try:
        for proc in writers:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in writers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in writers:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for proc in writers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    counter = db.read_sync(tenant_q.get_tenant, "counter")
    assert counter is not None
    assert counter.retry_count == 2 * count
    titles = [n.title for n in db.read_sync(msg_q.notifications, None, False, 10_000)]
    assert sorted(titles) == sorted(f"{name}-{i}" for name in ("writer-a", "writer-b") for i in range(count))
    assert db.read_sync(tenant_q.generation) == start_generation + 2 * count
    # Each process's writes commit in its own order.
    for name in ("writer-a", "writer-b"):
        own = [int(t.rsplit("-", 1)[1]) for t in reversed(titles) if t.startswith(name)]
        assert own == list(range(count))


def test_two_processes_migrate_one_fresh_file_together(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    script = textwrap.dedent(
        """
        import json, sys
        from paragon_licensed.daemon.store.db import Database
        from paragon_licensed.daemon.store.sqlite import SqliteBackend
        print(json.dumps(Database(SqliteBackend(sys.argv[1], 30.0)).migrate()))
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    finished = [(proc, *proc.communicate(timeout=60)) for proc in procs]  # every pipe read and closed
    applied = []
    for proc, out, err in finished:
        assert proc.returncode == 0, err.decode()
        applied.append(json.loads(out))
    versions = [v for v, _, _ in migrations()]
    # Each migration is its own transaction, so the processes may share the work; each
    # migration is applied exactly once, and each process applies its share in order.
    assert sorted(v for share in applied for v in share) == versions
    assert all(share == sorted(share) for share in applied)
    db = open_db(path)
    assert [
        r[0]
        for r in db.read_sync(lambda tx: tx.all("SELECT version FROM schema_migrations ORDER BY version"))
    ] == versions
    assert db.read_sync(lambda tx: tx.scalar("SELECT count(*) FROM meta")) == 1
    db.close()
