"""Figure 3a: license verification rate, in files per second on one core.

A set of distinct licenses (realistic payloads: three computer IDs, three orders
with features) is signed with a fresh key, then verified in one thread pinned to
one CPU, in interleaved rounds:

- baseline: the raw Ed25519 verification of the same signed bytes (what no
  verifier can beat);
- ``licensefile.verify``: armor, envelope, kid, signature, payload schema and the
  binding checks (tenant, integrity key, times): a full import-time check;
- the daemon's ``Verifier.inspect``, first sight (cold cache) and again (the
  cached path every state evaluation takes).

Each rate is printed with its ratio to the baseline, measured in the same run.

    .venv/bin/python bench/license_verify.py [--licenses 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from paragon_licensed import licensefile as lf
from paragon_licensed.daemon.verifier import Verifier

TENANT = "tenant-bench"


def make_licenses(count: int, key: Ed25519PrivateKey) -> tuple[list[str], list[str]]:
    """``count`` signed licenses for one installation, and its computer IDs."""
    ids = sorted(str(uuid.uuid4()) for _ in range(3))
    now = datetime.now(UTC).replace(microsecond=0)
    orders = tuple(
        lf.Order(
            order_id=f"ORD-{n:04d}",
            product=product,
            features={"color": "yes", "scan": "ocr", "seats": str(10 * (n + 1))},
            quantity=10 * (n + 1),
            valid_until=now + timedelta(days=365),
        )
        for n, product in enumerate(("Paragon Print", "Paragon Scan", "Paragon Mobile"))
    )
    documents = []
    for n in range(count):
        payload = lf.Payload(
            format=1,
            license_id=str(uuid.uuid4()),
            support_id=f"SUP-{n:08d}",
            tenant_id=TENANT,
            build="3.2.1",
            computer_ids=tuple(ids),
            integrity_key=lf.integrity_key(TENANT, ids),
            orders=orders,
            issued_at=now - timedelta(seconds=n),
            valid_until=now + timedelta(days=30),
            supersedes=None,
        )
        documents.append(lf.sign(payload, key))
    return documents, ids


def raw_parts(document: str) -> tuple[bytes, bytes]:
    """(signed message, signature) of a license, taken apart outside the timed loop."""
    body = "".join(document.strip().splitlines()[1:-1])
    envelope = json.loads(base64.b64decode(body))
    payload = base64.b64decode(envelope["payload"])
    return lf.SIGNING_CONTEXT + payload, base64.b64decode(envelope["sig"])


def rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--licenses", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})  # one core, as the figure says

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    keys = {lf.key_id(public): public}
    documents, ids = make_licenses(args.licenses, key)
    parts = [raw_parts(d) for d in documents]
    ikey = lf.integrity_key(TENANT, ids)
    now = datetime.now(UTC)

    def baseline() -> None:
        for message, signature in parts:
            public.verify(signature, message)

    def full() -> None:
        for document in documents:
            lf.verify(document, keys, tenant_id=TENANT, integrity_key=ikey, now=now)

    cold_verifier = Verifier(keys)
    warm_verifier = Verifier(keys)
    for row, document in enumerate(documents):
        warm_verifier.inspect(row, document)

    def cold() -> None:
        cold_verifier.set_keys(keys)  # empties the cache
        for row, document in enumerate(documents):
            cold_verifier.inspect(row, document)

    def cached() -> None:
        for row, document in enumerate(documents):
            warm_verifier.inspect(row, document)

    runs: dict[str, list[float]] = {"raw": [], "verify": [], "cold": [], "cached": []}
    work = {"raw": baseline, "verify": full, "cold": cold, "cached": cached}
    for run in work.values():  # warm-up
        run()
    for _ in range(args.rounds):
        for name, run in work.items():
            runs[name].append(rate(len(documents), run))

    med = {name: statistics.median(values) for name, values in runs.items()}
    size = statistics.mean(len(d) for d in documents)
    print(f"{len(documents)} distinct licenses ({size:.0f} bytes each), {args.rounds} rounds, CPU {cpu}")
    print(f"{'what':46} {'files/s (median)':>17} {'vs raw Ed25519':>15}")
    rows = [
        ("raw Ed25519 verify of the same bytes (baseline)", "raw"),
        ("licensefile.verify (full check)", "verify"),
        ("daemon Verifier.inspect, first sight", "cold"),
        ("daemon Verifier.inspect, cached", "cached"),
    ]
    for label, name in rows:
        print(f"{label:46} {med[name]:17,.0f} {med[name] / med['raw']:14.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
