"""The embedded SQLite backend: one file that several processes on one host may share.

WAL lets readers run beside the single writer; writes take ``BEGIN IMMEDIATE``
so they queue on the busy timeout instead of failing mid-transaction; and
``synchronous=FULL`` makes every commit durable before it returns.

The file is watched, not trusted: once opened, it is never created again behind
the daemon's back, and a file deleted or replaced under the daemon is reported,
not reopened (its -wal file still holds this daemon's pages, which SQLite would
apply to whatever file is now at the path); a restart opens what is there. A
damaged file is confirmed with an integrity check. Each is reported with what to
do, and retried, like a store that cannot be reached.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path

# SQLite's words for a store that is there but cannot be used now: retried like an outage.
_UNAVAILABLE = (
    "unable to open",
    "disk I/O",
    "database is locked",
    "busy",
    "readonly",
    "disk is full",
    "not a database",
    "malformed",
)
_DAMAGED = ("not a database", "malformed")


class StoreFileGone(sqlite3.OperationalError):
    """The store file this daemon opened was deleted: SQLite would silently start a new one."""


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
        # (device, inode) of the file once opened: a file that vanished or changed is noticed.
        self._file: tuple[int, int] | None = None
        self._checked: tuple[int, int, int, int] | None = None
        self._verdict = ""
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o750)

    def connection(self) -> sqlite3.Connection:
        self._check_file()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _check_file(self) -> None:
        """Raise StoreFileGone when the file this daemon opened is no longer at the path."""
        if self._file is None:
            return  # never opened: a file put there (or taken away) before is simply used
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise StoreFileGone(f"the store file {self.path} was deleted") from None
        if (info.st_dev, info.st_ino) != self._file:
            raise StoreFileGone(f"the store file {self.path} was replaced")

    def _open(self) -> sqlite3.Connection:
        fresh = not os.path.exists(self.path)
        # Created only before the first open: later, a missing file is an error, not a new store.
        mode = "rwc" if self._file is None else "rw"
        target = f"file:{urllib.parse.quote(self.path)}?mode={mode}"
        old_umask = os.umask(0o077)
        try:
            conn = sqlite3.connect(
                target, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False, uri=True
            )
        finally:
            os.umask(old_umask)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error:
            conn.close()  # e.g. "file is not a database": reported by the caller, tried again later
            raise
        if fresh:
            os.chmod(self.path, 0o600)
        if self._file is None:
            info = os.stat(self.path)
            self._file = (info.st_dev, info.st_ino)
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
        # A read-only, full, damaged or deleted file is survived the same way: reported, retried.
        if isinstance(exc, StoreFileGone):
            return True
        # Not IntegrityError and the like: those are the daemon's own mistakes, not the disk's.
        return type(exc) in (sqlite3.OperationalError, sqlite3.DatabaseError) and any(
            text in str(exc) for text in _UNAVAILABLE
        )

    def explain(self, exc: BaseException) -> str:
        """What is wrong with the store, naming the file, and what to do about it."""
        text = str(exc).strip() or type(exc).__name__
        path = self.path
        if isinstance(exc, StoreFileGone):
            return (
                f"{text} while the daemon ran: the daemon serves its last verified licenses; "
                "restart it to open the file now at that path (after putting back a backup without "
                "its -wal and -shm files), or to start a new, empty store if there is none"
            )
        if any(word in text for word in _DAMAGED):
            check = self.integrity()
            if check != "ok":
                return (
                    f"the store file {path} is damaged ({text}; integrity check: {check}): stop the "
                    "daemon, then restore the store from a backup or move the file away to start a new one"
                )
        if "disk is full" in text:
            return f"the store file {path} cannot grow ({text}): free space on its file system"
        if "readonly" in text:
            return f"the store file {path} cannot be written ({text}): is its file system read-only?"
        return f"{text} ({path})"

    def integrity(self) -> str:
        """SQLite's quick_check of the file, once per version of it: "ok" or the first problem."""
        try:
            info = os.stat(self.path)
        except OSError as exc:
            return exc.strerror or str(exc)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if key == self._checked:
            return self._verdict
        try:
            conn = sqlite3.connect(f"file:{urllib.parse.quote(self.path)}?mode=ro", uri=True, timeout=1.0)
            try:
                rows = conn.execute("PRAGMA quick_check(1)").fetchall()
            finally:
                conn.close()
            verdict = str(rows[0][0]) if rows else "no answer"
        except sqlite3.DatabaseError as exc:
            verdict = str(exc)
        self._checked, self._verdict = key, verdict
        return verdict

    def reset(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
