"""Group commit (daemon/store/group_commit.py) on SQLite and PostgreSQL, in-process: callers
share commits, yet each caller's write is all or nothing and only its own error is its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from paragon_licensed.daemon.store import audit
from paragon_licensed.daemon.store import nodes as node_q
from paragon_licensed.daemon.store.db import Database, Fence, FencedOut, StoreUnavailableError, Tx
from paragon_licensed.daemon.store.group_commit import GroupCommit
from paragon_licensed.daemon.store.postgres import PostgresBackend
from paragon_licensed.daemon.store.sqlite import SqliteBackend

pytest_plugins = ["support.postgres"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(SqliteBackend(str(tmp_path / "store.db")))
    else:
        database = Database(PostgresBackend(request.getfixturevalue("pg_dsn")))
    database.migrate()
    yield database
    database.close()


def request_ids(db: Database) -> list[str]:
    return [r[0] for r in db.read_sync(lambda tx: tx.all("SELECT request_id FROM audit ORDER BY request_id"))]


class Broken(Exception):
    pass


def two_entries(tx: Tx, name: str, fail: bool) -> str:
    """Two rows, then perhaps a failure: the caller's write must be all or nothing."""
    audit.record(tx, "test", "reactivation", "t", f"{name}-a", "installed")
    audit.record(tx, "test", "reactivation", "t", f"{name}-b", "installed")
    if fail:
        raise Broken(name)
    return name


def test_many_callers_share_commits_and_a_failing_one_loses_only_its_own_write(db: Database) -> None:
    group = GroupCommit(db, max_batch=16)
    results: dict[str, object] = {}

    async def caller(number: int) -> None:
        name = f"w{number:03d}"
        try:
            results[name] = await group.write(two_entries, name, number % 7 == 3)
        except Broken as exc:
            results[name] = exc

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for number in range(100):
                tg.start_soon(caller, number)

    anyio.run(main)
    failed = {f"w{n:03d}" for n in range(100) if n % 7 == 3}
    assert {name for name, r in results.items() if isinstance(r, Broken)} == failed
    assert all(results[name] == name for name in results if name not in failed)
    expected = sorted(f"w{n:03d}-{s}" for n in range(100) if f"w{n:03d}" not in failed for s in "ab")
    assert request_ids(db) == expected
    assert group.batches < 100  # shared: fewer transactions than callers


def test_a_stale_fence_refuses_its_writes_and_lets_the_others_commit(db: Database) -> None:
    lease = db.write_sync(node_q.acquire_or_renew, "node-a", 30.0)
    assert lease is not None
    current, stale = Fence("node-a", lease.term), Fence("node-a", lease.term - 1)
    group = GroupCommit(db)
    outcomes: dict[str, object] = {}

    async def caller(name: str, fence: Fence) -> None:
        try:
            outcomes[name] = await group.write(two_entries, name, False, fence=fence)
        except FencedOut as exc:
            outcomes[name] = exc

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for number in range(20):
                tg.start_soon(caller, f"w{number:02d}", stale if number % 2 else current)

    anyio.run(main)
    assert sorted(n for n, r in outcomes.items() if isinstance(r, FencedOut)) == [
        f"w{n:02d}" for n in range(1, 20, 2)
    ]
    assert request_ids(db) == sorted(f"w{n:02d}-{s}" for n in range(0, 20, 2) for s in "ab")


def test_a_failed_commit_fails_every_caller_of_the_batch_and_writes_nothing(tmp_path: Path) -> None:
    db = Database(SqliteBackend(str(tmp_path / "store.db")))
    db.migrate()
    group = GroupCommit(db)
    errors: list[BaseException] = []

    def gone(tx: Tx, name: str) -> None:
        audit.record(tx, "test", "reactivation", "t", name, "installed")
        raise sqlite3.OperationalError("disk I/O error")  # what SQLite says when the disk fails

    def fine(tx: Tx, name: str) -> None:
        audit.record(tx, "test", "reactivation", "t", name, "installed")

    async def caller(fn: object, name: str) -> None:
        try:
            await group.write(fn, name)  # type: ignore[arg-type]
        except StoreUnavailableError as exc:
            errors.append(exc)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller, fine, "first")  # leads: its batch is alone
            await anyio.sleep(0)
            for name in ("x", "y"):
                tg.start_soon(caller, fine, name)
            tg.start_soon(caller, gone, "z")

    anyio.run(main)
    assert request_ids(db) == ["first"]
    assert len(errors) == 3
    db.close()
