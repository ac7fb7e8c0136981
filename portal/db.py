"""The reference portal's SQLite database: schema, connections, transactions and queries.

Several threads of the server and other processes (``orders add``, ``offline process``,
tests reading the request log) share the file: WAL, ``BEGIN IMMEDIATE`` for writes and
a busy timeout. Inside one process, writers also take a lock, so they queue in Python
instead of in SQLite's sleeping busy handler.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from paragon_licensed.portal import requestlog
from paragon_licensed.portal.queries import (
    LICENSE_COLUMNS,
    LicenseRecord,
    Tx,
    end_of_day,
    hash_key,
    random_id,
    ts,
)
from paragon_licensed.portal.requestlog import RequestRecord

# 2: the request log's `asked` column (current-license queries).
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS activation_keys (
    key_hash TEXT PRIMARY KEY,     -- SHA-256 of the key: the portal does not keep keys
    tenant_id TEXT NOT NULL,
    installation_id INTEGER REFERENCES installations(id),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activation_keys_installation ON activation_keys(installation_id);
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL REFERENCES activation_keys(key_hash),
    product TEXT NOT NULL,
    features TEXT NOT NULL,        -- JSON object
    quantity INTEGER NOT NULL,
    valid_until TEXT NOT NULL,     -- RFC 3339 UTC, like every timestamp here
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_key ON orders(key_hash);
CREATE TABLE IF NOT EXISTS installations (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    support_id TEXT NOT NULL UNIQUE,
    integrity_key TEXT NOT NULL UNIQUE,
    computer_ids TEXT NOT NULL,    -- JSON array, sorted
    build TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS installations_tenant ON installations(tenant_id);
CREATE TABLE IF NOT EXISTS licenses (
    seq INTEGER PRIMARY KEY,
    license_id TEXT NOT NULL UNIQUE,
    installation_id INTEGER NOT NULL REFERENCES installations(id),
    tenant_id TEXT NOT NULL,
    integrity_key TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    supersedes TEXT,
    request_id TEXT,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS licenses_installation ON licenses(installation_id, seq);
CREATE TABLE IF NOT EXISTS transfers (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    installation_id INTEGER NOT NULL REFERENCES installations(id),
    old_integrity_key TEXT NOT NULL,
    new_integrity_key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_tenant ON transfers(tenant_id, at);
CREATE TABLE IF NOT EXISTS idempotency (
    request_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,     -- SHA-256 of the canonical body, to spot reuse
    status INTEGER NOT NULL,
    code TEXT,
    license_id TEXT,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL
);
"""


def _statements(script: str) -> Iterator[str]:
    """The statements of a script, one at a time (executescript would commit first)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


class PortalDB:
    """The portal's database file; thread-safe, with a small pool of connections."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()  # guards _connections
        self._write_lock = threading.Lock()
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has schema version {version}; this portal knows up to {SCHEMA_VERSION}"
                    )
                for statement in _statements(SCHEMA + requestlog.SCHEMA):
                    conn.execute(statement)
                if version == 1:
                    conn.execute("ALTER TABLE requests ADD COLUMN asked INTEGER")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        # WAL makes a commit durable at the next checkpoint: a crash of the machine may
        # lose the last requests, never corrupt the file. A benchmark needs the speed.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            self._pool.put(conn)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One write transaction; committed when the block ends, rolled back on an error."""
        with self._write_lock, self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read transaction: one consistent snapshot for the whole block."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            try:
                yield Tx(conn)
            finally:
                conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # The Python API for tests, benchmarks and the command line ------------------------

    def add_order(
        self,
        activation_key: str,
        tenant_id: str,
        product: str,
        valid_until: date | datetime,
        *,
        quantity: int = 1,
        features: Mapping[str, str] | None = None,
    ) -> str:
        """Add an order to an activation key (created on first use); return the order ID.

        A ``date`` means the end of that day, UTC.
        """
        end = valid_until if isinstance(valid_until, datetime) else end_of_day(valid_until)
        with self.write() as tx:
            return tx.add_order(
                hash_key(activation_key),
                tenant_id=tenant_id,
                product=product,
                valid_until=end,
                quantity=quantity,
                features=features or {},
                now=datetime.now(UTC),
            )

    def seed_tenants(
        self,
        count: int,
        *,
        tenant_prefix: str = "tenant-",
        key_prefix: str = "KEY-",
        product: str = "Paragon Print",
        valid_until: date,
        start: int = 0,
    ) -> list[tuple[str, str]]:
        """Create ``count`` tenants with one key and one order each, in one transaction.

        Returns ``(tenant_id, activation_key)`` pairs named ``prefix + number``.
        """
        now = ts(datetime.now(UTC))
        end = ts(end_of_day(valid_until))
        pairs = [(f"{tenant_prefix}{n}", f"{key_prefix}{n}") for n in range(start, start + count)]
        with self.write() as tx:
            tx.conn.executemany(
                "INSERT INTO activation_keys (key_hash, tenant_id, created_at) VALUES (?, ?, ?)",
                [(hash_key(key), tenant, now) for tenant, key in pairs],
            )
            tx.conn.executemany(
                "INSERT INTO orders (order_id, key_hash, product, features, quantity,"
                " valid_until, created_at) VALUES (?, ?, ?, '{}', 1, ?, ?)",
                [(random_id("ORD-", 8), hash_key(key), product, end, now) for _, key in pairs],
            )
        return pairs

    def requests(
        self,
        *,
        path: str | None = None,
        request_id: str | None = None,
        tenant_id: str | None = None,
        status: int | None = None,
        injected: bool | None = None,
        replay: bool | None = None,
        after_id: int = 0,
    ) -> list[RequestRecord]:
        """The request log, oldest first, filtered by every argument given."""
        with self._connection() as conn:
            return requestlog.query(
                conn,
                path=path,
                request_id=request_id,
                tenant_id=tenant_id,
                status=status,
                injected=injected,
                replay=replay,
                after_id=after_id,
            )

    def licenses(self, *, tenant_id: str | None = None) -> list[LicenseRecord]:
        """Every license issued (to ``tenant_id``), oldest first."""
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {LICENSE_COLUMNS} FROM licenses WHERE ? IS NULL OR tenant_id = ?"  # noqa: S608
                " ORDER BY seq",
                (tenant_id, tenant_id),
            ).fetchall()
        return [LicenseRecord(*row) for row in rows]

    def log_request(self, record: RequestRecord) -> None:
        """Store one request log entry in its own transaction."""
        with self.write() as tx:
            tx.log_request(record)
