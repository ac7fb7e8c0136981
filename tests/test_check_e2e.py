"""`ctl check` as a monitoring plugin: UNKNOWN for what it cannot judge, thresholds, performance
data, and a WARNING for an offline node (which blocks every reactivation) seen by Prometheus too."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cluster import Cluster
from support.daemon import DAEMON
from support.portal import PortalProcess
from support.prometheus import fetch, free_port
from support.scenarios import TENANT, Installation

pytest_plugins = ["support.portal", "support.scenarios"]
pytestmark = pytest.mark.e2e

Make = Callable[..., Installation]


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DAEMON, "ctl", *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--bogus"),
        ("--config", "etc/nope.toml", "check"),
        ("check", "--config", "etc/nope.toml"),
        ("check", "--warning", "soon"),
        ("check", "--warning", "1", "--critical", "5"),
        ("--socket", "/nonexistent/io.paragon.License", "check"),
    ],
)
def test_what_check_cannot_judge_is_unknown_with_a_status_line(args: tuple[str, ...]) -> None:
    plain = ctl(*args)
    assert plain.returncode == 3, plain.stdout + plain.stderr
    assert plain.stdout.startswith("LICENSE UNKNOWN - "), plain.stdout
    assert plain.stdout.count("\n") == 1, plain.stdout
    as_json = ctl(*args, "--json")
    assert as_json.returncode == 3, as_json.stdout + as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["status"], report["exit_code"]) == ("unknown", 3)
    assert report["line"] == plain.stdout.strip()


def test_other_commands_keep_the_usage_exit_code() -> None:
    result = ctl("status", "--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr


@pytest.mark.timeout(120)
def test_thresholds_and_performance_data(portal: PortalProcess, installations: Make) -> None:
    inst = installations(portal)
    days = inst.tenant()["days_left"]
    assert days > 7, inst.tenant()

    ok = inst.daemon.ctl("check")
    assert ok.returncode == 0, ok.stdout
    status, perf = ok.stdout.strip().split(" | ")
    assert status.startswith(f"LICENSE OK - {TENANT} licensed until ")
    assert perf.split() == [f"'days_left_{TENANT}'={days};7:;2:", "nodes_online=1", "nodes_offline=0"]

    warning = inst.daemon.ctl("check", "--warning", str(days + 1))
    assert warning.returncode == 1, warning.stdout
    assert warning.stdout.startswith(f"LICENSE WARNING - {TENANT} license expires ")
    assert f";{days + 1}:;2:" in warning.stdout

    critical = inst.daemon.ctl("check", "--warning", str(days + 1), "--critical", str(days + 1))
    assert critical.returncode == 2, critical.stdout
    assert critical.stdout.startswith("LICENSE CRITICAL - ")
    report = json.loads(
        inst.daemon.ctl("check", "--json", "--critical", str(days + 1), "--warning", "999").stdout
    )
    assert (report["status"], report["exit_code"]) == ("critical", 2)
    assert report["perfdata"].startswith(f"'days_left_{TENANT}'={days};999:;{days + 1}:")


@pytest.mark.timeout(180)
def test_an_offline_node_is_a_warning_and_a_metric(portal: PortalProcess, tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    timings = {"heartbeat": "0.2s", "node_timeout": "1s"}
    cluster = Cluster(
        tmp_path / "cluster", f"sqlite://{tmp_path / 'shared' / 'store.db'}", portal, {"cluster": timings}
    )
    try:
        node1 = cluster.node("node-1", {"metrics": {"listen": listen}})
        cluster.start("node-1", "node-2")
        cluster.wait_online({"node-1", "node-2"})
        cluster.wait_coordinator()
        portal.add_order("KEY-OFFLINE", TENANT)
        node1.ctl("license", "activate", "--key", "KEY-OFFLINE", check=True)
        node1.wait_until(lambda: node1.tenant_state()["state"] == "active", what="active")
        assert node1.ctl("check").returncode == 0

        cluster.node("node-2").kill()
        node1.wait_until(lambda: cluster.online(node1) == {"node-1"}, what="node-2 offline")
        result = node1.ctl("check")
        assert result.returncode == 1, result.stdout
        assert result.stdout.startswith("LICENSE WARNING - ")
        assert "node node-2 offline for " in result.stdout
        assert "paragon-licensed ctl nodes forget node-2" in result.stdout
        assert result.stdout.rstrip().endswith("nodes_online=1 nodes_offline=1")

        page = fetch(f"http://{listen}/metrics")
        assert 'paragon_cluster_node_online{node="node-2"} 0.0' in page
        assert 'paragon_cluster_nodes{state="offline"} 1.0' in page
    finally:
        cluster.close()
