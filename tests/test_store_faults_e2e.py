"""A broken store is detected and survived; the node's verified licenses are never lost.

Against the real daemon, activated on the real portal: a store file that is garbage
(or whose header was zeroed) at start, a store corrupted while the daemon runs, and
a store deleted while it runs followed by a restart with the portal down. Each time
the daemon keeps running and keeps answering with the last verified license, names
the file and what to do in `status` (and `ctl check` exits 1 with it), and recovers
once the fault is removed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.faults import alive, measure, record, snapshot_copy
from support.portal import PortalProcess
from support.scenarios import TENANT, Installation, store_files

pytest_plugins = ["support.portal", "support.scenarios"]
pytestmark = pytest.mark.e2e

Make = Callable[..., Installation]


def served(inst: Installation) -> dict[str, Any]:
    """What the node answers about the tenant's license."""
    tenant = inst.tenant()
    info = inst.license()
    return {
        "license_id": info["license_id"],
        "valid_until": tenant["valid_until"],
        "support_id": tenant["support_id"],
    }


def store_down(inst: Installation) -> dict[str, Any] | None:
    status = inst.daemon.status()
    return status if not status["store_available"] else None


def store_up(inst: Installation) -> bool:
    return bool(inst.daemon.status()["store_available"])


def check(inst: Installation) -> tuple[int, str]:
    result = inst.daemon.ctl("check")
    return result.returncode, result.stdout


def local_copy(inst: Installation) -> dict[str, str]:
    data: dict[str, str] = json.loads((inst.state_dir / "licenses.json").read_text())
    return data


@pytest.mark.parametrize("damage", ["garbage", "zeroed-header"])
def test_a_store_that_is_no_database_at_start_is_reported_and_the_local_copy_served(
    installations: Make, portal: PortalProcess, tmp_path: Path, damage: str
) -> None:
    inst = installations(portal)
    before = served(inst)
    inst.daemon.wait_until(lambda: TENANT in local_copy(inst), what="the local copy")
    inst.stop()
    backup = tmp_path / "backup.db"
    snapshot_copy(inst.store, backup)
    for path in store_files(inst.store):
        path.unlink()
    if damage == "garbage":
        inst.store.write_bytes(os.urandom(64 * 1024))
    else:
        data = bytearray(backup.read_bytes())
        data[:100] = bytes(100)
        inst.store.write_bytes(bytes(data))

    started = time.monotonic()
    inst.start()
    status = inst.daemon.wait_until(lambda: store_down(inst), what="the store reported unavailable")
    record(f"3 {damage}", "store_problem named (from the start command)", time.monotonic() - started)
    problem = status["store_problem"]
    assert str(inst.store) in problem, problem
    assert "restore the store from a backup or move the file away" in problem, problem
    assert served(inst) == before
    assert "local copy" in inst.tenant()["reason"]
    code, line = check(inst)
    assert code == 1, line
    assert "store unavailable" in line

    # The operator puts the backup back while the daemon runs: it opens it by itself.
    staged = inst.state_dir / "restore.tmp"
    staged.write_bytes(backup.read_bytes())
    os.replace(staged, inst.store)
    recovered = measure(inst.daemon, lambda: store_up(inst), "the store available again", timeout=90)
    record(f"3 {damage}", "recovered after the backup was put back", recovered)
    assert served(inst) == before
    assert "local copy" not in inst.tenant()["reason"]
    assert check(inst)[0] == 0
    assert alive(inst.daemon)


def corrupt(store: Path) -> None:
    """Overwrite every page but the first with garbage, in place (the daemon keeps it open)."""
    size = store.stat().st_size
    with open(store, "r+b") as file:
        file.seek(4096)
        file.write(os.urandom(max(size - 4096, 4096)))
        file.flush()
        os.fsync(file.fileno())


def test_a_store_corrupted_while_running_is_marked_unavailable_once(
    installations: Make, portal: PortalProcess, tmp_path: Path
) -> None:
    inst = installations(portal)
    before = served(inst)
    inst.stop()
    backup = tmp_path / "backup.db"
    snapshot_copy(inst.store, backup)
    inst.start()
    inst.wait_state("active")
    inst.mark()

    corrupt(inst.store)
    # Reads that miss the daemon's caches now hit damaged pages; a change makes every node re-read.
    inst.daemon.ctl("tenants", "set", TENANT, "--admin-email", "new-admin@example.com")
    detected = measure(inst.daemon, lambda: store_down(inst), "the store reported unavailable")
    record("4", "store_problem named", detected)
    problem = inst.daemon.status()["store_problem"]
    assert f"the store file {inst.store} is damaged" in problem, problem
    assert "integrity check" in problem
    assert served(inst) == before
    code, line = check(inst)
    assert code == 1, line
    assert alive(inst.daemon)
    assert "Traceback" not in inst.log_since()

    # As the problem says: stop the daemon, put the backup back, start it.
    assert inst.daemon.stop() == 0
    for path in store_files(inst.store):
        path.unlink()
    inst.store.write_bytes(backup.read_bytes())
    inst.start()
    recovered = measure(inst.daemon, lambda: store_up(inst), "the store available again")
    record("4", "recovered after a restart with the backup", recovered)
    assert served(inst)["license_id"] == before["license_id"]


def test_a_store_deleted_while_running_keeps_the_license_through_a_restart_without_the_portal(
    installations: Make, portal: PortalProcess
) -> None:
    inst = installations(portal)
    before = served(inst)
    inst.daemon.wait_until(lambda: TENANT in local_copy(inst), what="the local copy")
    copy_before = local_copy(inst)

    for path in store_files(inst.store):
        path.unlink()
    detected = measure(inst.daemon, lambda: store_down(inst), "the deletion reported")
    record("5", "store_problem named (deleted while running)", detected)
    problem = inst.daemon.status()["store_problem"]
    assert f"the store file {inst.store} was deleted" in problem, problem
    assert served(inst) == before
    assert not inst.store.exists(), "the daemon must not start a new store behind the operator's back"
    assert alive(inst.daemon)

    # Restarted with the portal unreachable: a new, empty store; the license comes from the copy.
    portal.stop()
    assert inst.daemon.stop() == 0
    inst.log_mark = len(inst.daemon.log())
    started = time.monotonic()
    inst.daemon.start()
    inst.daemon.wait_until(lambda: store_up(inst), what="the new store open")
    tenant = inst.daemon.wait_until(
        lambda: (t := inst.tenant())["support_id"] == before["support_id"] and t, what="the license served"
    )
    record("5", "license served from the local copy (from the restart command)", time.monotonic() - started)
    assert "local copy" in tenant["reason"], tenant
    assert tenant["state"] in ("active", "needs_reactivation"), tenant
    assert served(inst) == before
    inst.wait_log("reactivation failed")  # the portal is down: the copy stays what is served
    assert local_copy(inst) == copy_before, "the local copy must never be replaced by less"
    code, line = check(inst)
    assert code in (0, 1), line

    # The portal is back: the reactivation reissues the license into the new store.
    portal.start()
    started = time.monotonic()
    inst.daemon.ctl("license", "reactivate", check=True)
    inst.wait_state("active")
    record("5", "recovered: reissued by the portal (from the reactivate command)", time.monotonic() - started)
    after = served(inst)
    assert after["license_id"] != before["license_id"]
    assert "local copy" not in inst.tenant()["reason"]
    inst.daemon.wait_until(
        lambda: local_copy(inst).get(TENANT) != copy_before[TENANT], what="the copy of the reissued license"
    )
    assert alive(inst.daemon)
