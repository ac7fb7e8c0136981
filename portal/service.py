"""What the portal does with each call: bind installations, issue licenses, keep answers.

Every call runs in one write transaction: the idempotency check, the business writes,
the license, the stored answer and the request log entry commit together, so a retry
with the same ``request_id`` finds either nothing or the complete answer.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from paragon_licensed import licensefile as lf
from paragon_licensed.portal import messages
from paragon_licensed.portal.db import PortalDB
from paragon_licensed.portal.messages import (
    ActivationRequest,
    Body,
    CurrentQuery,
    ReactivationRequest,
    TransferRequest,
)
from paragon_licensed.portal.problems import Problem
from paragon_licensed.portal.queries import Installation, StoredResponse, Tx, hash_key, ts
from paragon_licensed.portal.requestlog import RequestRecord

TRANSFER_WINDOW = timedelta(days=365)


class Outcome(NamedTuple):
    """An answer: HTTP status, JSON body, problem code (None on success), replayed or not."""

    status: int
    body: bytes
    code: str | None
    replay: bool
    license_id: str | None


class PortalService:
    """The portal's logic, shared by the HTTP server and ``offline process``."""

    def __init__(
        self,
        db: PortalDB,
        private_key: Ed25519PrivateKey,
        *,
        license_days: int = 30,
        transfer_limit: int = 2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.private_key = private_key
        self.license_days = license_days
        self.transfer_limit = transfer_limit
        self.clock = clock

    def call(self, kind: str, data: dict[str, Any], record: RequestRecord, started: float) -> Outcome:
        """Answer one activation, reactivation or transfer body and log it in ``record``.

        ``started`` is the ``time.perf_counter()`` value when handling began.

        A body that does not validate raises ``Problem('bad_request')``, and a reused
        request ID ``Problem('request_id_reused')``; neither is stored, both are logged
        by the caller.
        """
        body = messages.convert(kind, data)
        fingerprint = _fingerprint(kind, data)
        with self.db.write() as tx:
            stored = tx.stored_response(body.request_id)
            if stored is not None and stored.fingerprint != fingerprint:
                raise Problem(
                    "request_id_reused",
                    f"request ID {body.request_id} was already used for a different request; "
                    "use a new request ID for a new request",
                )
            if stored is None:
                stored = self._answer(tx, kind, body, fingerprint)
                outcome = Outcome(stored.status, stored.body, stored.code, False, stored.license_id)
            else:
                outcome = Outcome(stored.status, stored.body, stored.code, True, stored.license_id)
            _finish(record, outcome, started)
            tx.log_request(record)
        return outcome

    def current_license(self, tenant_id: str, integrity_key: str) -> dict[str, str]:
        """ID and times of the newest license of the installation bound to ``integrity_key``."""
        with self.db.read() as tx:
            latest = _current(tx, tenant_id, integrity_key)
        if latest is None:
            raise Problem("not_found", f"no license was issued to this installation of tenant {tenant_id}")
        return latest

    def current_licenses(self, query: CurrentQuery) -> list[dict[str, Any]]:
        """``current_license`` for each installation asked about, in order, from one snapshot;
        ``current`` is None where there is no license (instead of ``not_found``)."""
        with self.db.read() as tx:
            found = tx.current_licenses([ref.integrity_key for ref in query.tenants])
        answer = []
        for ref in query.tenants:
            tenant, current = found.get(ref.integrity_key, (None, None))
            answer.append(
                {
                    "tenant_id": ref.tenant_id,
                    "integrity_key": ref.integrity_key,
                    "current": current if tenant == ref.tenant_id else None,
                }
            )
        return answer

    # The calls ---------------------------------------------------------------------------

    def _answer(self, tx: Tx, kind: str, body: Body, fingerprint: str) -> StoredResponse:
        now = lf.utc_seconds(self.clock())
        try:
            with tx.savepoint():
                if isinstance(body, ActivationRequest):
                    installation = self._activate(tx, body, now)
                elif isinstance(body, ReactivationRequest):
                    installation = self._reactivate(tx, body, now)
                else:
                    installation = self._transfer(tx, body, now)
                payload, document = self._issue(tx, installation, body.request_id, now)
        except Problem as problem:
            stored = StoredResponse(fingerprint, problem.status, problem.code, None, problem.encode())
        else:
            encoded = msgspec.json.encode({"license": document})
            stored = StoredResponse(fingerprint, 200, None, payload.license_id, encoded)
        tx.store_response(body.request_id, stored, now)
        return stored

    def _activate(self, tx: Tx, body: ActivationRequest, now: datetime) -> Installation:
        key_hash = hash_key(body.activation_key)
        key = tx.activation_key(key_hash)
        if key is None or key.tenant_id != body.tenant_id:
            raise Problem(
                "unknown_activation_key",
                f"this activation key is not known for tenant {body.tenant_id}; check the key "
                "in the order confirmation and the tenant it was bought for",
            )
        installation = _find_installation(tx, body.tenant_id, body.computer_ids)
        if key.installation_id is not None and (
            installation is None or installation.id != key.installation_id
        ):
            raise Problem(
                "activation_key_in_use",
                "this activation key is already activated on another installation; reactivate "
                "that installation, or transfer its license to these computer IDs",
            )
        if installation is None:
            installation = tx.create_installation(body.tenant_id, body.computer_ids, body.build, now)
        else:
            installation = tx.update_installation(installation, body.computer_ids, body.build, now)
        if key.installation_id is None:
            tx.bind_key(key_hash, installation.id)
        return installation

    def _reactivate(self, tx: Tx, body: ReactivationRequest, now: datetime) -> Installation:
        installation = _find_installation(tx, body.tenant_id, body.computer_ids)
        if installation is None:
            raise Problem(
                "integrity_mismatch",
                f"no installation of tenant {body.tenant_id} is activated with these computer "
                "IDs; activate it with an activation key, or transfer the license from the "
                "computer IDs it was activated with",
            )
        return tx.update_installation(installation, body.computer_ids, body.build, now)

    def _transfer(self, tx: Tx, body: TransferRequest, now: datetime) -> Installation:
        old_key = lf.integrity_key(body.tenant_id, body.old_computer_ids)
        new_key = lf.integrity_key(body.tenant_id, body.new_computer_ids)
        installation = tx.installation_by_integrity_key(old_key)
        if installation is None:
            raise Problem(
                "integrity_mismatch",
                f"no installation of tenant {body.tenant_id} is activated with the old computer "
                "IDs; check them against the current license, or activate the new system",
            )
        if tx.installation_by_integrity_key(new_key) is not None:
            raise Problem(
                "integrity_key_in_use",
                "the new computer IDs already form another activated installation of tenant "
                f"{body.tenant_id}",
            )
        recent = tx.transfers_since(body.tenant_id, now - TRANSFER_WINDOW)
        if len(recent) >= self.transfer_limit:
            raise Problem("transfer_limit_reached", self._limit_detail(body.tenant_id, recent))
        tx.record_transfer(installation, new_key, now)
        return tx.update_installation(installation, body.new_computer_ids, installation.build, now)

    def _limit_detail(self, tenant_id: str, recent: list[datetime]) -> str:
        limit = f"tenant {tenant_id} may transfer its license {self.transfer_limit} times in 365 days"
        if not recent:
            return f"{limit}; transfers are disabled on this portal"
        return f"{limit}; the next transfer is possible from {ts(recent[0] + TRANSFER_WINDOW)}"

    def _issue(
        self, tx: Tx, installation: Installation, request_id: str, now: datetime
    ) -> tuple[lf.Payload, str]:
        """Sign a license covering every order of the installation's keys that has not ended."""
        orders = tx.live_orders(installation.id, now)
        previous = tx.latest_license(installation.id)
        if not orders and previous is None:
            # A first activation: the installation is rolled back with this refusal, so its
            # support ID would be a different one at every attempt. Name the tenant instead.
            raise Problem(
                "subscription_ended",
                f"every order of this activation key for tenant {installation.tenant_id} has ended; "
                "renew the subscription, then activate again",
            )
        if not orders:
            raise Problem(
                "subscription_ended",
                f"every order used by this installation (support ID {installation.support_id}) "
                "has ended; renew the subscription, then reactivate",
            )
        cap = now + timedelta(days=self.license_days)
        payload = lf.Payload(
            format=lf.FORMAT,
            license_id=str(uuid.uuid4()),
            support_id=installation.support_id,
            tenant_id=installation.tenant_id,
            build=installation.build,
            computer_ids=installation.computer_ids,
            integrity_key=installation.integrity_key,
            orders=tuple(orders),
            issued_at=now,
            valid_until=min(cap, *(order.valid_until for order in orders)),
            supersedes=None if previous is None else previous.license_id,
        )
        document = lf.sign(payload, self.private_key)
        tx.insert_license(installation.id, payload, request_id, document)
        return payload, document


def _current(tx: Tx, tenant_id: str, integrity_key: str) -> dict[str, str] | None:
    """The newest license of the installation of ``tenant_id`` bound to ``integrity_key``."""
    installation = tx.installation_by_integrity_key(integrity_key)
    if installation is None or installation.tenant_id != tenant_id:
        return None
    latest = tx.latest_license(installation.id)
    if latest is None:
        return None
    return {"license_id": latest.license_id, "issued_at": latest.issued_at, "valid_until": latest.valid_until}


def _find_installation(tx: Tx, tenant_id: str, computer_ids: list[str]) -> Installation | None:
    """The installation bound to exactly these IDs or, failing that, to a strict subset.

    A subset means management nodes joined the cluster since the last binding; the
    largest subset, then the most recently bound, wins.
    """
    exact = tx.installation_by_integrity_key(lf.integrity_key(tenant_id, computer_ids))
    if exact is not None:
        return exact
    wanted = set(computer_ids)
    subsets = [i for i in tx.installations_of_tenant(tenant_id) if set(i.computer_ids) < wanted]
    return max(subsets, key=lambda i: (len(i.computer_ids), i.updated_at), default=None)


def _fingerprint(kind: str, data: dict[str, Any]) -> str:
    # ``kind`` comes from the path or the offline file, so the same request_id used for
    # another call is a reuse even when the bodies look alike.
    return hashlib.sha256(messages.canonical({**data, "kind": kind})).hexdigest()


def _finish(record: RequestRecord, outcome: Outcome, started: float) -> None:
    record.status = outcome.status
    record.code = outcome.code
    record.replay = outcome.replay
    record.license_id = outcome.license_id
    record.handling_ms = (time.perf_counter() - started) * 1000
