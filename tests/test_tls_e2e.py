"""End to end: the portal over HTTPS with a test CA, and the daemon's refusal of unverified TLS.

`trustme` makes a CA and a certificate for 127.0.0.1; the portal serves with it.
A daemon that names the CA in `portal.ca_bundle` activates; one that does not
refuses the connection before any request reaches the portal. Plain HTTP is
for loopback addresses only, which `check-config` enforces.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from support.daemon import DAEMON, toml
from support.licenses import TENANT, DaemonFactory, RawVarlink
from support.portal import PortalProcess

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = pytest.mark.e2e

PortalFactory = Callable[..., PortalProcess]
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# requests reads these from the environment; empty, they are as good as unset.
NO_CA_ENV = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}


@pytest.fixture
def tls_portal(portal_factory: PortalFactory, tmp_path: Path) -> tuple[PortalProcess, Path]:
    """A portal serving HTTPS with a certificate for 127.0.0.1; returns it and the CA file."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    cert_file = tmp_path / "portal-cert.pem"
    key_file = tmp_path / "portal-key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    portal = portal_factory(tls=(cert_file, key_file))
    assert portal.url.startswith("https://127.0.0.1:")
    portal.add_order("KEY-TLS", TENANT)
    return portal, ca_file


def test_activation_over_https_with_the_configured_ca(
    tls_portal: tuple[PortalProcess, Path], daemon_factory: DaemonFactory
) -> None:
    portal, ca_file = tls_portal
    node = daemon_factory(portal, ca_bundle=str(ca_file), env=NO_CA_ENV)
    result = node.ctl("license", "activate", "--key", "KEY-TLS")
    assert result.returncode == 0, result.stderr
    assert node.tenant_state()["state"] == "active"
    [call] = portal.requests(path="/api/v1/activations")
    assert call.status == 200
    assert node.ctl_json("license", "info")["license_id"] == call.license_id


def test_configured_ca_wins_over_a_ca_bundle_in_the_environment(
    tls_portal: tuple[PortalProcess, Path], daemon_factory: DaemonFactory
) -> None:
    """Hosts often export REQUESTS_CA_BUNDLE; the daemon's own portal.ca_bundle must still be used."""
    portal, ca_file = tls_portal
    env = {"REQUESTS_CA_BUNDLE": SYSTEM_BUNDLE, "CURL_CA_BUNDLE": SYSTEM_BUNDLE}
    node = daemon_factory(portal, ca_bundle=str(ca_file), max_attempts=1, env=env)
    result = node.ctl("license", "activate", "--key", "KEY-TLS")
    assert result.returncode == 0, result.stderr
    assert node.tenant_state()["state"] == "active"


def test_unverified_certificate_is_refused_before_any_request(
    tls_portal: tuple[PortalProcess, Path], daemon_factory: DaemonFactory
) -> None:
    portal, _ = tls_portal
    # The system trust store (certifi's, here): the test CA is not in it.
    node = daemon_factory(portal, max_attempts=2, env=NO_CA_ENV)

    result = node.ctl("license", "activate", "--key", "KEY-TLS")
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert portal.url in result.stderr
    assert "TLS" in result.stderr
    assert "Traceback" not in result.stderr
    with RawVarlink(node.socket) as raw:
        reply = raw.call("io.paragon.License.Activate", {"activation_key": "KEY-TLS"})
    assert reply["error"] == "io.paragon.License.PortalUnreachable", reply
    assert "TLS verification" in reply["parameters"]["reason"]
    assert reply["parameters"]["url"] == portal.url

    assert portal.requests() == [], "no request may reach a portal whose certificate did not verify"
    assert node.tenant_state()["state"] == "unlicensed"


def test_an_unreadable_ca_bundle_is_an_unreachable_portal_named_by_its_key(
    tls_portal: tuple[PortalProcess, Path], daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    # The trust store is read at the first portal call: the node starts, and the call says why.
    portal, _ = tls_portal
    node = daemon_factory(portal, ca_bundle=str(tmp_path / "missing-ca.pem"), env=NO_CA_ENV)
    result = node.ctl("license", "activate", "--key", "KEY-TLS")
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "portal.ca_bundle" in result.stderr
    assert "No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr + node.log()
    assert portal.requests() == []
    assert node.tenant_state()["state"] == "unlicensed"


def check_config(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / f"check-{abs(hash(url))}.toml"
    config.write_text(toml({"portal": {"url": url, "public_keys": [str(tmp_path / "keys" / "*.pub")]}}))
    command = [DAEMON, "check-config", "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("url", ["http://portal.example.com/api/v1", "http://10.1.2.3:8080/api/v1"])
def test_check_config_refuses_plain_http_to_a_remote_host(tmp_path: Path, url: str) -> None:
    result = check_config(tmp_path, url)
    assert result.returncode == 2, (result.stdout, result.stderr)
    output = result.stdout + result.stderr
    assert "portal.url" in output
    assert url in output
    assert "https" in output


@pytest.mark.parametrize(
    "url",
    ["https://portal.example.com/api/v1", "http://127.0.0.1:8080/api/v1", "http://[::1]:8080/api/v1"],
)
def test_check_config_accepts_https_and_loopback_http(tmp_path: Path, url: str) -> None:
    result = check_config(tmp_path, url)
    assert result.returncode == 0, (result.stdout, result.stderr)
