"""End to end: the daemon's /metrics page, scraped by Debian's real Prometheus, and promtool."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from support.portal import PortalProcess
from support.prometheus import PrometheusServer, fetch, free_port, tool
from support.scenarios import TENANT, Installation

pytest_plugins = ["support.portal", "support.scenarios"]
pytestmark = pytest.mark.e2e

Make = Callable[..., Installation]


def with_metrics(mode: str = "all") -> tuple[str, dict[str, dict[str, str]]]:
    listen = f"127.0.0.1:{free_port()}"
    return listen, {"metrics": {"listen": listen, "tenant_series": mode}}


@pytest.mark.timeout(180)
def test_prometheus_scrapes_the_license_validity(
    portal: PortalProcess, installations: Make, tmp_path: Path
) -> None:
    listen, config = with_metrics()
    inst = installations(portal, config=config)
    valid_until = datetime.fromisoformat(inst.license()["valid_until"]).timestamp()

    page = fetch(f"http://{listen}/metrics")
    checked = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=page, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    server = PrometheusServer(tmp_path / "prometheus", listen)
    try:
        found = server.wait_series(f'paragon_license_valid_until_seconds{{tenant="{TENANT}"}}')
        assert float(found[0]["value"][1]) == valid_until
        states = server.query(f'paragon_license_state{{tenant="{TENANT}"}} == 1')
        assert [s["metric"]["state"] for s in states] == ["active"]
        assert server.query('paragon_tenants{state="active"}')[0]["value"][1] == "1"
        assert server.query("paragon_cluster_is_coordinator")[0]["value"][1] == "1"
        assert server.query("paragon_store_available")[0]["value"][1] == "1"
    finally:
        server.stop()


def samples(page: str, name: str) -> dict[str, float]:
    """The samples of one metric on a page: {'{labels}': value}."""
    found = {}
    for line in page.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, value = line.rsplit(" ", 1)
            found[series.removeprefix(name)] = float(value)
    return found


@pytest.mark.timeout(180)
def test_tenant_series_follow_the_setting_and_work_is_counted(
    portal: PortalProcess, installations: Make
) -> None:
    listen, config = with_metrics("attention")
    config["metrics"]["attention_within"] = "1d"
    inst = installations(portal, config=config)
    assert inst.tenant()["days_left"] > 1, inst.tenant()
    inst.daemon.ctl("tenants", "set", "acme", check=True)
    url = f"http://{listen}/metrics"

    # Attention: the unlicensed tenant has its series, the active one (more than a day left) has not.
    page = fetch(url)
    states = samples(page, "paragon_license_state")
    assert states['{state="unlicensed",tenant="acme"}'] == 1.0
    assert not any(f'tenant="{TENANT}"' in series for series in states), states
    assert samples(page, "paragon_tenants")['{state="active"}'] == 1.0
    assert samples(page, "paragon_tenants")['{state="unlicensed"}'] == 1.0

    # A reload applies the setting: none leaves the counts only.
    inst.daemon.update_config({"metrics": {"tenant_series": "none"}})
    reloads = inst.daemon.log().count("configuration reloaded")
    inst.daemon.signal(signal.SIGHUP)
    inst.daemon.wait_until(lambda: inst.daemon.log().count("configuration reloaded") > reloads, what="reload")
    page = fetch(url)
    assert samples(page, "paragon_license_state") == {}
    assert samples(page, "paragon_tenants")['{state="unlicensed"}'] == 1.0

    # The activation (by the test's installation) and a reactivation are counted, with the portal time.
    inst.daemon.ctl("license", "reactivate", "--tenant", TENANT, check=True)
    page = fetch(url)
    assert (
        samples(page, "paragon_license_operations_total")['{operation="activation",outcome="success"}'] == 1.0
    )
    assert samples(page, "paragon_reactivations_total")['{cause="reactivation",outcome="success"}'] == 1.0
    answered = samples(page, "paragon_portal_request_duration_seconds_count")['{result="answered"}']
    assert answered >= 2.0
    info = samples(page, "paragon_build_info")
    assert list(info.values()) == [1.0]
    assert 'build="3.2.1"' in next(iter(info)), info
