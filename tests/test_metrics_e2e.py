"""End to end: the daemon's /metrics page, scraped by Debian's real Prometheus, and promtool."""

from __future__ import annotations

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
