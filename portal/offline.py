"""Offline processing: what the portal's upload page does with an offline request file.

The request is answered by the same service call as its online twin (idempotent by its
request ID, logged with source ``offline``); a license comes back as a response file.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from paragon_licensed import licensefile as lf
from paragon_licensed.portal import requestlog
from paragon_licensed.portal.messages import API_PREFIX, PATHS
from paragon_licensed.portal.problems import Problem
from paragon_licensed.portal.queries import ts
from paragon_licensed.portal.requestlog import RequestRecord
from paragon_licensed.portal.service import PortalService


class _Answer(msgspec.Struct):
    license: str


class _ProblemBody(msgspec.Struct):
    code: str
    detail: str


class Response(NamedTuple):
    """A response file and what it answers (for naming the file)."""

    text: str
    kind: str
    tenant_id: str
    request_id: str


def process(service: PortalService, request_text: str) -> str:
    """The response file for an offline request file; a refusal raises ``Problem``."""
    return answer(service, request_text).text


def answer(service: PortalService, request_text: str) -> Response:
    """``process``, also telling the request's kind, tenant and request ID."""
    started = time.perf_counter()
    try:
        data = lf.decode_request(request_text)
    except lf.RequestFileError as exc:
        raise Problem("bad_request", str(exc)) from None
    kind = data["kind"]
    record = RequestRecord(method="POST", path=API_PREFIX + PATHS[kind], source="offline")
    requestlog.describe(record, data, record.path)
    try:
        outcome = service.call(kind, data, record, started)
    except Problem as problem:
        record.status, record.code = problem.status, problem.code
        service.db.log_request(record)
        raise
    if outcome.status != 200:
        refusal = msgspec.json.decode(outcome.body, type=_ProblemBody)
        raise Problem(refusal.code, refusal.detail)
    license_text = msgspec.json.decode(outcome.body, type=_Answer).license
    public_key = service.private_key.public_key()
    payload = lf.inspect(license_text, {lf.key_id(public_key): public_key})
    text = lf.encode_response(license_text, response_header_lines(payload, kind))
    return Response(text, kind, payload.tenant_id, str(data["request_id"]))


def response_header_lines(payload: lf.Payload, kind: str) -> list[str]:
    """The header of a response file: what it holds and how to import it."""
    return [
        f"Paragon license, the response to an offline {kind} request",
        f"Tenant: {payload.tenant_id}",
        f"Support ID: {payload.support_id}",
        f"Issued: {ts(payload.issued_at)}, valid until {ts(payload.valid_until)}",
        f"Created: {ts(datetime.now(UTC))}",
        "Import it on the installation with: paragon-licensed ctl license import FILE",
    ]
