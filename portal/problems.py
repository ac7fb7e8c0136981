"""The portal's refusals: one stable code each, with its HTTP status and title (RFC 9457 bodies)."""

from __future__ import annotations

from typing import Any, Final

import msgspec

PROBLEM_TYPE_PREFIX: Final = "urn:paragon-license:problem:"

# code -> (HTTP status, title). The codes are the protocol; clients branch on them.
PROBLEMS: Final[dict[str, tuple[int, str]]] = {
    "bad_request": (400, "The request is not valid"),
    "unknown_activation_key": (404, "Unknown activation key"),
    "subscription_ended": (403, "Every order has ended"),
    "activation_key_in_use": (409, "The activation key is used by another installation"),
    "integrity_mismatch": (409, "No installation with these computer IDs"),
    "integrity_key_in_use": (409, "These computer IDs already form another installation"),
    "transfer_limit_reached": (409, "Transfer limit reached"),
    "request_id_reused": (409, "The request ID was used for a different request"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "payload_too_large": (413, "The request body is too large"),
    "rate_limited": (429, "Too many requests"),
    "internal": (500, "Internal error"),
    "unavailable": (503, "The portal is unavailable"),
}

# Codes whose answer carries Retry-After: the client is expected to come back.
RETRY_CODES: Final = frozenset({"rate_limited", "unavailable"})


class Problem(Exception):
    """A refusal with a stable ``code``; ``detail`` is the sentence a person reads."""

    def __init__(self, code: str, detail: str) -> None:
        if code not in PROBLEMS:
            raise ValueError(f"unknown problem code {code!r}")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def status(self) -> int:
        return PROBLEMS[self.code][0]

    def body(self) -> dict[str, Any]:
        """The ``application/problem+json`` document."""
        status, title = PROBLEMS[self.code]
        return {
            "type": PROBLEM_TYPE_PREFIX + self.code,
            "title": title,
            "status": status,
            "code": self.code,
            "detail": self.detail,
        }

    def encode(self) -> bytes:
        return msgspec.json.encode(self.body())
