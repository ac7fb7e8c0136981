"""The portal's testing aids (latency, injected failures, held answers), TLS, stopping and restarting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from support.portal import PortalProcess

from paragon_licensed import licensefile as lf

pytest_plugins = ["support.portal"]

PortalFactory = Callable[..., PortalProcess]
NODE_A = "11111111-1111-4111-8111-111111111111"


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def activation(tenant: str = "acme", key: str = "KEY-1", request_id: str = "") -> dict[str, Any]:
    return {
        "activation_key": key,
        "tenant_id": tenant,
        "computer_ids": [NODE_A],
        "build": "3.2.1",
        "request_id": request_id or str(uuid.uuid4()),
    }


def test_fail_first_answers_500_and_records_nothing(
    portal_factory: PortalFactory, http: requests.Session
) -> None:
    portal = portal_factory(serve_args=["--fail-first", "2"])
    portal.add_order("KEY-1", "acme")
    body = activation(request_id="retried")
    url = portal.url + "/activations"
    for _ in range(2):
        failed = http.post(url, json=body, timeout=10)
        assert failed.status_code == 500
        assert failed.headers["Content-Type"] == "application/problem+json"
        assert failed.json()["code"] == "internal"
        assert "testing aid" in failed.json()["detail"]
        assert "Retry-After" not in failed.headers
    assert http.post(url, json=body, timeout=10).status_code == 200
    assert len(portal.licenses()) == 1
    log = portal.requests(request_id="retried")
    assert [(r.status, r.injected, r.replay) for r in log] == [
        (500, True, False),
        (500, True, False),
        (200, False, False),
    ]
    assert all(r.integrity_key == lf.integrity_key("acme", [NODE_A]) for r in log)


def test_rate_limited_carries_retry_after(portal_factory: PortalFactory, http: requests.Session) -> None:
    portal = portal_factory(
        serve_args=["--fail-first", "1", "--fail-code", "rate_limited", "--retry-after", "3"]
    )
    portal.add_order("KEY-1", "acme")
    body = activation()
    limited = http.post(portal.url + "/activations", json=body, timeout=10)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.json()["code"] == "rate_limited"
    assert http.post(portal.url + "/activations", json=body, timeout=10).status_code == 200


def test_any_problem_code_can_be_injected(portal_factory: PortalFactory, http: requests.Session) -> None:
    portal = portal_factory(serve_args=["--fail-first", "1", "--fail-code", "subscription_ended"])
    answer = http.post(portal.url + "/reactivations", json={}, timeout=10)
    assert answer.status_code == 403
    assert answer.json()["code"] == "subscription_ended"


def test_fail_rate_one_fails_every_api_request(portal_factory: PortalFactory, http: requests.Session) -> None:
    portal = portal_factory(serve_args=["--fail-rate", "1", "--fail-code", "unavailable"])
    portal.add_order("KEY-1", "acme")
    for _ in range(3):
        answer = http.post(portal.url + "/activations", json=activation(), timeout=10)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "1"
    current = http.get(portal.url + "/licenses/current?tenant_id=acme&integrity_key=x", timeout=10)
    assert current.status_code == 503
    assert portal.licenses() == []
    assert all(r.injected for r in portal.requests())


def test_latency_is_added_to_each_api_request(portal_factory: PortalFactory, http: requests.Session) -> None:
    portal = portal_factory(serve_args=["--latency", "250"])
    url = portal.url + "/licenses/current?tenant_id=acme&integrity_key=x"
    for _ in range(2):
        started = time.monotonic()
        assert http.get(url, timeout=10).status_code == 404
        assert time.monotonic() - started >= 0.25


def test_hold_after_processes_then_holds_the_answer_until_released(
    portal_factory: PortalFactory, http: requests.Session
) -> None:
    portal = portal_factory(serve_args=["--hold-after", "1"])
    for tenant in ("acme", "held"):
        portal.add_order(f"KEY-{tenant}", tenant)
    url = portal.url + "/activations"
    assert http.post(url, json=activation("acme", "KEY-acme"), timeout=10).status_code == 200
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(lambda: http.post(url, json=activation("held", "KEY-held"), timeout=30))
        # Processed and recorded while its answer is held: the client is known to be mid-call.
        deadline = time.monotonic() + 20
        while not portal.requests(tenant_id="held") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r.status for r in portal.requests(tenant_id="held")] == [200]
        assert len(portal.licenses("held")) == 1
        assert not pending.done()
        portal.release()
        assert pending.result(timeout=20).status_code == 200


# TLS --------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for 127.0.0.1: (ca_file, cert_chain_file, key_file)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, chain_file, key_file = tmp_path / "ca.pem", tmp_path / "chain.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(chain_file), append=True)
    return ca_file, chain_file, key_file


def test_tls_is_verified_with_the_test_ca(
    portal_factory: PortalFactory, tls_files: tuple[Path, Path, Path]
) -> None:
    ca_file, chain_file, key_file = tls_files
    portal = portal_factory(tls=(chain_file, key_file))
    assert portal.url.startswith("https://127.0.0.1:")
    portal.add_order("KEY-1", "acme")
    with requests.Session() as http:
        http.trust_env = False
        answer = http.post(portal.url + "/activations", json=activation(), verify=str(ca_file), timeout=10)
        assert answer.status_code == 200
        lf.inspect(answer.json()["license"], portal.public_keys())
    with requests.Session() as http:
        http.trust_env = False
        with pytest.raises(requests.exceptions.SSLError):
            http.post(portal.url + "/activations", json=activation(), timeout=10)
    # A plain-HTTP client neither gets an answer nor harms the server.
    with requests.Session() as http:
        http.trust_env = False
        with pytest.raises(requests.exceptions.ConnectionError):
            http.get(portal.url.replace("https://", "http://") + "/nothing", timeout=10)
    with requests.Session() as http:
        http.trust_env = False
        answer = http.get(portal.url + "/nothing", verify=str(ca_file), timeout=10)
        assert answer.status_code == 404


# Outages ----------------------------------------------------------------------------


def test_stop_and_start_on_the_same_port_and_database(portal: PortalProcess, http: requests.Session) -> None:
    portal.add_order("KEY-1", "acme")
    url = portal.url
    assert http.post(url + "/activations", json=activation(), timeout=10).status_code == 200
    portal.stop()
    assert not portal.running
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(url + "/reactivations", json=activation(), timeout=10)
    portal.start()
    assert portal.url == url
    body = {k: v for k, v in activation().items() if k != "activation_key"}
    assert http.post(url + "/reactivations", json=body, timeout=10).status_code == 200
    assert len(portal.licenses()) == 2
    portal.kill()
    portal.start(serve_args=["--fail-first", "1"])
    assert portal.url == url
    assert http.post(url + "/reactivations", json=body, timeout=10).status_code == 500
    assert http.post(url + "/reactivations", json=body, timeout=10).status_code == 200
