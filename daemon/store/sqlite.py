"""The embedded SQLite backend: one file that several processes on one host may share.

WAL lets readers run beside the single writer; writes take ``BEGIN IMMEDIATE``
so they queue on the busy timeout instead of failing mid-transaction; and
``synchronous=FULL`` makes every commit durable before it returns.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path


class SqliteBackend:
    name = "sqlite"
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    lock_suffix = ""
    migration_lock = ""

    def __init__(self, path: str, busy_timeout: float = 10.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o750)

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        fresh = not os.path.exists(self.path)
        old_umask = os.umask(0o077)
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        finally:
            os.umask(old_umask)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        self._wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if fresh:
            os.chmod(self.path, 0o600)
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL. Several processes opening a new file at once race for the exclusive lock
        this needs, and SQLite answers "locked" at once instead of waiting: try again for a while."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def begin(self, conn: sqlite3.Connection, write: bool) -> None:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def placeholders(self, sql: str) -> str:
        return sql

    def is_unavailable(self, exc: BaseException) -> bool:
        # A lock held past the busy timeout (another process's long transaction) is waited out
        # like an outage, not treated as a failure of the daemon.
        return isinstance(exc, sqlite3.OperationalError) and any(
            text in str(exc) for text in ("unable to open", "disk I/O", "database is locked", "busy")
        )

    def reset(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
