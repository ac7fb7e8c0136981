"""A clock set back is detected; moving the clock never improves a license's state.

The real daemon, activated on the real portal, with its clock moved through the one
seam it reads time from (PARAGON_LICENSED_TEST_CLOCK_OFFSET_FILE: seconds added to
the system clock, re-read every heartbeat), so the machine's own clock is never
touched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.faults import alive, measure, record
from support.portal import PortalProcess
from support.scenarios import Installation

pytest_plugins = ["support.portal", "support.scenarios"]
pytestmark = pytest.mark.e2e

Make = Callable[..., Installation]
DAY = 86400


@pytest.fixture
def offset_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "clock-offset"
    path.write_text("0\n")
    monkeypatch.setenv("PARAGON_LICENSED_TEST_CLOCK_OFFSET_FILE", str(path))
    return path


def clock_problem(inst: Installation) -> str | None:
    problem: str | None = inst.daemon.status()["clock_problem"]
    return problem


def test_a_clock_set_back_is_named_and_judged_against_the_latest_time_seen(
    installations: Make, portal: PortalProcess, offset_file: Path
) -> None:
    inst = installations(portal)
    before = inst.tenant()

    offset_file.write_text(str(-30 * DAY))
    detected = measure(inst.daemon, lambda: clock_problem(inst), "status naming the clock")
    record("6", "clock_problem named (set back 30 days)", detected)
    problem = clock_problem(inst)
    assert problem is not None
    assert problem.startswith("the system clock is 30.0 days behind the latest time seen"), problem
    # Judged against the latest time seen: the same days left, not 30 more, and not "issued in the future".
    tenant = inst.tenant()
    assert tenant["state"] == "active", tenant
    assert tenant["days_left"] == before["days_left"]
    result = inst.daemon.ctl("check")
    assert result.returncode == 1, result.stdout
    assert "system clock" in result.stdout

    offset_file.write_text("0\n")
    recovered = measure(inst.daemon, lambda: clock_problem(inst) is None, "the clock problem cleared")
    record("6", "recovered (clock set right)", recovered)
    assert inst.daemon.ctl("check").returncode == 0
    assert alive(inst.daemon)


def test_moving_the_clock_forward_then_back_never_revives_an_expired_license(
    installations: Make, portal: PortalProcess, offset_file: Path
) -> None:
    inst = installations(portal)
    assert inst.tenant()["state"] == "active"

    # Forward past the license's end: expired, as it would be on that day.
    offset_file.write_text(str(400 * DAY))
    inst.wait_state("expired")

    # Back to today: the clock is 400 days behind the latest time seen; the license stays expired.
    offset_file.write_text("0\n")
    inst.daemon.wait_until(lambda: clock_problem(inst), what="status naming the clock")
    problem = clock_problem(inst)
    assert problem is not None
    assert "400.0 days behind" in problem, problem
    assert inst.tenant()["state"] == "expired"
    result = inst.daemon.ctl("check")
    assert result.returncode == 2, result.stdout
    assert "system clock" in result.stdout

    # A restart remembers the latest time seen (state_dir and store): still expired.
    inst.restart()
    assert inst.tenant()["state"] == "expired"
    assert "400.0 days behind" in (clock_problem(inst) or "")
    assert (inst.state_dir / "clock.json").exists()
    assert alive(inst.daemon)
