"""Request bodies of portal API v1, validated with msgspec; a bad field becomes ``bad_request``.

Unknown fields are ignored so that newer clients can add fields without breaking.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from paragon_licensed.portal.problems import Problem

API_PREFIX: Final = "/api/v1"
MAX_COMPUTERS: Final = 256
MAX_QUERY: Final = 1000  # installations one POST /licenses/current/query may ask about
QUERY_PATH: Final = "/licenses/current/query"

# Printable text without control characters: a newline inside an ID would break the
# integrity key's framing.
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
ComputerIds = Annotated[list[Text], msgspec.Meta(min_length=1, max_length=MAX_COMPUTERS)]


class ActivationRequest(msgspec.Struct, frozen=True):
    activation_key: Text
    tenant_id: Text
    computer_ids: ComputerIds
    build: Text
    request_id: Text


class ReactivationRequest(msgspec.Struct, frozen=True):
    tenant_id: Text
    computer_ids: ComputerIds
    build: Text
    request_id: Text


class TransferRequest(msgspec.Struct, frozen=True):
    tenant_id: Text
    old_computer_ids: ComputerIds
    new_computer_ids: ComputerIds
    request_id: Text


class InstallationRef(msgspec.Struct, frozen=True):
    """One installation a current-license query asks about, as GET /licenses/current names it."""

    tenant_id: Text
    integrity_key: Text


class CurrentQuery(msgspec.Struct, frozen=True):
    tenants: Annotated[list[InstallationRef], msgspec.Meta(max_length=MAX_QUERY)]


Body = ActivationRequest | ReactivationRequest | TransferRequest

# offline request kind / API path -> body type
BODY_TYPES: Final[dict[str, type[Body]]] = {
    "activation": ActivationRequest,
    "reactivation": ReactivationRequest,
    "transfer": TransferRequest,
}


# request kind -> its path under API_PREFIX
PATHS: Final = {
    "activation": "/activations",
    "reactivation": "/reactivations",
    "transfer": "/transfers",
}


def parse_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or ``bad_request``."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise Problem("bad_request", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Problem("bad_request", "the body must be a JSON object")
    return data


def convert(kind: str, data: dict[str, Any]) -> Body:
    """Validate a parsed body for ``kind``; the problem's detail names the bad field."""
    try:
        body = msgspec.convert(data, BODY_TYPES[kind])
    except msgspec.ValidationError as exc:
        raise Problem("bad_request", str(exc).replace("`$.", "`")) from None
    for field in ("computer_ids", "old_computer_ids", "new_computer_ids"):
        ids = getattr(body, field, None)
        if ids is not None and len(set(ids)) != len(ids):
            raise Problem("bad_request", f"`{field}` lists a computer ID more than once")
    if isinstance(body, TransferRequest) and set(body.old_computer_ids) == set(body.new_computer_ids):
        raise Problem(
            "bad_request", "`new_computer_ids` are the same as `old_computer_ids`; reactivate instead"
        )
    return body


def convert_query(data: dict[str, Any]) -> CurrentQuery:
    """Validate a current-license query; too many installations is refused before anything else."""
    tenants = data.get("tenants")
    if isinstance(tenants, list) and len(tenants) > MAX_QUERY:
        raise Problem(
            "bad_request",
            f"`tenants` lists {len(tenants)} installations; a query may ask about at most "
            f"{MAX_QUERY}: split it into several queries",
        )
    try:
        return msgspec.convert(data, CurrentQuery)
    except msgspec.ValidationError as exc:
        raise Problem("bad_request", str(exc).replace("`$.", "`")) from None


def canonical(data: dict[str, Any]) -> bytes:
    """A stable encoding of a body, to tell a retry from a different request."""
    return msgspec.json.encode(data, order="sorted")
