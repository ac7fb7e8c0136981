"""This node's verified license copies as rows the view falls back on.

The copy in `paths.state_dir` outlives the store: a store that was lost (deleted,
damaged, replaced by an empty one) must not take the node's licenses with it. A
tenant the store has no license for is judged by the copy, and says so, until the
store has one again (the store is back, or the portal reissued it). A store with
an older license than the copy is a restore, which the start-up checks detect
and reactivate; its license is the one judged meanwhile.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING

from paragon_licensed.daemon.store.tenants import LicenseRow, TenantRow
from paragon_licensed.licensefile import LicenseRejected, Payload

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon

LOCAL_COPY = "local copy"


class LocalCopies:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self.rows: dict[str, LicenseRow] = {}
        # Not store rows: negative ids, so the verifier's cache never mixes them up with the store's.
        self._ids = itertools.count(-1, -1)

    def load(self, documents: dict[str, str]) -> None:
        """Take the copies read from state_dir; a copy that does not verify is ignored."""
        for tenant, document in sorted(documents.items()):
            row_id = next(self._ids)
            try:
                payload = self.app.verifier.inspect(row_id, document)
            except LicenseRejected:
                continue
            if payload.tenant_id == tenant:
                self.rows[tenant] = _row(row_id, tenant, document, payload)

    def keep(self, tenant: str, document: str, payload: Payload) -> None:
        """A verified license just written to the copies file."""
        current = self.rows.get(tenant)
        if current is not None and current.document == document:
            return
        row_id = next(self._ids)
        self.app.verifier.remember(row_id, payload)
        self.rows[tenant] = _row(row_id, tenant, document, payload)

    def tenant_rows(self) -> list[TenantRow]:
        """Before the store answers: one row per tenant with a copy."""
        return [self.overlay(_empty(tenant)) for tenant in sorted(self.rows)]

    def overlay(self, row: TenantRow) -> TenantRow:
        """The store's row, with the copy's license when the store has none."""
        copy = self.rows.get(row.id)
        if copy is None or row.license is not None:
            return row
        return dataclasses.replace(row, license=copy)


def is_local_copy(row: LicenseRow | None) -> bool:
    return row is not None and row.installed_by == LOCAL_COPY


def _row(row_id: int, tenant: str, document: str, payload: Payload) -> LicenseRow:
    return LicenseRow(
        row=row_id,
        tenant_id=tenant,
        license_id=payload.license_id,
        document=document,
        build=payload.build,
        integrity_key=payload.integrity_key,
        issued_at=payload.issued_at.timestamp(),
        valid_until=payload.valid_until.timestamp(),
        installed_at=0.0,
        installed_by=LOCAL_COPY,
        cause=LOCAL_COPY,
    )


def _empty(tenant: str) -> TenantRow:
    return TenantRow(
        id=tenant,
        admin_email="",
        created_at=0.0,
        flag="",
        flag_reason="",
        flag_cause="",
        flag_since=None,
        grace_until=None,
        retry_count=0,
        next_retry_at=None,
        license=None,
    )
