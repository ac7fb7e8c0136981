"""The request log: one row for every API request the portal answered, for tests and operators.

It records what a client sent (tenant, request ID, computer IDs, the integrity key they
form) and what it got (status, problem code, replay or not, injected failure or not), so
a test can assert how often a client called and with what. Activation keys are never
recorded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from paragon_licensed import licensefile as lf
from paragon_licensed.portal.messages import QUERY_PATH

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,              -- RFC 3339 UTC, milliseconds
    source TEXT NOT NULL,          -- 'http' or 'offline'
    method TEXT NOT NULL,
    path TEXT NOT NULL,            -- the URL path without the query
    request_id TEXT,
    tenant_id TEXT,
    status INTEGER NOT NULL,
    code TEXT,                     -- the problem code; NULL on success
    replay INTEGER NOT NULL,       -- 1: answered from the idempotency record
    injected INTEGER NOT NULL,     -- 1: a failure injected by --fail-rate/--fail-first
    integrity_key TEXT,            -- of tenant_id + computer_ids (old_computer_ids for transfers)
    computer_ids TEXT,             -- JSON array as sent (old_computer_ids for transfers)
    new_computer_ids TEXT,         -- JSON array, transfers only
    license_id TEXT,               -- the license issued or replayed
    handling_ms REAL NOT NULL,     -- time spent handling, without injected latency
    asked INTEGER                  -- installations a current-license query asked about
);
CREATE INDEX IF NOT EXISTS requests_request_id ON requests(request_id);
CREATE INDEX IF NOT EXISTS requests_tenant ON requests(tenant_id);
"""


class RequestRecord(msgspec.Struct, kw_only=True):
    """One answered request; ``id`` and ``at`` are set when it is stored."""

    method: str
    path: str
    source: str = "http"
    id: int = 0
    at: str = ""
    request_id: str | None = None
    tenant_id: str | None = None
    status: int = 0
    code: str | None = None
    replay: bool = False
    injected: bool = False
    integrity_key: str | None = None
    computer_ids: list[str] | None = None
    new_computer_ids: list[str] | None = None
    license_id: str | None = None
    handling_ms: float = 0.0
    asked: int | None = None


_COLUMNS = (
    "id, at, source, method, path, request_id, tenant_id, status, code, replay, injected,"
    " integrity_key, computer_ids, new_computer_ids, license_id, handling_ms, asked"
)


def _json_list(value: list[str] | None) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def insert(conn: sqlite3.Connection, record: RequestRecord) -> None:
    """Store ``record`` (inside the caller's transaction), stamped with the current time."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    conn.execute(
        "INSERT INTO requests (at, source, method, path, request_id, tenant_id, status, code,"
        " replay, injected, integrity_key, computer_ids, new_computer_ids, license_id,"
        " handling_ms, asked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            at,
            record.source,
            record.method,
            record.path,
            record.request_id,
            record.tenant_id,
            record.status,
            record.code,
            int(record.replay),
            int(record.injected),
            record.integrity_key,
            _json_list(record.computer_ids),
            _json_list(record.new_computer_ids),
            record.license_id,
            record.handling_ms,
            record.asked,
        ),
    )


def query(
    conn: sqlite3.Connection,
    *,
    path: str | None = None,
    request_id: str | None = None,
    tenant_id: str | None = None,
    status: int | None = None,
    injected: bool | None = None,
    replay: bool | None = None,
    after_id: int = 0,
) -> list[RequestRecord]:
    """Stored requests matching every given filter, oldest first."""
    where, args = ["id > ?"], [after_id]
    filters: Sequence[tuple[str, Any]] = (
        ("path", path),
        ("request_id", request_id),
        ("tenant_id", tenant_id),
        ("status", status),
        ("injected", None if injected is None else int(injected)),
        ("replay", None if replay is None else int(replay)),
    )
    for column, value in filters:
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM requests WHERE {' AND '.join(where)} ORDER BY id",  # noqa: S608 -- fixed column names
        args,
    ).fetchall()
    return [_record(row) for row in rows]


def _list(text: str | None) -> list[str] | None:
    return None if text is None else msgspec.json.decode(text, type=list[str])


def _record(row: sqlite3.Row | tuple[Any, ...]) -> RequestRecord:
    (id_, at, source, method, path, request_id, tenant_id, status, code, replay, injected,
     integrity_key, computer_ids, new_computer_ids, license_id, handling_ms, asked) = row  # fmt: skip
    return RequestRecord(
        id=id_,
        at=at,
        source=source,
        method=method,
        path=path,
        request_id=request_id,
        tenant_id=tenant_id,
        status=status,
        code=code,
        replay=bool(replay),
        injected=bool(injected),
        integrity_key=integrity_key,
        computer_ids=_list(computer_ids),
        new_computer_ids=_list(new_computer_ids),
        license_id=license_id,
        handling_ms=handling_ms,
        asked=asked,
    )


def describe(record: RequestRecord, data: dict[str, Any], path: str) -> None:
    """Copy what the client sent into the log entry, as far as the fields are well typed."""

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    def ids(name: str) -> list[str] | None:
        value = data.get(name)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None

    if path.endswith(QUERY_PATH):
        tenants = data.get("tenants")
        record.asked = len(tenants) if isinstance(tenants, list) else None
        return
    record.tenant_id = text("tenant_id")
    record.request_id = text("request_id")
    transfer = path.endswith("/transfers")
    record.computer_ids = ids("old_computer_ids" if transfer else "computer_ids")
    record.new_computer_ids = ids("new_computer_ids") if transfer else None
    if record.tenant_id is not None and record.computer_ids:
        try:
            record.integrity_key = lf.integrity_key(record.tenant_id, record.computer_ids)
        except ValueError:
            record.integrity_key = None
