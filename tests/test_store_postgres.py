"""The store on PostgreSQL (ARCHITECTURE.md §4, §6): migrations, the lease on the database's clock, fencing,
jobs, and the password that never shows.

Everything runs against a real server the suite starts (or $PARAGON_TEST_PG_DSN), a fresh
database per test; the concurrent migration runs three real processes, as three nodes
starting at once would.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.daemon import DaemonProcess
from support.postgres import PASSWORD_ROLE, PostgresServer

from paragon_licensed.daemon.store import audit
from paragon_licensed.daemon.store import jobs as job_q
from paragon_licensed.daemon.store import nodes as node_q
from paragon_licensed.daemon.store import tenants as tenant_q
from paragon_licensed.daemon.store.connect import describe_url
from paragon_licensed.daemon.store.db import (
    Database,
    Fence,
    FencedOut,
    StoreUnavailableError,
    Tx,
    migrations,
    schema_version,
)
from paragon_licensed.daemon.store.postgres import PostgresBackend
from paragon_licensed.daemon.store.sqlite import SqliteBackend

pytest_plugins = ["support.postgres"]
pytestmark = pytest.mark.postgres

VERSIONS = [version for version, _, _ in migrations()]


@pytest.fixture
def db(pg_dsn: str) -> Iterator[Database]:
    database = Database(PostgresBackend(pg_dsn))
    database.migrate()
    yield database
    database.close()


def acquire(db: Database, holder: str, duration: float) -> node_q.LeaseRow | None:
    return db.write_sync(node_q.acquire_or_renew, holder, duration)


def audit_ids(db: Database) -> list[str]:
    return [row[0] for row in db.read_sync(lambda tx: tx.all("SELECT request_id FROM audit ORDER BY id"))]


def dbname(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


# -- migrations


def test_the_same_migrations_build_the_same_schema_as_on_sqlite(pg_dsn: str, tmp_path: Path) -> None:
    pg = Database(PostgresBackend(pg_dsn))
    try:
        assert pg.migrate() == VERSIONS
        assert pg.migrate() == []
        assert schema_version(pg) == VERSIONS[-1]
        pg_columns = {
            (table, column)
            for table, column in pg.read_sync(
                lambda tx: tx.all(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public'"
                )
            )
        }
        meta = pg.read_sync(lambda tx: tx.all("SELECT store_id, generation FROM meta"))
    finally:
        pg.close()

    lite = Database(SqliteBackend(str(tmp_path / "store.db")))
    try:
        assert lite.migrate() == VERSIONS
    finally:
        lite.close()
    with sqlite3.connect(tmp_path / "store.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        lite_columns = {
            (table, row[1])
            for table in tables
            if table != "sqlite_sequence"
            for row in conn.execute(f"PRAGMA table_info({table})")
        }
    assert pg_columns == lite_columns
    assert len(meta) == 1
    assert uuid.UUID(meta[0][0])
    assert meta[0][1] == 1


MIGRATE = textwrap.dedent(
    """
    import json, sys, time
    from paragon_licensed.daemon.store.db import Database
    from paragon_licensed.daemon.store.postgres import PostgresBackend
    dsn, start_at = sys.argv[1], float(sys.argv[2])
    db = Database(PostgresBackend(dsn))
    time.sleep(max(0.0, start_at - time.time()))
    print(json.dumps(db.migrate()))
    db.close()
    """
)


def test_three_nodes_migrating_at_once_apply_each_migration_once(pg_dsn: str) -> None:
    start_at = f"{time.time() + 2.0:.3f}"  # after every interpreter has started
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, pg_dsn, start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    applied = sorted(v for result in results for v in result)
    assert applied == VERSIONS, results
    db = Database(PostgresBackend(pg_dsn))
    try:
        rows = db.read_sync(lambda tx: tx.all("SELECT version FROM schema_migrations ORDER BY version"))
        assert [r[0] for r in rows] == VERSIONS
        assert db.read_sync(lambda tx: tx.scalar("SELECT count(*) FROM meta")) == 1
    finally:
        db.close()


# -- the lease


def test_the_lease_is_acquired_renewed_and_taken_over_on_the_database_clock(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This node's clock is an hour fast: the lease must not care (the database's clock decides).
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)

    first = acquire(db, "node-a", 1.0)
    assert first is not None
    assert (first.holder, first.term) == ("node-a", 1)
    db_now = db.read_sync(Tx.now)
    assert abs(db_now - real_time()) < 60
    assert first.expires_at - first.acquired_at == pytest.approx(1.0, abs=0.01)
    assert 0.5 < first.remaining <= 1.0
    assert first.expires_at < real_time() + 60

    assert acquire(db, "node-b", 1.0) is None  # held and valid
    renewed = acquire(db, "node-a", 1.0)
    assert renewed is not None
    assert renewed.term == 1
    assert renewed.expires_at > first.expires_at

    time.sleep(1.2)  # the real sleep: past the lease on the database's clock
    taken = acquire(db, "node-b", 1.0)
    assert taken is not None
    assert (taken.holder, taken.term) == ("node-b", 2)
    assert acquire(db, "node-a", 1.0) is None

    db.write_sync(node_q.release, "node-b", 2)
    again = acquire(db, "node-a", 5.0)
    assert again is not None
    assert (again.holder, again.term) == ("node-a", 3)
    stale_release = db.write_sync(node_q.release, "node-b", 2)
    assert stale_release is None
    lease = db.read_sync(node_q.lease)
    assert lease is not None
    assert lease.remaining > 4  # releasing an old term did not touch the new holder's lease


# -- fencing


def test_a_fenced_write_fails_once_the_term_moved_on_and_writes_nothing(db: Database) -> None:
    lease = acquire(db, "node-a", 0.5)
    assert lease is not None
    fence = Fence("node-a", lease.term)
    db.write_sync(audit.record, "node-a", "reactivation", "t1", "req-1", "installed", fence=fence)

    def two_writes(tx: Tx) -> None:
        audit.record(tx, "node-a", "reactivation", "t1", "req-2", "installed")
        tenant_q.ensure_tenant(tx, "t2", "")

    time.sleep(0.6)  # expired, nobody took over yet: the old holder must not write either
    with pytest.raises(FencedOut):
        db.write_sync(two_writes, fence=fence)

    taken = acquire(db, "node-b", 10.0)
    assert taken is not None
    assert taken.term == lease.term + 1
    with pytest.raises(FencedOut):
        db.write_sync(two_writes, fence=fence)
    assert audit_ids(db) == ["req-1"]
    assert db.read_sync(tenant_q.get_tenant, "t2") is None

    db.write_sync(two_writes, fence=Fence("node-b", taken.term))
    assert audit_ids(db) == ["req-1", "req-2"]


def test_a_takeover_waits_for_the_fenced_transaction_in_progress(db: Database) -> None:
    """The fence check locks the lease row: a takeover cannot slip between check and commit."""
    lease = acquire(db, "node-a", 0.5)
    assert lease is not None
    events: list[str] = []
    taken: list[node_q.LeaseRow | None] = []

    def take_over() -> None:
        taken.append(acquire(db, "node-b", 10.0))
        events.append("taken over")

    with db.transaction(write=True, fence=Fence("node-a", lease.term)) as tx:
        time.sleep(0.7)  # the lease expires on the database's clock while the write is open
        thread = threading.Thread(target=take_over)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), "the takeover did not wait for the fenced transaction"
        audit.record(tx, "node-a", "reactivation", "t1", "req-in-flight", "installed")
        events.append("committed")
    thread.join(10)
    assert events == ["committed", "taken over"]
    assert taken[0] is not None
    assert taken[0].term == lease.term + 1
    assert audit_ids(db) == ["req-in-flight"]


def test_a_node_paused_inside_a_transaction_does_not_hold_the_lease_past_its_idle_limit(
    pg_dsn: str, db: Database
) -> None:
    """A paused holder's open transaction keeps the lease row locked; the server ends it
    after ``idle_in_transaction`` seconds, the takeover goes through, and the paused
    node's write is lost rather than committed late."""
    paused = Database(PostgresBackend(pg_dsn, idle_in_transaction=1.0))
    lease = acquire(paused, "node-a", 0.5)
    assert lease is not None
    fence = Fence("node-a", lease.term)
    taken: list[node_q.LeaseRow | None] = []
    takeover = threading.Thread(target=lambda: taken.append(acquire(db, "node-b", 10.0)))

    def paused_write(tx: Tx) -> None:
        audit.record(tx, "node-a", "reactivation", "t1", "req-paused", "installed")
        while (current := db.read_sync(node_q.lease)) is not None and current.remaining > 0:
            time.sleep(0.05)  # the lease expires on the database's clock
        takeover.start()  # waits for the lease row this transaction locked ...
        takeover.join(60)  # ... until the server ends this idle transaction
        assert not takeover.is_alive(), "the takeover still waits for the paused transaction"

    try:
        with pytest.raises(StoreUnavailableError):
            paused.write_sync(paused_write, fence=fence)
        assert taken[0] is not None
        assert (taken[0].holder, taken[0].term) == ("node-b", lease.term + 1)
        assert audit_ids(db) == []
        # The paused node reconnects and finds itself fenced out.
        with pytest.raises(FencedOut):
            paused.write_sync(
                audit.record, "node-a", "reactivation", "t1", "req-late", "installed", fence=fence
            )
        assert audit_ids(db) == []
    finally:
        paused.close()


# -- jobs


def test_jobs_are_claimed_once_oldest_first_and_taken_over_after_a_failover(db: Database) -> None:
    lease = acquire(db, "node-a", 0.6)
    assert lease is not None
    fence_a = Fence("node-a", lease.term)
    ids = [f"job-{i}" for i in range(3)]
    for job_id in ids:
        db.write_sync(
            job_q.submit, job_id, "reactivate", "t1", {"request_id": job_id}, "node-c", "root on node-c"
        )

    claimed: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        job = db.write_sync(job_q.claim_next, "node-a", lease.term, fence=fence_a)
        assert job is not None
        with lock:
            claimed.append(job.id)

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(claimed) == ids[:2]  # two claims at once: two different jobs, the oldest
    db.write_sync(job_q.finish, ids[0], {"ok": True}, fence=fence_a)

    time.sleep(0.7)
    taken = acquire(db, "node-b", 10.0)
    assert taken is not None
    fence_b = Fence("node-b", taken.term)
    with pytest.raises(FencedOut):
        db.write_sync(job_q.claim_next, "node-a", lease.term, fence=fence_a)
    # The job the old coordinator left running comes first, then the pending one.
    resumed = db.write_sync(job_q.claim_next, "node-b", taken.term, fence=fence_b)
    assert resumed is not None
    assert (resumed.id, resumed.claimed_by, resumed.claimed_term) == (ids[1], "node-b", taken.term)
    assert resumed.params == {"request_id": ids[1]}
    nxt = db.write_sync(job_q.claim_next, "node-b", taken.term, fence=fence_b)
    assert nxt is not None
    assert nxt.id == ids[2]
    assert db.write_sync(job_q.claim_next, "node-b", taken.term, fence=fence_b) is None
    done = db.read_sync(job_q.get, ids[0])
    assert done is not None
    assert (done.state, done.result, done.claimed_by) == ("done", {"ok": True}, "node-a")


# -- the password


@pytest.fixture
def pw_dsn(postgres: PostgresServer) -> Iterator[str]:
    """A database owned by the password role; its URL names the role but holds no password."""
    admin = postgres.new_database(owner=PASSWORD_ROLE)
    yield postgres.dsn(dbname(admin), user=PASSWORD_ROLE)
    postgres.drop_database(admin)


def test_the_password_comes_from_the_file_and_is_never_shown(
    postgres: PostgresServer, pw_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = postgres.password
    password_file = tmp_path / "store-password"
    password_file.write_text(secret + "\n")
    backend = PostgresBackend(pw_dsn, str(password_file))
    db = Database(backend)
    try:
        assert db.migrate() == VERSIONS
        assert db.read_sync(lambda tx: tx.scalar("SELECT current_user")) == PASSWORD_ROLE
    finally:
        db.close()
    assert secret not in repr(backend)
    assert secret not in repr(db)

    # The systemd credential, when no file is configured.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "store-password").write_text(secret)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    db = Database(PostgresBackend(pw_dsn))
    try:
        assert db.read_sync(lambda tx: tx.scalar("SELECT current_user")) == PASSWORD_ROLE
    finally:
        db.close()
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")

    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-" + secret[::-1])
    db = Database(PostgresBackend(pw_dsn, str(wrong)))
    try:
        with pytest.raises(StoreUnavailableError) as refused:
            db.read_sync(Tx.now)
    finally:
        db.close()
    assert "password authentication failed" in str(refused.value)
    assert secret[::-1] not in str(refused.value)


@pytest.mark.e2e
def test_a_daemon_with_a_password_file_connects_and_never_logs_the_password(
    postgres: PostgresServer, pw_dsn: str, tmp_path: Path
) -> None:
    secret = postgres.password
    password_file = tmp_path / "store-password"
    password_file.write_text(secret + "\n")
    node = DaemonProcess(tmp_path, "node-1", {"store": {"url": pw_dsn, "password_file": str(password_file)}})
    try:
        node.start()
        status = node.wait_until(
            lambda: (s := node.status())["store_available"] and s, timeout=30, what="the store available"
        )
        assert status["store_backend"] == "postgresql"
        assert node.ctl("--json", "nodes").returncode == 0
        shown = node.ctl("status", "--json").stdout + node.ctl("status").stdout
    finally:
        node.stop()
    log = node.log()
    assert f"store={pw_dsn}" in log  # the URL (without a password) is what the log names
    assert secret not in log
    assert secret not in shown


@pytest.mark.e2e
def test_a_daemon_with_a_wrong_password_keeps_serving_and_says_why(
    postgres: PostgresServer, pw_dsn: str, tmp_path: Path
) -> None:
    wrong = "wrong-" + postgres.password[::-1]
    password_file = tmp_path / "store-password"
    password_file.write_text(wrong + "\n")
    node = DaemonProcess(tmp_path, "node-1", {"store": {"url": pw_dsn, "password_file": str(password_file)}})
    try:
        node.start()
        status = node.status()
        assert node.proc is not None
        assert node.proc.poll() is None
    finally:
        node.stop()
    assert status["store_available"] is False
    assert "password authentication failed" in status["store_problem"]
    assert wrong not in node.log()
    assert wrong not in json.dumps(status)


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_a_password_in_the_store_url_is_never_logged(
    postgres: PostgresServer, pw_dsn: str, tmp_path: Path, where: str
) -> None:
    """Even a password written into store.url (not recommended, but valid libpq) stays out of the log."""
    secret = postgres.password
    parts = urlsplit(pw_dsn)
    if where == "userinfo":
        url = pw_dsn.replace(f"{PASSWORD_ROLE}@", f"{PASSWORD_ROLE}:{secret}@", 1)
    else:
        url = f"{pw_dsn}?password={secret}&connect_timeout=5"
    node = DaemonProcess(tmp_path, "node-1", {"store": {"url": url}})
    try:
        node.start()
        node.wait_until(lambda: node.status()["store_available"], timeout=30, what="the store available")
        shown = node.ctl("status", "--json").stdout
    finally:
        node.stop()
    log = node.log()
    assert f"{parts.hostname}:{parts.port}" in log
    assert secret not in log
    assert secret not in shown


def test_describe_url_keeps_everything_but_the_password() -> None:
    assert (
        describe_url("postgresql://u:s3cret@db.example:5432/paragon")
        == "postgresql://u@db.example:5432/paragon"
    )
    assert describe_url("postgres://u:s%40cret@db/paragon") == "postgres://u@db/paragon"
    assert describe_url("postgresql://u@db/paragon") == "postgresql://u@db/paragon"
    assert (
        describe_url("postgresql://db/paragon?sslmode=require") == "postgresql://db/paragon?sslmode=require"
    )
    assert (
        describe_url("sqlite:///var/lib/paragon-licensed/store.db")
        == "sqlite:///var/lib/paragon-licensed/store.db"
    )
    # libpq also takes the password as a query parameter.
    for url in (
        "postgresql://u@db/paragon?password=s3cret",
        "postgresql://db/paragon?user=u&password=s3cret&sslmode=require",
    ):
        described = describe_url(url)
        assert "s3cret" not in described, described
        assert described.startswith("postgresql://")
        assert "db/paragon" in described


def test_the_backend_has_no_secrets_in_its_repr(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("hunter2-very-secret")
    backend = PostgresBackend("postgresql://u:in-url-secret@127.0.0.1:1/db", str(password_file))
    text = repr(backend) + str(backend)
    assert "hunter2-very-secret" not in text
    assert "in-url-secret" not in text
