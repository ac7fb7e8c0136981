"""End to end: what the daemon finds at start-up (upgrade, restore, nothing, a cloned VM) and what it does.

Real processes only: the installed daemon with its build in a build file, the
reference portal whose request log tells exactly which calls the daemon made
after each restart, and the daemon's own SQLite store and state folder, copied
aside and put back as a backup and restore would.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.daemon import DaemonProcess, write_identity
from support.portal import PortalProcess
from support.scenarios import (
    NEW_BUILD,
    QUERY,
    REACTIVATIONS,
    TENANT,
    Installation,
    portal_config,
)

pytest_plugins = ["support.portal", "support.scenarios"]
pytestmark = pytest.mark.e2e

Make = Callable[..., Installation]


def order_ids(lic: dict[str, Any]) -> list[str]:
    return sorted(o["order_id"] for o in lic["orders"])


def titled(notes: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
    return [n for n in notes if n["title"] == title]


def test_upgrade_reissues_the_license_for_the_new_build_with_every_order(
    portal: PortalProcess, installations: Make
) -> None:
    inst = installations(portal, orders=2)
    before = inst.license()
    inst.stop()
    inst.set_build(NEW_BUILD)
    inst.start()

    inst.daemon.wait_until(
        lambda: inst.license()["build"] == NEW_BUILD, 30, what=f"license for build {NEW_BUILD}"
    )
    inst.wait_state("active")
    inst.wait_settled()
    after = inst.license()
    assert after["license_id"] != before["license_id"]

    # The portal saw exactly one reactivation since the restart, and otherwise only the current-license check.
    calls = inst.requests_since()
    reactivations = [r for r in calls if r.path == REACTIVATIONS]
    assert len(reactivations) == 1, [(r.method, r.path, r.status) for r in calls]
    assert reactivations[0].status == 200
    assert reactivations[0].license_id == after["license_id"]
    assert {(r.method, r.path) for r in calls} <= {("POST", REACTIVATIONS), ("POST", QUERY)}

    assert order_ids(after) == sorted(inst.orders), "every order used before is kept"
    assert after["integrity_key"] == before["integrity_key"]
    assert after["computer_ids"] == before["computer_ids"]
    assert after["supersedes"] == before["license_id"]

    # Exactly one notification, and it says what happened.
    new = inst.new_notifications()
    assert len(new) == 1, new
    note = new[0]
    assert note["severity"] == "info"
    assert note["tenant"] == TENANT
    assert note["title"] == "License reactivated after upgrade"
    assert f"Reactivated after upgrade to {NEW_BUILD}" in note["text"]
    assert "2 order(s)" in note["text"]

    # The work ran in the background after READY=1, and STATUS= said so.
    assert inst.daemon.notify is not None
    statuses = [line for line in inst.daemon.notify.lines() if line.startswith("STATUS=")]
    assert any(f"upgrade to {NEW_BUILD}" in s for s in statuses), statuses


def test_restore_of_the_store_file_is_detected_and_reactivated_with_the_newer_orders(
    portal: PortalProcess, installations: Make, tmp_path: Path
) -> None:
    inst = installations(portal, orders=1)
    inst.stop()
    backup = tmp_path / "store-backup"
    assert "store.db" in inst.back_up_store(backup)

    inst.start()
    inst.wait_state("active")
    added = portal.add_order(inst.key, TENANT, product="Paragon Scan")
    inst.daemon.ctl("license", "reactivate", check=True)
    newer = inst.license()
    assert added in order_ids(newer)
    inst.stop()

    inst.put_back_store(backup)
    inst.start()
    restored = inst.daemon.wait_until(
        lambda: (
            (lic := inst.license())["license_id"] not in (newer["license_id"],)
            and added in order_ids(lic)
            and lic
        ),
        30,
        what="a license issued after the restore",
    )
    inst.wait_state("active")
    inst.wait_settled()
    assert order_ids(restored) == sorted([*inst.orders, added]), "the order added after the backup"

    notes = inst.notifications()
    detected = titled(notes, "Restore detected")
    assert len(detected) == 1, notes
    assert detected[0]["severity"] == "warning"
    reactivated = titled(notes, "License reactivated after restore")
    assert len(reactivated) == 1, notes
    assert "Reactivated after restore" in reactivated[0]["text"]
    assert "2 order(s)" in reactivated[0]["text"]

    posts = inst.posts_since()
    assert [(r.path, r.status) for r in posts] == [(REACTIVATIONS, 200)]
    assert posts[0].license_id == restored["license_id"]


def test_restore_of_the_whole_state_directory_is_detected_through_the_portal(
    portal: PortalProcess, installations: Make, tmp_path: Path
) -> None:
    inst = installations(portal, orders=2)
    inst.stop()
    backup = tmp_path / "state-backup"
    shutil.copytree(inst.state_dir, backup)

    inst.start()
    inst.wait_state("active")
    inst.daemon.ctl("license", "reactivate", check=True)
    newer = inst.license()
    inst.stop()

    # The store and the marker go back together: only the portal can tell.
    shutil.rmtree(inst.state_dir)
    shutil.copytree(backup, inst.state_dir)
    inst.start()
    inst.daemon.wait_until(
        lambda: titled(inst.notifications(), "License reactivated after restore"),
        30,
        what="reactivation after restore",
    )
    inst.wait_state("active")
    inst.wait_settled()

    asked = inst.requests_since(path=QUERY)
    assert asked, "the daemon asked the portal for the current license"
    assert (asked[0].status, asked[0].asked) == (200, 1)
    first_post = inst.posts_since()[0]
    assert asked[0].id < first_post.id, "detected through the current-license query before reactivating"

    notes = inst.notifications()
    detected = titled(notes, "Restore detected")
    assert len(detected) == 1, notes
    assert "License Portal issued a newer license" in detected[0]["text"]
    assert len(titled(notes, "License reactivated after restore")) == 1, notes

    posts = inst.posts_since()
    assert [(r.path, r.status) for r in posts] == [(REACTIVATIONS, 200)]
    lic = inst.license()
    assert lic["license_id"] == posts[0].license_id
    assert lic["license_id"] != newer["license_id"]
    assert order_ids(lic) == sorted(inst.orders)


def test_restart_with_nothing_changed_only_asks_for_the_current_license(
    portal: PortalProcess, installations: Make
) -> None:
    inst = installations(portal, orders=2)
    before = inst.license()
    inst.restart()
    inst.wait_settled()
    inst.wait_state("active")

    calls = inst.requests_since()
    assert calls, "the portal check ran"
    assert {(r.method, r.path) for r in calls} == {("POST", QUERY)}, [(r.method, r.path) for r in calls]
    assert inst.license()["license_id"] == before["license_id"]
    assert inst.new_notifications() == []
    assert "restore detected" not in inst.log_since()


@pytest.mark.timeout(150)
def test_cloned_vm_flags_both_nodes_and_refuses_reactivation(portal: PortalProcess, tmp_path: Path) -> None:
    # Two daemons on one SQLite store, with identical identity files: a cloned VM.
    shared = tmp_path / "shared"
    store = shared / "store.db"
    identity = write_identity(shared / "identity")
    settings = {"store": {"url": f"sqlite://{store}"}, "identity": identity}
    first = DaemonProcess(tmp_path / "a", "mgmt-a", {**portal_config(portal), **settings})
    clone = DaemonProcess(tmp_path / "b", "mgmt-b", {**portal_config(portal), **settings})
    try:
        first.start()
        key = "KEY-CLONE-1"
        portal.add_order(key, TENANT)
        first.wait_until(lambda: "tenant check finished" in first.log(), 30, what="first tenant check")
        first.ctl("license", "activate", "--key", key, check=True)
        assert first.tenant_state()["state"] == "active"

        clone.start()

        def flagged(daemon: DaemonProcess) -> list[dict[str, Any]] | None:
            nodes: list[dict[str, Any]] = daemon.ctl_json("nodes")
            problems = [n for n in nodes if n.get("problem") and "DuplicateComputerId" in n["problem"]]
            return nodes if len(nodes) == 2 and len(problems) == 2 else None

        for daemon in (first, clone):
            nodes = daemon.wait_until(lambda d=daemon: flagged(d), 30, what="both nodes flagged")
            assert {n["name"] for n in nodes} == {"mgmt-a", "mgmt-b"}
            by_name = {n["name"]: n for n in nodes}
            assert "mgmt-b" in by_name["mgmt-a"]["problem"]
            assert "mgmt-a" in by_name["mgmt-b"]["problem"]

        for daemon in (first, clone):
            result = daemon.ctl("license", "reactivate")
            assert result.returncode == 1, (result.stdout, result.stderr)
            assert "same computer ID" in result.stderr
            assert "mgmt-a" in result.stderr
            assert "mgmt-b" in result.stderr
            assert "Traceback" not in result.stderr
    finally:
        for daemon in (clone, first):
            daemon.kill()
