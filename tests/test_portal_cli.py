"""The ``paragon-license-portal`` commands: keygen, orders add, offline process, requests."""

from __future__ import annotations

import json
import stat
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from support.portal import PORTAL_BIN, PortalProcess

from paragon_licensed import licensefile as lf

pytest_plugins = ["support.portal"]

PortalFactory = Callable[..., PortalProcess]
NODE_A = "11111111-1111-4111-8111-111111111111"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PORTAL_BIN), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_keygen_writes_a_private_key_0600_and_a_public_key_named_by_kid(tmp_path: Path) -> None:
    result = run("keygen", "--out", tmp_path / "keys")
    assert result.returncode == 0, result.stderr
    kid = result.stdout.strip()
    assert len(kid) == 16
    private = tmp_path / "keys" / "portal.key"
    public = tmp_path / "keys" / f"{kid}.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert lf.key_id(lf.load_private_key(private).public_key()) == kid
    assert set(lf.load_public_keys([tmp_path / "keys" / "*.pub"])) == {kid}
    again = run("keygen", "--out", tmp_path / "keys")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert private.read_bytes() == lf.private_key_pem(lf.load_private_key(private))


def test_orders_add(portal_factory: PortalFactory) -> None:
    portal = portal_factory(start=False)
    db = str(portal.db_path)
    base = ["orders", "add", "--db", db, "--activation-key", "KEY-9", "--tenant", "acme"]
    first = run(*base, "--product", "Paragon Print", "--valid-until", "2027-03-31")
    assert first.returncode == 0, first.stderr
    second = run(
        *base,
        "--product",
        "Paragon Scan",
        "--valid-until",
        "2027-06-30",
        "--quantity",
        "4",
        "--feature",
        "ocr=yes",
        "--feature",
        "devices=250",
    )
    assert second.returncode == 0, second.stderr
    ids = [first.stdout.strip(), second.stdout.strip()]
    assert all(order_id.startswith("ORD-") for order_id in ids)
    assert ids[0] != ids[1]
    with portal.db.read() as tx:
        rows = tx.conn.execute(
            "SELECT order_id, product, features, quantity, valid_until FROM orders ORDER BY seq"
        ).fetchall()
    assert rows == [
        (ids[0], "Paragon Print", "{}", 1, "2027-03-31T23:59:59Z"),
        (ids[1], "Paragon Scan", '{"ocr":"yes","devices":"250"}', 4, "2027-06-30T23:59:59Z"),
    ]
    other = run(
        "orders", "add", "--db", db, "--activation-key", "KEY-9", "--tenant", "other",
        "--product", "X", "--valid-until", "2027-01-01",
    )  # fmt: skip
    assert other.returncode == 1
    assert "belongs to tenant 'acme'" in other.stderr
    bad = run(*base, "--product", "X", "--valid-until", "2027-01-01", "--feature", "nokey")
    assert bad.returncode == 2
    assert "K=V" in bad.stderr


def _offline(portal: PortalProcess, request: Path, response: Path) -> subprocess.CompletedProcess[str]:
    return run(
        "offline", "process", "--db", portal.db_path, "--key", portal.key_path, request,
        "--out", response,
    )  # fmt: skip


def test_offline_round_trip(portal_factory: PortalFactory, tmp_path: Path) -> None:
    portal = portal_factory(start=False)
    portal.add_order("KEY-OFF", "acme")
    body = {
        "kind": "activation",
        "activation_key": "KEY-OFF",
        "tenant_id": "acme",
        "computer_ids": [NODE_A],
        "build": "3.2.1",
        "request_id": str(uuid.uuid4()),
    }
    now = datetime.now(UTC)
    request = tmp_path / "request.txt"
    request.write_text(lf.encode_request(body, lf.request_header_lines("acme", "activation", now)))
    response = tmp_path / "response.txt"
    result = _offline(portal, request, response)
    assert result.returncode == 0, result.stderr
    text = response.read_text()
    assert text.startswith("# ")
    assert "paragon-licensed ctl license import FILE" in text
    payload = lf.verify(
        lf.extract_license(text),
        portal.public_keys(),
        tenant_id="acme",
        integrity_key=lf.integrity_key("acme", [NODE_A]),
        now=datetime.now(UTC),
    )
    assert payload.supersedes is None
    [logged] = portal.requests()
    assert (logged.source, logged.path, logged.status) == ("offline", "/api/v1/activations", 200)
    assert logged.license_id == payload.license_id
    # Processing the same file again gives the same license: it is idempotent.
    again = tmp_path / "again.txt"
    assert _offline(portal, request, again).returncode == 0
    assert lf.extract_license(again.read_text()) == lf.extract_license(text)
    assert len(portal.licenses()) == 1
    # A reactivation request then supersedes it.
    body = {k: v for k, v in body.items() if k != "activation_key"}
    body.update(kind="reactivation", request_id=str(uuid.uuid4()))
    request.write_text(lf.encode_request(body, []))
    assert _offline(portal, request, response).returncode == 0
    renewed = lf.inspect(response.read_text(), portal.public_keys())
    assert renewed.supersedes == payload.license_id


def test_offline_refusals_exit_1_with_the_problem(portal_factory: PortalFactory, tmp_path: Path) -> None:
    portal = portal_factory(start=False)
    request = tmp_path / "request.txt"
    body = {
        "kind": "activation",
        "activation_key": "KEY-UNKNOWN",
        "tenant_id": "acme",
        "computer_ids": [NODE_A],
        "build": "3.2.1",
        "request_id": "r-1",
    }
    request.write_text(lf.encode_request(body, ["test"]))
    result = _offline(portal, request, tmp_path / "response.txt")
    assert result.returncode == 1
    assert result.stderr.startswith("unknown_activation_key: ")
    assert not (tmp_path / "response.txt").exists()
    request.write_text("this is not a request")
    result = _offline(portal, request, tmp_path / "response.txt")
    assert result.returncode == 1
    assert result.stderr.startswith("bad_request: ")
    assert [r.code for r in portal.requests()] == ["unknown_activation_key"]


def test_requests_command(portal: PortalProcess) -> None:
    portal.add_order("KEY-1", "acme")
    import requests

    with requests.Session() as http:
        http.trust_env = False
        http.get(portal.url + "/nothing", timeout=10)
    result = run("requests", "--db", portal.db_path, "--json")
    assert result.returncode == 0, result.stderr
    [record] = json.loads(result.stdout)
    assert record["path"] == "/api/v1/nothing"
    assert record["status"] == 404
    assert record["code"] == "not_found"
    assert record["replay"] is False
    table = run("requests", "--db", portal.db_path)
    assert "/api/v1/nothing" in table.stdout


def test_help_marks_the_testing_aids() -> None:
    text = " ".join(run("serve", "--help").stdout.split())
    aids = (
        "--latency",
        "--fail-rate",
        "--fail-first",
        "--fail-code",
        "--retry-after",
        "--hold-after",
        "--without-query",
    )
    for option in aids:
        assert option in text
    assert text.count("TESTING AID") == len(aids)
    top = run("--help").stdout
    for command in ("keygen", "orders", "serve", "offline", "requests"):
        assert command in top
