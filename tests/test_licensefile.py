"""The license file format, pinned by golden files, and every rejection.

The format: docs/portal-api.md, "The license file".
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from paragon_licensed import licensefile as lf

DATA = Path(__file__).parent / "data"
TEST_KID = "b0c22b95d9ff11d9"
TENANT = "acme-print"
NODE_A = "5c1f7f3e-9a0b-4a6e-8d2c-1b3e5f7a9c0d"
NODE_B = "0a4b2c6d-8e1f-4a3b-9c5d-7e9f1a3b5c7d"


def _load_make_golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_golden = _load_make_golden()
TEST_KEY: Ed25519PrivateKey = lf.load_private_key(DATA / "test-portal.key")
KEYS = {TEST_KID: TEST_KEY.public_key()}


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def make_payload(**changes: Any) -> lf.Payload:
    """A valid payload for TENANT on NODE_A, issued now-ish; ``changes`` override fields."""
    tenant = changes.get("tenant_id", TENANT)
    ids = changes.get("computer_ids", (NODE_A,))
    fields: dict[str, Any] = {
        "format": 1,
        "license_id": "00000000-0000-4000-8000-000000000001",
        "support_id": "SUP-AAAA-BBBB",
        "tenant_id": tenant,
        "build": "3.2.1",
        "computer_ids": ids,
        "integrity_key": lf.integrity_key(tenant, ids),
        "orders": (lf.Order("ORD-1", "Paragon Print", {}, 1, at("2027-01-31T23:59:59Z")),),
        "issued_at": at("2026-11-29T12:00:00Z"),
        "valid_until": at("2026-12-29T12:00:00Z"),
        "supersedes": None,
    }
    fields.update(changes)
    return lf.Payload(**fields)


NOW = at("2026-11-30T00:00:00Z")


def verify(text: str, **overrides: Any) -> lf.Payload:
    args: dict[str, Any] = {
        "tenant_id": TENANT,
        "integrity_key": lf.integrity_key(TENANT, [NODE_A]),
        "now": NOW,
    }
    args.update(overrides)
    return lf.verify(text, KEYS, **args)


def envelope_of(text: str) -> dict[str, Any]:
    lines = text.strip().splitlines()
    decoded: dict[str, Any] = json.loads(base64.b64decode("".join(lines[1:-1])))
    return decoded


def armor_envelope(envelope: dict[str, Any]) -> str:
    data = base64.b64encode(json.dumps(envelope, separators=(",", ":")).encode()).decode()
    lines = [data[i : i + 64] for i in range(0, len(data), 64)]
    return "\n".join(["-----BEGIN PARAGON LICENSE-----", *lines, "-----END PARAGON LICENSE-----"])


# The pinned format ------------------------------------------------------------------


def test_test_key_has_the_pinned_kid() -> None:
    assert lf.key_id(TEST_KEY.public_key()) == TEST_KID
    assert lf.load_public_keys([DATA / "test-portal.pub"]) == {TEST_KID: KEYS[TEST_KID]}


def test_integrity_key_is_sha256_of_tenant_and_sorted_ids_each_ending_in_newline() -> None:
    expected = hashlib.sha256(f"{TENANT}\n{NODE_B}\n{NODE_A}\n".encode()).hexdigest()
    assert lf.integrity_key(TENANT, [NODE_A, NODE_B]) == expected
    assert expected == "53ee0efafd4e4c4bc2eaebea75254a299d4a6dc3243bd0c740393839fc0f0ef0"
    with pytest.raises(ValueError, match="newline"):
        lf.integrity_key(TENANT, ["a\nb"])


def test_golden_single_decodes_to_every_pinned_field() -> None:
    text = (DATA / "golden-single.lic").read_text()
    payload = lf.verify(
        text,
        KEYS,
        tenant_id="acme-print",
        integrity_key="68d79cd5380bc7112335d28ffe80e45bd31a82bb915652286dc41cfe2a66c678",
        now=at("2026-11-29T20:00:00Z"),
    )
    assert payload.format == 1
    assert payload.license_id == "3f2b8c1e-6d4a-4f0b-9e2d-8a7c5b3e1f09"
    assert payload.support_id == "SUP-7KQ2-M9XD"
    assert payload.tenant_id == "acme-print"
    assert payload.build == "3.2.1"
    assert payload.computer_ids == (NODE_A,)
    assert payload.integrity_key == lf.integrity_key("acme-print", [NODE_A])
    assert payload.orders == (
        lf.Order(
            order_id="ORD-4HZ8QW2P",
            product="Paragon Print",
            features={},
            quantity=1,
            valid_until=datetime(2027, 11, 30, 23, 59, 59, tzinfo=UTC),
        ),
    )
    assert payload.issued_at == datetime(2026, 11, 29, 19, 46, 48, tzinfo=UTC)
    assert payload.issued_at.tzinfo is not None
    assert payload.valid_until == datetime(2026, 12, 29, 19, 46, 48, tzinfo=UTC)
    assert payload.supersedes is None


def test_golden_cluster_decodes_to_every_pinned_field() -> None:
    payload = lf.inspect((DATA / "golden-cluster.lic").read_text(), KEYS)
    assert payload.license_id == "9d6e4a2b-1c3f-4e5a-8b7d-0f2e4c6a8b1d"
    assert payload.support_id == "SUP-7KQ2-M9XD"
    assert payload.build == "3.3.0"
    assert payload.computer_ids == (NODE_B, NODE_A)  # sorted
    assert payload.integrity_key == ("53ee0efafd4e4c4bc2eaebea75254a299d4a6dc3243bd0c740393839fc0f0ef0")
    assert [o.order_id for o in payload.orders] == ["ORD-4HZ8QW2P", "ORD-J3M7RX5T"]
    scan = payload.orders[1]
    assert scan.product == "Paragon Scan"
    assert scan.features == {"devices": "250", "ocr": "yes"}
    assert scan.quantity == 3
    assert scan.valid_until == at("2026-12-15T23:59:59Z")
    assert payload.issued_at == at("2026-11-30T08:00:00Z")
    assert payload.valid_until == at("2026-12-15T23:59:59Z")
    assert payload.supersedes == "3f2b8c1e-6d4a-4f0b-9e2d-8a7c5b3e1f09"


def test_golden_envelope_and_payload_bytes_are_pinned() -> None:
    text = (DATA / "golden-single.lic").read_text()
    lines = text.splitlines()
    assert lines[0] == "-----BEGIN PARAGON LICENSE-----"
    assert lines[-1] == "-----END PARAGON LICENSE-----"
    assert text.endswith("-----END PARAGON LICENSE-----\n")
    assert all(len(line) == 64 for line in lines[1:-2])
    assert 0 < len(lines[-2]) <= 64
    envelope = envelope_of(text)
    assert list(envelope) == ["alg", "kid", "payload", "sig"]
    assert envelope["alg"] == "ed25519"
    assert envelope["kid"] == TEST_KID
    payload = base64.b64decode(envelope["payload"])
    assert payload == (
        b'{"format":1,"license_id":"3f2b8c1e-6d4a-4f0b-9e2d-8a7c5b3e1f09",'
        b'"support_id":"SUP-7KQ2-M9XD","tenant_id":"acme-print","build":"3.2.1",'
        b'"computer_ids":["5c1f7f3e-9a0b-4a6e-8d2c-1b3e5f7a9c0d"],'
        b'"integrity_key":"68d79cd5380bc7112335d28ffe80e45bd31a82bb915652286dc41cfe2a66c678",'
        b'"orders":[{"order_id":"ORD-4HZ8QW2P","product":"Paragon Print","features":{},'
        b'"quantity":1,"valid_until":"2027-11-30T23:59:59Z"}],'
        b'"issued_at":"2026-11-29T19:46:48Z","valid_until":"2026-12-29T19:46:48Z",'
        b'"supersedes":null}'
    )
    signature = base64.b64decode(envelope["sig"])
    KEYS[TEST_KID].verify(signature, b"paragon-license/v1\n" + payload)


@pytest.mark.parametrize("name", sorted(make_golden.GOLDEN))
def test_resigning_reproduces_the_golden_file_byte_for_byte(name: str) -> None:
    payload: lf.Payload = make_golden.GOLDEN[name]
    assert lf.sign(payload, make_golden.test_private_key()) == (DATA / name).read_text()
    assert lf.private_key_pem(make_golden.test_private_key()) == ((DATA / "test-portal.key").read_bytes())


# Every rejection, each with its own reason -----------------------------------------


def test_a_valid_license_verifies() -> None:
    assert verify(lf.sign(make_payload(), TEST_KEY)) == make_payload()


def test_forged_signature_is_bad_signature() -> None:
    forger = Ed25519PrivateKey.generate()
    envelope = envelope_of(lf.sign(make_payload(), forger))
    envelope["kid"] = TEST_KID  # claims to come from the portal's key
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(armor_envelope(envelope))
    assert caught.value.reason == "bad_signature"


def test_tampered_payload_is_bad_signature() -> None:
    envelope = envelope_of(lf.sign(make_payload(), TEST_KEY))
    tampered = base64.b64decode(envelope["payload"]).replace(b'"quantity":1', b'"quantity":9')
    envelope["payload"] = base64.b64encode(tampered).decode()
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(armor_envelope(envelope))
    assert caught.value.reason == "bad_signature"


def test_other_tenant_is_wrong_tenant() -> None:
    text = lf.sign(make_payload(tenant_id="other-tenant"), TEST_KEY)
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(text)
    assert caught.value.reason == "wrong_tenant"
    assert "other-tenant" in caught.value.detail


def test_other_installation_is_integrity_mismatch_with_both_keys() -> None:
    text = lf.sign(make_payload(computer_ids=(NODE_B,)), TEST_KEY)
    ours = lf.integrity_key(TENANT, [NODE_A])
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(text, integrity_key=ours)
    assert caught.value.reason == "integrity_mismatch"
    assert caught.value.expected == ours
    assert caught.value.actual == lf.integrity_key(TENANT, [NODE_B])
    assert ours in caught.value.detail


def test_unknown_kid() -> None:
    text = lf.sign(make_payload(), Ed25519PrivateKey.generate())
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(text)
    assert caught.value.reason == "unknown_kid"


def test_other_alg_is_unsupported_alg() -> None:
    envelope = envelope_of(lf.sign(make_payload(), TEST_KEY))
    envelope["alg"] = "rsa-pss-sha256"
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(armor_envelope(envelope))
    assert caught.value.reason == "unsupported_alg"


def test_issued_ten_minutes_in_the_future() -> None:
    text = lf.sign(make_payload(issued_at=NOW + timedelta(minutes=10)), TEST_KEY)
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(text)
    assert caught.value.reason == "issued_in_future"


def test_issued_within_the_clock_skew_is_accepted() -> None:
    text = lf.sign(make_payload(issued_at=NOW + timedelta(minutes=4)), TEST_KEY)
    assert verify(text).issued_at == NOW + timedelta(minutes=4)


def test_expired() -> None:
    text = lf.sign(make_payload(valid_until=NOW - timedelta(seconds=1)), TEST_KEY)
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(text)
    assert caught.value.reason == "expired"
    assert verify(text, allow_expired=True).valid_until == NOW - timedelta(seconds=1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "-----BEGIN PARAGON LICENSE-----\n!!!!\n-----END PARAGON LICENSE-----\n",
        "-----BEGIN PARAGON LICENSE-----\nbm90IGpzb24=\n-----END PARAGON LICENSE-----\n",
        "-----BEGIN PARAGON LICENSE-----\nbm90IGpzb24=\n",
    ],
)
def test_broken_armor_base64_or_json_is_malformed(text: str) -> None:
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(text)
    assert caught.value.reason == "malformed"


def test_signed_payload_breaking_the_schema_is_malformed() -> None:
    data = b'{"format":1,"license_id":"x"}'
    envelope = {
        "alg": "ed25519",
        "kid": TEST_KID,
        "payload": base64.b64encode(data).decode(),
        "sig": base64.b64encode(TEST_KEY.sign(b"paragon-license/v1\n" + data)).decode(),
    }
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(armor_envelope(envelope))
    assert caught.value.reason == "malformed"


def test_checks_run_in_the_documented_order() -> None:
    # Unknown kid wins over everything the payload could also be wrong about.
    text = lf.sign(
        make_payload(tenant_id="x", valid_until=NOW - timedelta(days=9)),
        Ed25519PrivateKey.generate(),
    )
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(text)
    assert caught.value.reason == "unknown_kid"
    # Tenant before integrity key before time.
    text = lf.sign(make_payload(tenant_id="x", valid_until=NOW - timedelta(days=9)), TEST_KEY)
    with pytest.raises(lf.LicenseRejected) as caught:
        verify(text)
    assert caught.value.reason == "wrong_tenant"


def test_every_reason_has_an_operator_sentence() -> None:
    assert set(lf.reasons()) == set(lf.EXPLANATIONS)
    assert len(lf.reasons()) == 8
    for reason in lf.reasons():
        assert lf.LicenseRejected(reason, "x").explanation.endswith(".")


def test_inspect_checks_the_signature_but_not_the_binding() -> None:
    text = lf.sign(make_payload(tenant_id="x", valid_until=NOW - timedelta(days=9)), TEST_KEY)
    assert lf.inspect(text, KEYS).tenant_id == "x"
    with pytest.raises(lf.LicenseRejected) as caught:
        lf.inspect(text, {})
    assert caught.value.reason == "unknown_kid"


def test_sign_refuses_an_inconsistent_integrity_key() -> None:
    with pytest.raises(ValueError, match="integrity key"):
        lf.sign(make_payload(integrity_key="0" * 64), TEST_KEY)


# Keys -------------------------------------------------------------------------------


def test_generate_keypair_modes_and_names(tmp_path: Path) -> None:
    kid = lf.generate_keypair(tmp_path / "keys")
    private = tmp_path / "keys" / "portal.key"
    public = tmp_path / "keys" / f"{kid}.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == sorted(["portal.key", f"{kid}.pub"])
    key = lf.load_private_key(private)
    assert lf.key_id(key.public_key()) == kid
    with pytest.raises(FileExistsError):
        lf.generate_keypair(tmp_path / "keys")


def test_load_public_keys_by_content_not_name(tmp_path: Path) -> None:
    (tmp_path / "whatever.pub").write_bytes((DATA / "test-portal.pub").read_bytes())
    kid2 = lf.generate_keypair(tmp_path / "second")
    keys = lf.load_public_keys([str(tmp_path / "*.pub"), str(tmp_path / "second" / "*.pub")])
    assert set(keys) == {TEST_KID, kid2}
    assert lf.load_public_keys([str(tmp_path / "nothing-here" / "*.pub")]) == {}


def test_bad_key_files_raise_key_file_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key")
    with pytest.raises(lf.KeyFileError) as caught:
        lf.load_public_keys([str(tmp_path / "*.pub")])
    assert caught.value.path == str(garbage)
    assert "PEM" in caught.value.reason
    with pytest.raises(lf.KeyFileError) as caught:
        lf.load_public_keys([tmp_path / "missing.pub"])
    assert caught.value.path == str(tmp_path / "missing.pub")
    with pytest.raises(lf.KeyFileError):
        lf.load_public_key(DATA / "test-portal.key")  # a private key is not a public key
    with pytest.raises(lf.KeyFileError):
        lf.load_private_key(DATA / "test-portal.pub")


# Offline files ----------------------------------------------------------------------


def test_extract_license_from_bare_license_and_response() -> None:
    text = (DATA / "golden-single.lic").read_text()
    assert lf.extract_license(text) == text
    response = lf.encode_response(text, ["Paragon license", "Tenant: acme-print"])
    assert response.startswith("# Paragon license\n# Tenant: acme-print\n")
    assert lf.extract_license(response) == text
    assert lf.inspect(response, KEYS) == lf.inspect(text, KEYS)
    assert lf.extract_license("  \r\n" + text.replace("\n", "\r\n")) == text


@pytest.mark.parametrize(
    "text",
    ["", "# only a header\n", "-----BEGIN PARAGON LICENSE REQUEST-----\ne30=\n-----END X-----\n"],
)
def test_extract_license_refuses_other_text(text: str) -> None:
    with pytest.raises(lf.LicenseRejected) as caught:
        lf.extract_license(text)
    assert caught.value.reason == "malformed"


def test_offline_request_round_trip_and_header() -> None:
    body = {
        "kind": "reactivation",
        "tenant_id": TENANT,
        "computer_ids": [NODE_A],
        "build": "3.2.1",
        "request_id": "r-1",
    }
    header = lf.request_header_lines(TENANT, "reactivation", NOW)
    text = lf.encode_request(body, header)
    assert text.startswith("# Paragon license reactivation request\n# Tenant: acme-print\n")
    assert "offline activation page" in text
    assert "paragon-licensed ctl license import FILE" in text
    assert "-----BEGIN PARAGON LICENSE REQUEST-----\n" in text
    assert lf.decode_request(text) == body
    with pytest.raises(lf.LicenseRejected):
        lf.extract_license(text)  # a request is not a license


def test_decode_request_refuses_garbage_and_unknown_kinds() -> None:
    with pytest.raises(lf.RequestFileError):
        lf.decode_request("hello")
    with pytest.raises(ValueError, match="kind"):
        lf.encode_request({"kind": "upgrade"}, [])
    unknown = lf.encode_request({"kind": "activation"}, []).replace(
        base64.b64encode(b'{"kind":"activation"}').decode(),
        base64.b64encode(b'{"kind":"upgrade"}').decode(),
    )
    with pytest.raises(lf.RequestFileError, match="upgrade"):
        lf.decode_request(unknown)


# Properties -------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1)
_moment = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lf.utc_seconds)


@st.composite
def payloads(draw: st.DrawFn) -> lf.Payload:
    tenant = draw(_text)
    ids = tuple(sorted(draw(st.sets(_text, min_size=1, max_size=5))))
    orders = draw(
        st.lists(
            st.builds(
                lf.Order,
                order_id=_text,
                product=_text,
                features=st.dictionaries(st.text(), st.text(), max_size=3).map(
                    lambda d: dict(sorted(d.items()))
                ),
                quantity=st.integers(0, 10**6),
                valid_until=_moment,
            ),
            max_size=4,
        )
    )
    return lf.Payload(
        format=1,
        license_id=draw(_text),
        support_id=draw(_text),
        tenant_id=tenant,
        build=draw(st.text()),
        computer_ids=ids,
        integrity_key=lf.integrity_key(tenant, ids),
        orders=tuple(orders),
        issued_at=draw(_moment),
        valid_until=draw(_moment),
        supersedes=draw(st.none() | _text),
    )


@settings(deadline=None)  # signing is fast, but a loaded CI machine must not make it flaky
@given(payloads())
def test_sign_then_inspect_round_trips(payload: lf.Payload) -> None:
    text = lf.sign(payload, TEST_KEY)
    assert lf.inspect(text, KEYS) == payload
    assert lf.decode_payload(lf.encode_payload(payload)) == payload
    assert lf.extract_license(text) == text
    assert all(len(line) <= 64 for line in text.splitlines())


@settings(deadline=None)
@given(payloads(), st.integers(min_value=0))
def test_any_flipped_bit_in_the_payload_is_rejected(payload: lf.Payload, where: int) -> None:
    envelope = envelope_of(lf.sign(payload, TEST_KEY))
    data = bytearray(base64.b64decode(envelope["payload"]))
    data[where % len(data)] ^= 1 << (where % 8)
    envelope["payload"] = base64.b64encode(bytes(data)).decode()
    with pytest.raises(lf.LicenseRejected) as caught:
        lf.inspect(armor_envelope(envelope), KEYS)
    assert caught.value.reason == "bad_signature"


@given(
    st.dictionaries(
        st.text(min_size=1),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
            max_leaves=8,
        ),
        max_size=6,
    ),
    st.sampled_from(lf.REQUEST_KINDS),
    st.lists(st.text(), max_size=4),
)
def test_request_files_round_trip(body: dict[str, Any], kind: str, header: list[str]) -> None:
    body["kind"] = kind
    text = lf.encode_request(body, header)
    assert lf.decode_request(text) == msgspec.json.decode(msgspec.json.encode(body))
    before = text.split("-----BEGIN PARAGON LICENSE REQUEST-----", 1)[0].splitlines()
    if header:
        assert before[-1] == ""
        assert all(line.startswith("# ") for line in before[:-1])
    else:
        assert before == []
