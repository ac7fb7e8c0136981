"""Transactions, fencing and migrations over either backend.

Queries are written once, with ``?`` placeholders and ``{now}`` for the
database's clock; the backend turns them into its dialect. Every write runs in
one transaction; a coordinator's writes carry its lease term and fail with
``FencedOut`` if the term moved on, in the same transaction.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
Params = Sequence[Any]


class StoreUnavailableError(Exception):
    """The database cannot be reached; the daemon keeps running and retries."""


class FencedOut(Exception):
    """The lease term moved on: this node is no longer the coordinator and must not write."""


@dataclass(frozen=True)
class Fence:
    holder: str
    term: int


class Connection(Protocol):
    def execute(self, sql: str, params: Params = ()) -> Any: ...


class Backend(Protocol):
    """What a database gives the store: connections, its dialect, and its failure classes."""

    name: str
    serial: str
    now_sql: str
    lock_suffix: str
    migration_lock: str

    def connection(self) -> Any: ...

    def begin(self, conn: Any, write: bool) -> None: ...

    def placeholders(self, sql: str) -> str: ...

    def is_unavailable(self, exc: BaseException) -> bool: ...

    def explain(self, exc: BaseException) -> str: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class Tx:
    """One open transaction."""

    def __init__(self, db: Database, conn: Any) -> None:
        self._db = db
        self._conn = conn

    @property
    def db(self) -> Database:
        return self._db

    def execute(self, sql: str, params: Params = ()) -> int:
        cur = self._conn.execute(self._db.sql(sql), tuple(params))
        return int(cur.rowcount or 0)

    def one(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(self._db.sql(sql), tuple(params)).fetchone()
        return tuple(row) if row is not None else None

    def all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(self._db.sql(sql), tuple(params)).fetchall()]

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    def now(self) -> float:
        """The database's clock: every node compares lease and heartbeat times against it."""
        return float(self.scalar("SELECT {now}"))

    def bump_generation(self) -> int:
        """Count a state change; a store whose generation went back was restored."""
        return int(self.scalar("UPDATE meta SET generation = generation + 1 RETURNING generation"))


class Database:
    """The store: the backend plus transactions, fencing, migrations and the worker threads."""

    def __init__(self, backend: Backend, workers: int = 4) -> None:
        self.backend = backend
        self._sql_cache: dict[str, str] = {}
        # The worker threads every transaction runs on (group commits included).
        self.limiter = anyio.CapacityLimiter(workers)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def sql(self, text: str) -> str:
        cached = self._sql_cache.get(text)
        if cached is None:
            replaced = text.replace("{now}", self.backend.now_sql).replace("{lock}", self.backend.lock_suffix)
            cached = self.backend.placeholders(replaced)
            self._sql_cache[text] = cached
        return cached

    @contextmanager
    def transaction(self, write: bool = False, fence: Fence | None = None) -> Iterator[Tx]:
        try:
            conn = self.backend.connection()
            self.backend.begin(conn, write)
        except Exception as exc:
            if self.backend.is_unavailable(exc):
                self.backend.reset()
                raise StoreUnavailableError(self.backend.explain(exc)) from exc
            raise
        tx = Tx(self, conn)
        try:
            if fence is not None:
                check_fence(tx, fence)
            yield tx
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the connection is gone; reset() replaces it
                conn.execute("ROLLBACK")
            if isinstance(exc, Exception) and self.backend.is_unavailable(exc):
                self.backend.reset()
                raise StoreUnavailableError(self.backend.explain(exc)) from exc
            raise

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        with self.transaction(write=False) as tx:
            return fn(tx, *args)

    def write_sync(self, fn: Callable[..., T], *args: Any, fence: Fence | None = None) -> T:
        with self.transaction(write=True, fence=fence) as tx:
            return fn(tx, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(tx, *args) in a read transaction on a worker thread."""
        return await anyio.to_thread.run_sync(lambda: self.read_sync(fn, *args), limiter=self.limiter)

    async def write(self, fn: Callable[..., T], *args: Any, fence: Fence | None = None) -> T:
        """Run fn(tx, *args) in a write transaction (fenced when a fence is given)."""
        return await anyio.to_thread.run_sync(
            lambda: self.write_sync(fn, *args, fence=fence), limiter=self.limiter
        )

    def migrate(self) -> list[int]:
        """Apply every migration not yet applied, each in its own transaction; return them."""
        applied: list[int] = []
        with self.transaction(write=True) as tx:
            if self.backend.migration_lock:
                tx.execute(self.backend.migration_lock)
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
        for version, name, script in migrations():
            with self.transaction(write=True) as tx:
                if self.backend.migration_lock:
                    tx.execute(self.backend.migration_lock)
                if tx.scalar("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)):
                    continue
                for statement in split_statements(script.replace("{serial}", self.backend.serial)):
                    tx.execute(statement)
                if version == 1:
                    tx.execute(
                        "INSERT INTO meta (id, store_id, generation, created_at) VALUES (1, ?, 1, {now})",
                        (str(uuid.uuid4()),),
                    )
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, {now})",
                    (version, name),
                )
                applied.append(version)
        return applied

    def close(self) -> None:
        self.backend.close()


def check_fence(tx: Tx, fence: Fence) -> None:
    row = tx.one("SELECT holder, term, expires_at > {now} FROM lease WHERE id = 1{lock}")
    if row is None or row[0] != fence.holder or int(row[1]) != fence.term or not row[2]:
        raise FencedOut(f"lease term {fence.term} of {fence.holder} is no longer current")


_MIGRATION_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """The shipped migrations in order: (version, name, SQL)."""
    folder = resources.files("paragon_licensed.daemon.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found)


def split_statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def schema_version(db: Database) -> int:
    return int(db.read_sync(lambda tx: tx.scalar("SELECT max(version) FROM schema_migrations")) or 0)
