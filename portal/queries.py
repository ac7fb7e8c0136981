"""The portal's queries, run inside a transaction, and the rows they return.

Every timestamp is stored as RFC 3339 UTC text with second precision, so comparing the
text compares the instants.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import msgspec

from paragon_licensed import licensefile as lf
from paragon_licensed.portal import requestlog
from paragon_licensed.portal.requestlog import RequestRecord

_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O or 1/I: IDs are read out on the phone


def ts(moment: datetime) -> str:
    """A timestamp as stored and sent: RFC 3339, UTC, seconds, ``Z``."""
    return lf.utc_seconds(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def end_of_day(day: date) -> datetime:
    """An order bought until ``day`` runs to that day's last second, UTC."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


def hash_key(activation_key: str) -> str:
    return hashlib.sha256(activation_key.encode()).hexdigest()


def random_id(prefix: str, *groups: int) -> str:
    """``prefix`` and groups of random characters joined by dashes: ``SUP-7KQ2-M9XD``."""
    return prefix + "-".join("".join(secrets.choice(_ALPHABET) for _ in range(n)) for n in groups)


def _ids_json(ids: Sequence[str]) -> str:
    return msgspec.json.encode(list(ids)).decode()


class KeyRow(msgspec.Struct, frozen=True):
    key_hash: str
    tenant_id: str
    installation_id: int | None


class Installation(msgspec.Struct, frozen=True):
    """A licensed installation: a tenant on a set of management nodes."""

    id: int
    tenant_id: str
    support_id: str
    integrity_key: str
    computer_ids: tuple[str, ...]
    build: str
    updated_at: str


class LicenseRecord(msgspec.Struct, frozen=True):
    """A license the portal issued, with its armored document."""

    seq: int
    license_id: str
    installation_id: int
    tenant_id: str
    integrity_key: str
    issued_at: str
    valid_until: str
    supersedes: str | None
    request_id: str | None
    document: str


class StoredResponse(msgspec.Struct, frozen=True):
    """The answer kept for a request ID, replayed when the same request comes again."""

    fingerprint: str
    status: int
    code: str | None
    license_id: str | None
    body: bytes


INSTALLATION_COLUMNS = "id, tenant_id, support_id, integrity_key, computer_ids, build, updated_at"
LICENSE_COLUMNS = (
    "seq, license_id, installation_id, tenant_id, integrity_key, issued_at, valid_until,"
    " supersedes, request_id, document"
)


def _installation(row: Any) -> Installation:
    id_, tenant, support, ikey, ids, build, updated = row
    ids_tuple = tuple(msgspec.json.decode(ids, type=list[str]))
    return Installation(id_, tenant, support, ikey, ids_tuple, build, updated)


class Tx:
    """The queries, on one connection inside one transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def savepoint(self) -> Savepoint:
        return Savepoint(self.conn)

    def activation_key(self, key_hash: str) -> KeyRow | None:
        row = self.conn.execute(
            "SELECT key_hash, tenant_id, installation_id FROM activation_keys WHERE key_hash = ?",
            (key_hash,),
        ).fetchone()
        return None if row is None else KeyRow(*row)

    def bind_key(self, key_hash: str, installation_id: int) -> None:
        self.conn.execute(
            "UPDATE activation_keys SET installation_id = ? WHERE key_hash = ?",
            (installation_id, key_hash),
        )

    def add_order(
        self,
        key_hash: str,
        *,
        tenant_id: str,
        product: str,
        valid_until: datetime,
        quantity: int,
        features: Mapping[str, str],
        now: datetime,
    ) -> str:
        """Add an order to the key (creating the key for ``tenant_id``); return the order ID."""
        key = self.activation_key(key_hash)
        if key is None:
            self.conn.execute(
                "INSERT INTO activation_keys (key_hash, tenant_id, created_at) VALUES (?, ?, ?)",
                (key_hash, tenant_id, ts(now)),
            )
        elif key.tenant_id != tenant_id:
            raise ValueError(f"the activation key belongs to tenant {key.tenant_id!r}")
        order_id = random_id("ORD-", 8)
        self.conn.execute(
            "INSERT INTO orders (order_id, key_hash, product, features, quantity, valid_until,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (order_id, key_hash, product, msgspec.json.encode(dict(features)).decode(),
             quantity, ts(valid_until), ts(now)),
        )  # fmt: skip
        return order_id

    def live_orders(self, installation_id: int, now: datetime) -> list[lf.Order]:
        """Orders of every key bound to the installation that have not ended, as added."""
        rows = self.conn.execute(
            "SELECT o.order_id, o.product, o.features, o.quantity, o.valid_until FROM orders o"
            " JOIN activation_keys k ON k.key_hash = o.key_hash"
            " WHERE k.installation_id = ? AND o.valid_until >= ? ORDER BY o.seq",
            (installation_id, ts(now)),
        ).fetchall()
        return [
            lf.Order(
                order_id=order_id,
                product=product,
                features=msgspec.json.decode(features, type=dict[str, str]),
                quantity=quantity,
                valid_until=parse_ts(valid_until),
            )
            for order_id, product, features, quantity, valid_until in rows
        ]

    def installation_by_integrity_key(self, integrity_key: str) -> Installation | None:
        row = self.conn.execute(
            f"SELECT {INSTALLATION_COLUMNS} FROM installations WHERE integrity_key = ?",  # noqa: S608
            (integrity_key,),
        ).fetchone()
        return None if row is None else _installation(row)

    def installations_of_tenant(self, tenant_id: str) -> list[Installation]:
        rows = self.conn.execute(
            f"SELECT {INSTALLATION_COLUMNS} FROM installations WHERE tenant_id = ?",  # noqa: S608
            (tenant_id,),
        ).fetchall()
        return [_installation(row) for row in rows]

    def create_installation(
        self, tenant_id: str, computer_ids: Sequence[str], build: str, now: datetime
    ) -> Installation:
        """A new installation with a fresh support ID; the integrity key must be unused."""
        ids = sorted(computer_ids)
        ikey = lf.integrity_key(tenant_id, ids)
        while True:
            support_id = random_id("SUP-", 4, 4)
            taken = self.conn.execute(
                "SELECT 1 FROM installations WHERE support_id = ?", (support_id,)
            ).fetchone()
            if taken is None:
                break
        cursor = self.conn.execute(
            "INSERT INTO installations (tenant_id, support_id, integrity_key, computer_ids,"
            " build, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (tenant_id, support_id, ikey, _ids_json(ids), build, ts(now), ts(now)),
        )
        assert cursor.lastrowid is not None
        return Installation(cursor.lastrowid, tenant_id, support_id, ikey, tuple(ids), build, ts(now))

    def update_installation(
        self, installation: Installation, computer_ids: Sequence[str], build: str, now: datetime
    ) -> Installation:
        """Re-bind the installation to ``computer_ids`` and record the build it runs."""
        ids = tuple(sorted(computer_ids))
        if ids == installation.computer_ids and build == installation.build:
            return installation
        ikey = lf.integrity_key(installation.tenant_id, ids)
        self.conn.execute(
            "UPDATE installations SET integrity_key = ?, computer_ids = ?, build = ?,"
            " updated_at = ? WHERE id = ?",
            (ikey, _ids_json(ids), build, ts(now), installation.id),
        )
        return msgspec.structs.replace(
            installation, integrity_key=ikey, computer_ids=ids, build=build, updated_at=ts(now)
        )

    def latest_license(self, installation_id: int) -> LicenseRecord | None:
        row = self.conn.execute(
            f"SELECT {LICENSE_COLUMNS} FROM licenses WHERE installation_id = ?"  # noqa: S608
            " ORDER BY seq DESC LIMIT 1",
            (installation_id,),
        ).fetchone()
        return None if row is None else LicenseRecord(*row)

    def current_licenses(self, integrity_keys: Sequence[str]) -> dict[str, tuple[str, dict[str, str]]]:
        """integrity key -> (tenant, the newest license's ID and times), for those with a license."""
        rows = self.conn.execute(
            "SELECT i.integrity_key, i.tenant_id, l.license_id, l.issued_at, l.valid_until"
            " FROM json_each(?) AS k JOIN installations AS i ON i.integrity_key = k.value"
            " JOIN licenses AS l ON l.seq ="
            " (SELECT MAX(seq) FROM licenses WHERE installation_id = i.id)",
            (_ids_json(integrity_keys),),
        ).fetchall()
        return {
            ikey: (tenant, {"license_id": license_id, "issued_at": issued, "valid_until": until})
            for ikey, tenant, license_id, issued, until in rows
        }

    def insert_license(
        self, installation_id: int, payload: lf.Payload, request_id: str | None, document: str
    ) -> None:
        self.conn.execute(
            "INSERT INTO licenses (license_id, installation_id, tenant_id, integrity_key,"
            " issued_at, valid_until, supersedes, request_id, document)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (payload.license_id, installation_id, payload.tenant_id, payload.integrity_key,
             ts(payload.issued_at), ts(payload.valid_until), payload.supersedes, request_id,
             document),
        )  # fmt: skip

    def transfers_since(self, tenant_id: str, since: datetime) -> list[datetime]:
        """When this tenant's transfers after ``since`` happened, oldest first."""
        rows = self.conn.execute(
            "SELECT at FROM transfers WHERE tenant_id = ? AND at > ? ORDER BY at",
            (tenant_id, ts(since)),
        ).fetchall()
        return [parse_ts(at) for (at,) in rows]

    def record_transfer(self, installation: Installation, new_integrity_key: str, now: datetime) -> None:
        self.conn.execute(
            "INSERT INTO transfers (tenant_id, installation_id, old_integrity_key,"
            " new_integrity_key, at) VALUES (?, ?, ?, ?, ?)",
            (installation.tenant_id, installation.id, installation.integrity_key,
             new_integrity_key, ts(now)),
        )  # fmt: skip

    def stored_response(self, request_id: str) -> StoredResponse | None:
        row = self.conn.execute(
            "SELECT fingerprint, status, code, license_id, body FROM idempotency WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else StoredResponse(*row)

    def store_response(self, request_id: str, response: StoredResponse, now: datetime) -> None:
        self.conn.execute(
            "INSERT INTO idempotency (request_id, fingerprint, status, code, license_id, body,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (request_id, response.fingerprint, response.status, response.code,
             response.license_id, response.body, ts(now)),
        )  # fmt: skip

    def log_request(self, record: RequestRecord) -> None:
        requestlog.insert(self.conn, record)


class Savepoint:
    """Undo part of a transaction: the writes of a refused request, but not its log entry."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("SAVEPOINT request")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.conn.execute("ROLLBACK TO request")
        self.conn.execute("RELEASE request")
