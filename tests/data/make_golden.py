"""Regenerate the golden license files and the fixed test key next to this script.

Run it with the project's interpreter: ``.venv/bin/python tests/data/make_golden.py``.
Everything is derived from fixed inputs and Ed25519 signatures are deterministic, so
running it again reproduces the same bytes; tests/test_licensefile.py checks that.
The key is for tests only: it signs nothing but these fixtures.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from paragon_licensed import licensefile as lf

HERE = Path(__file__).resolve().parent
TENANT = "acme-print"
COMPUTER_IDS = (
    "5c1f7f3e-9a0b-4a6e-8d2c-1b3e5f7a9c0d",
    "0a4b2c6d-8e1f-4a3b-9c5d-7e9f1a3b5c7d",
)


def test_private_key() -> Ed25519PrivateKey:
    """The fixed test key: its 32-byte seed is the SHA-256 of a constant label."""
    seed = hashlib.sha256(b"paragon-licensed golden test key").digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


GOLDEN: dict[str, lf.Payload] = {
    "golden-single.lic": lf.Payload(
        format=1,
        license_id="3f2b8c1e-6d4a-4f0b-9e2d-8a7c5b3e1f09",
        support_id="SUP-7KQ2-M9XD",
        tenant_id=TENANT,
        build="3.2.1",
        computer_ids=COMPUTER_IDS[:1],
        integrity_key=lf.integrity_key(TENANT, COMPUTER_IDS[:1]),
        orders=(
            lf.Order(
                order_id="ORD-4HZ8QW2P",
                product="Paragon Print",
                features={},
                quantity=1,
                valid_until=_at("2027-11-30T23:59:59Z"),
            ),
        ),
        issued_at=_at("2026-11-29T19:46:48Z"),
        valid_until=_at("2026-12-29T19:46:48Z"),
        supersedes=None,
    ),
    "golden-cluster.lic": lf.Payload(
        format=1,
        license_id="9d6e4a2b-1c3f-4e5a-8b7d-0f2e4c6a8b1d",
        support_id="SUP-7KQ2-M9XD",
        tenant_id=TENANT,
        build="3.3.0",
        computer_ids=tuple(sorted(COMPUTER_IDS)),
        integrity_key=lf.integrity_key(TENANT, COMPUTER_IDS),
        orders=(
            lf.Order(
                order_id="ORD-4HZ8QW2P",
                product="Paragon Print",
                features={},
                quantity=1,
                valid_until=_at("2027-11-30T23:59:59Z"),
            ),
            lf.Order(
                order_id="ORD-J3M7RX5T",
                product="Paragon Scan",
                features={"devices": "250", "ocr": "yes"},
                quantity=3,
                valid_until=_at("2026-12-15T23:59:59Z"),
            ),
        ),
        issued_at=_at("2026-11-30T08:00:00Z"),
        valid_until=_at("2026-12-15T23:59:59Z"),
        supersedes="3f2b8c1e-6d4a-4f0b-9e2d-8a7c5b3e1f09",
    ),
}


def main() -> None:
    key = test_private_key()
    (HERE / "test-portal.key").write_bytes(lf.private_key_pem(key))
    (HERE / "test-portal.pub").write_bytes(lf.public_key_pem(key.public_key()))
    for name, payload in GOLDEN.items():
        (HERE / name).write_text(lf.sign(payload, key))
    print(f"kid {lf.key_id(key.public_key())}: wrote {len(GOLDEN)} golden licenses to {HERE}")


if __name__ == "__main__":
    main()
