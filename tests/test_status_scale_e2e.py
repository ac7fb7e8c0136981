"""Status that scales: GetStatus is a bounded summary whatever the number of tenants, and
ListTenants pages through all of them (by state, by cursor), each tenant exactly once while
tenants are added and change state meanwhile. Against the real daemon and its socket."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import DaemonProcess
from support.licenses import RawVarlink

TENANTS = 1200


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon with 1,200 configured tenants, none licensed (every one needs attention)."""
    node = DaemonProcess(
        tmp_path_factory.mktemp("crowded"),
        config={
            "product": {"deployment": "multi-tenant"},
            "tenants": [{"id": f"tenant-{i:04d}"} for i in range(TENANTS)],
        },
    )
    node.start()
    node.wait_until(lambda: node.status()["tenant_total"] == TENANTS, timeout=60, what="tenants loaded")
    yield node
    node.stop()


def raw_status(node: DaemonProcess) -> tuple[int, dict[str, object]]:
    with RawVarlink(node.socket) as raw:
        raw.send("io.paragon.License.GetStatus", {})
        while b"\0" not in raw.buffer:
            raw.buffer += raw.sock.recv(65536)
        size = raw.buffer.index(b"\0")
        return size, raw.reply()["parameters"]["status"]


def test_get_status_is_a_bounded_summary(crowded: DaemonProcess) -> None:
    size, status = raw_status(crowded)
    assert status["tenant_total"] == TENANTS
    assert status["tenant_states"] == {
        "unlicensed": TENANTS,
        "active": 0,
        "expiring": 0,
        "expired": 0,
        "invalid": 0,
        "needs_reactivation": 0,
        "needs_transfer": 0,
    }
    attention = status["attention"]
    assert isinstance(attention, list)
    assert [t["tenant"] for t in attention] == [f"tenant-{i:04d}" for i in range(50)]
    assert status["attention_total"] == TENANTS
    assert "tenants" not in status
    assert size < 64 * 1024, size


def test_ctl_status_shows_the_counts_and_points_at_the_rest(crowded: DaemonProcess) -> None:
    text = crowded.ctl("status", check=True).stdout
    assert re.search(rf"^Tenants\s+{TENANTS}: {TENANTS} unlicensed$", text, re.M), text
    assert re.search(r"^tenant-0049\s+unlicensed\s", text, re.M)
    assert not re.search(r"^tenant-0050\s", text, re.M)
    assert f"... and {TENANTS - 50} more that need attention" in text


def test_paging_returns_every_tenant_exactly_once_while_tenants_change(crowded: DaemonProcess) -> None:
    stop = threading.Event()
    added: list[str] = []

    def churn() -> None:
        """New tenants before and after the cursor, and e-mail changes on existing ones."""
        with RawVarlink(crowded.socket) as raw:
            number = 0
            while not stop.is_set() and number < 200:
                for name in (f"tenant-{number:04d}a", f"zz-late-{number:04d}"):
                    reply = raw.call("io.paragon.License.SetTenant", {"tenant": name})
                    assert "error" not in reply, reply
                    added.append(name)
                raw.call(
                    "io.paragon.License.SetTenant",
                    {"tenant": f"tenant-{number * 5 % TENANTS:04d}", "admin_email": f"a{number}@example.com"},
                )
                number += 1

    worker = threading.Thread(target=churn)
    worker.start()
    seen: list[str] = []
    try:
        with RawVarlink(crowded.socket) as raw:
            cursor = None
            while True:
                parameters: dict[str, object] = {"limit": 97}
                if cursor:
                    parameters["cursor"] = cursor
                page = raw.call("io.paragon.License.ListTenants", parameters)["parameters"]
                seen += [t["tenant"] for t in page["tenants"]]
                assert len(page["tenants"]) <= 97
                cursor = page.get("next_cursor")
                if not cursor:
                    break
    finally:
        stop.set()
        worker.join(60)
    assert len(seen) == len(set(seen)), "a tenant came twice"
    assert seen == sorted(seen)
    assert {f"tenant-{i:04d}" for i in range(TENANTS)} <= set(seen)


def test_ctl_tenants_pages_through_all_of_them_and_filters_by_state(
    crowded: DaemonProcess, tmp_path: Path
) -> None:
    everyone = crowded.ctl_json("tenants")
    names = [t["tenant"] for t in everyone]
    assert names == sorted(set(names))
    assert {f"tenant-{i:04d}" for i in range(TENANTS)} <= set(names)
    assert {t["state"] for t in everyone} == {"unlicensed"}

    table = crowded.ctl("tenants", "--state", "unlicensed", check=True).stdout.splitlines()
    assert table[0].split()[:3] == ["TENANT", "STATE", "VALID"]
    assert len([line for line in table[1:] if line.strip()]) == len(names)
    assert crowded.ctl("tenants", "--state", "active", check=True).stdout.strip() == "No tenant matches."

    # Beyond the names other tests here add (tenant-0199a at most): a known page.
    page = crowded.ctl_json("tenants", "--limit", "10", "--cursor", "tenant-0300")
    assert [t["tenant"] for t in page["tenants"]] == [f"tenant-{i:04d}" for i in range(301, 311)]
    assert page["next_cursor"] == page["tenants"][-1]["tenant"]
    assert page["total"] == len(names)
    human = crowded.ctl("tenants", "--limit", "3", check=True).stdout
    assert f"More: --cursor {names[2]} ({len(names)} in all)." in human


@pytest.mark.parametrize("limit", ["0", "10001"])
def test_a_page_size_out_of_range_is_refused_and_named(crowded: DaemonProcess, limit: str) -> None:
    result = crowded.ctl("tenants", "--limit", limit)
    assert result.returncode != 0
    assert "limit" in result.stderr
    assert result.stdout == ""
