"""The license file codec: payload, armor, Ed25519 signing and verification.

The format is documented in docs/portal-api.md, "The license file".

Shared by the reference portal, which signs, and the daemon, which verifies. It also
reads and writes the offline request and response files. It imports only the standard
library, msgspec and cryptography, so both sides can use it without pulling in either one;
cryptography (about 9 MB of memory) only when a key is read or a signature made or checked,
so a daemon with no license and no key to read does not load it.
"""

from __future__ import annotations

import base64
import binascii
import glob
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, get_args

import msgspec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT: Final = 1
ALG: Final = "ed25519"
SIGNING_CONTEXT: Final = b"paragon-license/v1\n"
LICENSE_LABEL: Final = "PARAGON LICENSE"
REQUEST_LABEL: Final = "PARAGON LICENSE REQUEST"
PRIVATE_KEY_NAME: Final = "portal.key"
REQUEST_KINDS: Final = ("activation", "reactivation", "transfer")
DEFAULT_MAX_SKEW: Final = timedelta(minutes=5)
_MAX_TEXT = 1024 * 1024  # far above any real license; refuses to parse arbitrary blobs

Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

RejectReason = Literal[
    "malformed",
    "unsupported_alg",
    "unknown_kid",
    "bad_signature",
    "wrong_tenant",
    "integrity_mismatch",
    "issued_in_future",
    "expired",
]

EXPLANATIONS: Final[Mapping[RejectReason, str]] = {
    "malformed": "The file is not a readable Paragon license (or it was damaged on the way); "
    "get it from the License Portal again and import it unmodified.",
    "unsupported_alg": "The license is signed with an algorithm this version does not support; "
    "upgrade paragon-licensed or ask the vendor for an Ed25519-signed license.",
    "unknown_kid": "The license is signed with a portal key this node does not know; install the "
    "portal's current public key (portal.public_keys) or get a license signed with a known key.",
    "bad_signature": "The license's signature does not match its content, so it was altered or "
    "forged; get a fresh license from the License Portal.",
    "wrong_tenant": "The license was issued for another tenant; import it on that tenant, or "
    "activate this tenant with its own activation key.",
    "integrity_mismatch": "The license is bound to another set of management nodes; reactivate "
    "this installation, or transfer the license if its nodes changed.",
    "issued_in_future": "The license was issued later than this node's clock allows; check the "
    "node's time (NTP) and import the license again.",
    "expired": "The license's validity has ended; reactivate online, or import the response of "
    "an offline reactivation.",
}


class LicenseRejected(Exception):
    """A license text failed verification; ``reason`` is a stable identifier.

    ``detail`` says what exactly was wrong, ``explanation`` what an operator should do.
    For ``integrity_mismatch``, ``expected`` and ``actual`` carry the two integrity keys.
    """

    def __init__(
        self,
        reason: RejectReason,
        detail: str,
        *,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail
        self.expected = expected
        self.actual = actual

    @property
    def explanation(self) -> str:
        """The operator-facing sentence for this reason."""
        return EXPLANATIONS[self.reason]


class KeyFileError(Exception):
    """A key file could not be read or does not hold an Ed25519 key of the expected kind."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


class RequestFileError(ValueError):
    """An offline request file is not readable (no armored block, bad base64 or JSON, no kind)."""


class Order(msgspec.Struct, frozen=True):
    """One order a license covers; ``valid_until`` is when the order itself ends."""

    order_id: NonEmpty
    product: NonEmpty
    features: dict[str, str]
    quantity: Annotated[int, msgspec.Meta(ge=0)]
    valid_until: Timestamp


class Payload(msgspec.Struct, frozen=True):
    """The signed content of a license, in its pinned field order.

    Timestamps decode to timezone-aware datetimes. Fields this version does not know
    are ignored when decoding (the signature still covers them).
    """

    format: Literal[1]
    license_id: NonEmpty
    support_id: NonEmpty
    tenant_id: NonEmpty
    build: str
    computer_ids: tuple[str, ...]
    integrity_key: NonEmpty
    orders: tuple[Order, ...]
    issued_at: Timestamp
    valid_until: Timestamp
    supersedes: str | None


class _Envelope(msgspec.Struct, frozen=True):
    alg: str
    kid: str
    payload: str
    sig: str


def integrity_key(tenant_id: str, computer_ids: Iterable[str]) -> str:
    """Lowercase hex SHA-256 of the tenant ID and each sorted computer ID, each ending in a newline.

    A newline inside an ID would make two different sets hash alike, so it is refused.
    """
    parts = [tenant_id, *sorted(computer_ids)]
    if any("\n" in part for part in parts):
        raise ValueError("a tenant or computer ID must not contain a newline")
    return hashlib.sha256("".join(f"{part}\n" for part in parts).encode()).hexdigest()


def utc_seconds(moment: datetime) -> datetime:
    """The same instant in UTC, without sub-second digits (the license file's precision)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def encode_payload(payload: Payload) -> bytes:
    """The canonical compact JSON of a payload: IDs and feature keys sorted, UTC seconds."""
    orders = tuple(
        msgspec.structs.replace(
            order,
            features=dict(sorted(order.features.items())),
            valid_until=utc_seconds(order.valid_until),
        )
        for order in payload.orders
    )
    canonical = msgspec.structs.replace(
        payload,
        computer_ids=tuple(sorted(payload.computer_ids)),
        orders=orders,
        issued_at=utc_seconds(payload.issued_at),
        valid_until=utc_seconds(payload.valid_until),
    )
    return msgspec.json.encode(canonical)


def decode_payload(data: bytes) -> Payload:
    """Parse payload JSON; raise ``LicenseRejected('malformed')`` when it breaks the schema."""
    try:
        payload = msgspec.json.decode(data, type=Payload)
    except msgspec.DecodeError as exc:
        raise LicenseRejected("malformed", f"license payload: {exc}") from None
    try:
        own_key = integrity_key(payload.tenant_id, payload.computer_ids)
    except ValueError as exc:
        raise LicenseRejected("malformed", f"license payload: {exc}") from None
    if payload.integrity_key != own_key:
        raise LicenseRejected("malformed", "the payload's integrity key does not match its IDs")
    return payload


# Keys ---------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key ID: the first 16 hex digits of SHA-256 over the raw 32-byte public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read one PEM SubjectPublicKeyInfo Ed25519 public key, or raise ``KeyFileError``."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise KeyFileError(path, exc.strerror or str(exc)) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(path, "not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(path, "not an Ed25519 public key")
    return key


def load_public_keys(patterns: Iterable[str | os.PathLike[str]]) -> dict[str, Ed25519PublicKey]:
    """Load every key named by paths or glob patterns, by the kid computed from its content.

    A pattern with glob characters may match nothing; a plain path must exist.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    for pattern in patterns:
        text = os.fspath(pattern)
        paths = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        for path in paths:
            key = load_public_key(path)
            keys[key_id(key)] = key
    return keys


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an unencrypted PKCS8 PEM Ed25519 private key, or raise ``KeyFileError``."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise KeyFileError(path, exc.strerror or str(exc)) from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(path, "not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(path, "not an Ed25519 private key")
    return key


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    """The unencrypted PKCS8 PEM form of a private key (deterministic for Ed25519)."""
    from cryptography.hazmat.primitives import serialization

    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """The PEM SubjectPublicKeyInfo form of a public key."""
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from its first byte on; refuse to replace an existing file.

    The content goes to a temporary file that is linked into place, so a crash leaves
    either no file or the whole file, and the mode never was wider than asked.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; a public key must stay readable
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink()


def generate_keypair(out_dir: str | os.PathLike[str]) -> str:
    """Write ``out_dir/portal.key`` (0600) and ``out_dir/KID.pub`` (0644); return the kid.

    Raises ``FileExistsError`` rather than replacing an existing ``portal.key``.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    private_key = Ed25519PrivateKey.generate()
    kid = key_id(private_key.public_key())
    _write_new_file(directory / PRIVATE_KEY_NAME, private_key_pem(private_key), 0o600)
    _write_new_file(directory / f"{kid}.pub", public_key_pem(private_key.public_key()), 0o644)
    return kid


# Armor, signing and verification ------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _armor(label: str, data: bytes) -> str:
    text = _b64(data)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def _dearmor(text: str, label: str) -> bytes:
    """The bytes of the one ``label`` block in ``text``; raise ``ValueError`` saying why not."""
    if len(text) > _MAX_TEXT:
        raise ValueError("the text is too large")
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    starts = [i for i, line in enumerate(lines) if line == begin]
    if len(starts) != 1:
        raise ValueError(f"expected exactly one {begin} line, found {len(starts)}")
    try:
        stop = lines.index(end, starts[0] + 1)
    except ValueError:
        raise ValueError(f"no {end} line after the {begin} line") from None
    try:
        return base64.b64decode("".join(lines[starts[0] + 1 : stop]), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the armored block is not valid base64") from None


def _read_envelope(text: str) -> tuple[_Envelope, bytes, bytes]:
    try:
        envelope = msgspec.json.decode(_dearmor(text, LICENSE_LABEL), type=_Envelope)
        payload = base64.b64decode(envelope.payload, validate=True)
        signature = base64.b64decode(envelope.sig, validate=True)
    except (ValueError, binascii.Error, msgspec.DecodeError) as exc:
        raise LicenseRejected("malformed", str(exc)) from None
    return envelope, payload, signature


def sign(payload: Payload, private_key: Ed25519PrivateKey) -> str:
    """The armored license text: the canonical payload signed with ``private_key``.

    Ed25519 is deterministic, so the same payload and key always give the same text.
    """
    if payload.integrity_key != integrity_key(payload.tenant_id, payload.computer_ids):
        raise ValueError("the payload's integrity key does not match its tenant and computer IDs")
    data = encode_payload(payload)
    envelope = _Envelope(
        alg=ALG,
        kid=key_id(private_key.public_key()),
        payload=_b64(data),
        sig=_b64(private_key.sign(SIGNING_CONTEXT + data)),
    )
    return _armor(LICENSE_LABEL, msgspec.json.encode(envelope))


def inspect(text: str, keys: Mapping[str, Ed25519PublicKey]) -> Payload:
    """Check structure, algorithm, kid and signature, then decode the payload.

    No binding check (tenant, integrity key, time) is made: use this to display a
    license, or follow it with ``check_binding``. ``verify`` does both.
    """
    envelope, data, signature = _read_envelope(text)
    if envelope.alg != ALG:
        raise LicenseRejected("unsupported_alg", f"signature algorithm {envelope.alg!r}")
    public_key = keys.get(envelope.kid)
    if public_key is None:
        raise LicenseRejected("unknown_kid", f"no public key with kid {envelope.kid!r}")
    from cryptography.exceptions import InvalidSignature  # loaded with the key already

    try:
        public_key.verify(signature, SIGNING_CONTEXT + data)
    except InvalidSignature:
        raise LicenseRejected("bad_signature", f"signature does not verify (kid {envelope.kid})") from None
    return decode_payload(data)


def check_binding(
    payload: Payload,
    *,
    tenant_id: str,
    integrity_key: str,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    allow_expired: bool = False,
) -> None:
    """Raise ``LicenseRejected`` unless the payload is for this tenant and installation, now."""
    if payload.tenant_id != tenant_id:
        raise LicenseRejected("wrong_tenant", f"issued for tenant {payload.tenant_id!r}, not {tenant_id!r}")
    if payload.integrity_key != integrity_key:
        raise LicenseRejected(
            "integrity_mismatch",
            f"license integrity key {payload.integrity_key}, this installation's {integrity_key}",
            expected=integrity_key,
            actual=payload.integrity_key,
        )
    now = utc_seconds(now)
    if payload.issued_at > now + max_skew:
        raise LicenseRejected(
            "issued_in_future", f"issued at {_show(payload.issued_at)}, now is {_show(now)}"
        )
    if payload.valid_until < now and not allow_expired:
        raise LicenseRejected("expired", f"valid until {_show(payload.valid_until)}")


def verify(
    text: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    tenant_id: str,
    integrity_key: str,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    allow_expired: bool = False,
) -> Payload:
    """Fully verify a license for one tenant and installation; return its payload.

    Checks, in order: structure, algorithm, kid, signature, payload schema, tenant,
    integrity key, issue time (beyond ``max_skew``) and expiry. The first failure raises
    ``LicenseRejected`` with its reason.
    """
    payload = inspect(text, keys)
    check_binding(
        payload,
        tenant_id=tenant_id,
        integrity_key=integrity_key,
        now=now,
        max_skew=max_skew,
        allow_expired=allow_expired,
    )
    return payload


def _show(moment: datetime) -> str:
    return utc_seconds(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


# Offline files ------------------------------------------------------------------------


def extract_license(text: str) -> str:
    """The armored license in a bare license file or an offline response file.

    Raises ``LicenseRejected('malformed')`` when there is no well-formed license block.
    """
    _read_envelope(text)
    return _armor(LICENSE_LABEL, _dearmor(text, LICENSE_LABEL))


def _header(lines: Sequence[str]) -> str:
    """``# `` comment lines (each squeezed to one line), then a blank line, if any."""
    text = "".join(f"# {' '.join(line.split())}\n" for line in lines)
    return text + "\n" if text else ""


def encode_request(body: Mapping[str, Any], header_lines: Sequence[str]) -> str:
    """An offline request file: ``# `` header lines, then the armored JSON body.

    ``body`` is the online call's body plus ``kind`` (activation, reactivation or transfer).
    """
    if body.get("kind") not in REQUEST_KINDS:
        raise ValueError(f"an offline request needs a kind among {', '.join(REQUEST_KINDS)}")
    return _header(header_lines) + _armor(REQUEST_LABEL, msgspec.json.encode(dict(body)))


def decode_request(text: str) -> dict[str, Any]:
    """The JSON body of an offline request file, or ``RequestFileError`` saying what is wrong."""
    try:
        body = msgspec.json.decode(_dearmor(text, REQUEST_LABEL))
    except (ValueError, msgspec.DecodeError) as exc:
        raise RequestFileError(f"not a license request file: {exc}") from None
    if not isinstance(body, dict):
        raise RequestFileError("not a license request file: the body is not a JSON object")
    if body.get("kind") not in REQUEST_KINDS:
        raise RequestFileError(f"unknown request kind {body.get('kind')!r}")
    return body


def request_header_lines(tenant_id: str, kind: str, created: datetime) -> list[str]:
    """The standard header of an offline request file, telling a person what to do with it."""
    return [
        f"Paragon license {kind} request",
        f"Tenant: {tenant_id}",
        f"Created: {_show(created)}",
        "Upload this file on the License Portal's offline activation page (/offline on the",
        "portal), then import the response with: paragon-licensed ctl license import FILE",
    ]


def encode_response(license_text: str, header_lines: Sequence[str]) -> str:
    """An offline response file: ``# `` header lines, then the armored license."""
    return _header(header_lines) + extract_license(license_text)


def reasons() -> tuple[RejectReason, ...]:
    """Every rejection reason, in check order."""
    return get_args(RejectReason)
