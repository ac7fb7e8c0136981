"""End to end: the daemon's portal client against a portal that is down, slow, failing or refusing.

The portal's testing aids (`--latency`, `--fail-first`, `--fail-code`,
`--retry-after`) make the faults; its request log says how often the daemon
called, with which request ID, and when. Retries must reuse one request ID,
honour Retry-After, and never repeat a business refusal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from support.licenses import TENANT, DaemonFactory, RawVarlink
from support.portal import PortalProcess

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = pytest.mark.e2e

PortalFactory = Callable[..., PortalProcess]
ACTIVATIONS = "/api/v1/activations"
REACTIVATIONS = "/api/v1/reactivations"
UNREACHABLE = "io.paragon.License.PortalUnreachable"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_portal_down_is_unreachable_naming_the_url(
    portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    portal.add_order("KEY-D", TENANT)
    node = daemon_factory(portal, max_attempts=2)
    node.ctl("license", "activate", "--key", "KEY-D", check=True)
    before = node.ctl_json("license", "info")
    url = portal.url
    portal.stop()  # connection refused from now on

    result = node.ctl("license", "reactivate")
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert url in result.stderr
    assert "could not be reached" in result.stderr
    assert "--offline" in result.stderr  # the way out is named
    assert "Traceback" not in result.stderr

    with RawVarlink(node.socket) as raw:
        reply = raw.call("io.paragon.License.Reactivate", {"mode": "online"})
    assert reply["error"] == UNREACHABLE, reply
    assert reply["parameters"]["url"] == url
    assert "connection" in reply["parameters"]["reason"].lower()

    assert node.ctl_json("license", "info") == before


def test_slow_portal_times_out_as_unreachable(
    portal_factory: PortalFactory, daemon_factory: DaemonFactory
) -> None:
    portal = portal_factory()
    portal.add_order("KEY-T", TENANT)
    node = daemon_factory(portal, timeout="1s", max_attempts=2)
    node.ctl("license", "activate", "--key", "KEY-T", check=True)
    before = node.ctl_json("license", "info")
    portal.restart(["--latency", "2500"])

    with RawVarlink(node.socket) as raw:
        reply = raw.call("io.paragon.License.Reactivate", {"mode": "online"})
    assert reply["error"] == UNREACHABLE, reply
    assert reply["parameters"]["url"] == portal.url
    reason = reply["parameters"]["reason"]
    assert "1 s" in reason or "timed out" in reason.lower() or "timeout" in reason.lower(), reason

    result = node.ctl("license", "reactivate")
    assert result.returncode == 1
    assert portal.url in result.stderr
    assert "Traceback" not in result.stderr
    assert node.ctl_json("license", "info") == before


def test_server_errors_are_retried_with_one_request_id(
    portal_factory: PortalFactory, daemon_factory: DaemonFactory
) -> None:
    portal = portal_factory(serve_args=["--fail-first", "2"])
    portal.add_order("KEY-R", TENANT)
    node = daemon_factory(portal)

    result = node.ctl("license", "activate", "--key", "KEY-R")
    assert result.returncode == 0, result.stderr
    calls = portal.requests(path=ACTIVATIONS)
    assert [(c.status, c.injected) for c in calls] == [(500, True), (500, True), (200, False)], calls
    assert len({c.request_id for c in calls}) == 1
    assert calls[0].request_id
    processed = portal.requests(path=ACTIVATIONS, status=200, injected=False, replay=False)
    assert len(processed) == 1
    assert len(portal.licenses(TENANT)) == 1
    info = node.ctl_json("license", "info")
    assert info["license_id"] == processed[0].license_id
    history = node.ctl_json("license", "info", "--history")["history"]
    assert [h["request_id"] for h in history if h["action"] == "activation"] == [calls[0].request_id]


def test_rate_limit_retry_after_is_honoured(
    portal_factory: PortalFactory, daemon_factory: DaemonFactory
) -> None:
    faults = ["--fail-code", "rate_limited", "--fail-first", "1", "--retry-after", "2"]
    portal = portal_factory(serve_args=faults)
    portal.add_order("KEY-429", TENANT)
    node = daemon_factory(portal)

    result = node.ctl("license", "activate", "--key", "KEY-429")
    assert result.returncode == 0, result.stderr
    limited, done = portal.requests(path=ACTIVATIONS)
    assert (limited.status, limited.code, limited.injected) == (429, "rate_limited", True)
    assert (done.status, done.replay, done.injected) == (200, False, False)
    assert limited.request_id == done.request_id
    waited = at(done.at) - at(limited.at)
    assert waited >= timedelta(seconds=1.9), f"retried {waited} after a 429 with Retry-After: 2"


@pytest.mark.parametrize("code", ["unknown_activation_key", "subscription_ended"])
def test_business_refusal_is_final_and_shown_with_the_portals_message(
    code: str, portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    if code == "subscription_ended":
        portal.add_order("KEY-END", TENANT, valid_until=datetime.now(UTC).date() - timedelta(days=1))
        key = "KEY-END"
    else:
        portal.add_order("KEY-OTHER", TENANT)
        key = "NO-SUCH-KEY"
    node = daemon_factory(portal)

    result = node.ctl("license", "activate", "--key", key)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert code in result.stderr
    [call] = portal.requests(path=ACTIVATIONS)
    assert call.code == code
    assert call.status in range(400, 500)
    # The portal's own words reach the administrator.
    message = {
        "unknown_activation_key": "this activation key is not known for tenant default",
        "subscription_ended": "has ended; renew the subscription",
    }[code]
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert node.tenant_state()["state"] == "unlicensed"

    with RawVarlink(node.socket) as raw:
        reply = raw.call("io.paragon.License.Activate", {"activation_key": key})
    assert reply["error"] == "io.paragon.License.PortalRejected", reply
    assert reply["parameters"]["code"] == code
    assert message in reply["parameters"]["message"]
    assert len(portal.requests(path=ACTIVATIONS)) == 2  # one per call, never a retry


def test_subscription_ended_on_reactivation_keeps_the_license_and_is_not_retried(
    portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    node = daemon_factory(portal)
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    portal.add_order("KEY-SHORT", TENANT, valid_until=ends)
    node.ctl("license", "activate", "--key", "KEY-SHORT", check=True)
    before = node.ctl_json("license", "info")
    while datetime.now(UTC) <= ends + timedelta(seconds=1):
        time.sleep(0.2)

    result = node.ctl("license", "reactivate")
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "subscription_ended" in result.stderr
    assert "renew the subscription" in result.stderr
    [call] = portal.requests(path=REACTIVATIONS)
    assert call.code == "subscription_ended"
    after = node.ctl_json("license", "info")
    assert after["license_id"] == before["license_id"]
