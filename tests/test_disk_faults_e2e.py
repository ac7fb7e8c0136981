"""The daemon outlives its disk: a state folder that turns read-only, or fills up, under it.

The real daemon, activated on the real portal. Read-only: a read-only bind mount is
put over the running daemon's state folder (what it already holds open stays open,
every new file fails with EROFS, as after a remount). Full: the state folder is a
small tmpfs that the test fills. Each time the daemon keeps running and answering
with the last verified license, `status` names the problem (and `ctl check` exits 1
with it), and once the fault is removed it recovers by itself: the problem is gone
and the local copies and marker are written again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.faults import ReadOnly, alive, fill, measure, record, tmpfs
from support.portal import PortalProcess
from support.scenarios import TENANT, Installation

pytest_plugins = ["support.portal", "support.scenarios"]
pytestmark = pytest.mark.e2e

Make = Callable[..., Installation]


def served(inst: Installation) -> dict[str, Any]:
    tenant = inst.tenant()
    return {
        "state": tenant["state"],
        "valid_until": tenant["valid_until"],
        "support_id": tenant["support_id"],
    }


def state_problem(inst: Installation) -> str | None:
    problem: str | None = inst.daemon.status()["state_problem"]
    return problem


def marker_generation(inst: Installation) -> int:
    try:
        return int(json.loads((inst.state_dir / "marker.json").read_text())["generation"])
    except (OSError, ValueError, KeyError):
        return -1


def change_something(inst: Installation, email: str) -> None:
    """A change in the store: the node rewrites its marker (and copies) after it."""
    result = inst.daemon.ctl("tenants", "set", TENANT, "--admin-email", email)
    assert result.returncode == 0 or "The license store is unavailable" in result.stderr, result.stderr
    assert "InternalError" not in result.stderr


def test_the_state_folder_turns_read_only_under_the_running_daemon(
    installations: Make, portal: PortalProcess
) -> None:
    inst = installations(portal)
    before = served(inst)
    with ReadOnly(inst.state_dir) as read_only:
        read_only.apply()
        detected = measure(inst.daemon, lambda: state_problem(inst), "status naming the read-only folder")
        record("1", "state_problem named", detected)
        problem = state_problem(inst)
        assert problem is not None
        assert f"the state folder {inst.state_dir} is on a read-only file system" in problem
        change_something(inst, "ro-admin@example.com")
        assert served(inst) == before
        code = inst.daemon.ctl("check")
        assert code.returncode == 1, code.stdout
        assert "read-only file system" in code.stdout
        assert alive(inst.daemon)

        read_only.remove()
        recovered = measure(inst.daemon, lambda: state_problem(inst) is None, "the problem cleared")
        record("1", "recovered", recovered)
    generation = inst.daemon.status()
    inst.daemon.wait_until(
        lambda: marker_generation(inst) >= 0 and not list(inst.state_dir.glob(".*.tmp")),
        what="the marker written again, no temporary file left",
    )
    assert inst.daemon.ctl("check").returncode == 0
    assert served(inst) == before
    assert generation["store_available"] is True
    assert alive(inst.daemon)
    assert "Traceback" not in inst.daemon.log()


def test_the_state_folder_fills_up_under_the_running_daemon(
    installations: Make, portal: PortalProcess, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "small-disk", "16m") as disk:
        inst = installations(portal, config={"paths": {"state_dir": str(disk / "state")}})
        before = served(inst)
        filler = fill(disk)
        detected = measure(inst.daemon, lambda: state_problem(inst), "status naming the full disk")
        record("2", "state_problem named", detected)
        problem = state_problem(inst)
        assert problem is not None
        assert "is full" in problem, problem
        # Writes that need space fail with a named error, never InternalError, and the daemon stays.
        for n in range(3):
            change_something(inst, f"full-{n}@example.com")
        assert served(inst) == before
        code = inst.daemon.ctl("check")
        assert code.returncode == 1, code.stdout
        assert alive(inst.daemon)

        filler.unlink()
        recovered = measure(inst.daemon, lambda: state_problem(inst) is None, "the problem cleared")
        record("2", "recovered", recovered)
        inst.daemon.wait_until(lambda: inst.daemon.status()["store_available"], what="the store available")
        change_something(inst, "after@example.com")
        assert inst.tenant()["admin_email"] == "after@example.com"
        assert inst.daemon.ctl("check").returncode == 0
        assert served(inst) == before
        assert alive(inst.daemon)
        assert "Traceback" not in inst.daemon.log()
        inst.stop()
