"""End to end: SIGKILL the daemon at random moments during reactivations; nothing is lost or repeated.

Fifty online reactivations through `ctl license reactivate`; about every other
one, the daemon is killed 0-150 ms after the call starts and started again.
After every restart the stored license (read with the store API) must verify
with the portal's public key and the daemon must report it; at the end, the
portal must have processed no request ID twice. The seed is printed, and
CRASH_SEED=N repeats a run.
"""

from __future__ import annotations

import collections
import os
import random
import subprocess
import time

import pytest
from support.daemon import DAEMON, DaemonProcess
from support.licenses import (
    TENANT,
    DaemonFactory,
    Store,
    computer_id,
    public_keys,
    start_and_settle,
    utc_now,
)
from support.portal import PortalProcess

from paragon_licensed import licensefile as lf

pytest_plugins = ["support.portal", "support.licenses"]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROUNDS = 50
LICENSED = ("active", "expiring")


def check_stored_license(node: DaemonProcess, portal: PortalProcess, integrity_key: str) -> str:
    """The stored license verifies, every stored license is the portal's, and ctl reports it."""
    keys = public_keys(portal)
    issued = {record.license_id for record in portal.licenses(TENANT)}
    with Store(node) as store:
        row = store.tenant()
        assert row is not None
        assert row.license is not None, "the tenant lost its license"
        payload = lf.verify(
            row.license.document, keys, tenant_id=TENANT, integrity_key=integrity_key, now=utc_now()
        )
        assert payload.license_id == row.license.license_id
        for old in store.history():
            assert lf.inspect(old.document, keys).license_id == old.license_id
            assert old.license_id in issued
    info = node.ctl("license", "info", "--json")
    assert info.returncode == 0, info.stderr
    return payload.license_id


@pytest.mark.timeout(300)
def test_sigkill_during_reactivations_keeps_a_valid_license_and_counts_each_request_once(
    portal: PortalProcess, daemon_factory: DaemonFactory
) -> None:
    seed = int(os.environ.get("CRASH_SEED", str(time.time_ns() % 1_000_000_007)))
    print(f"crash test seed: CRASH_SEED={seed}")
    rng = random.Random(seed)

    portal.add_order("KEY-CRASH", TENANT, product="Paragon Print")
    node = daemon_factory(portal)
    node.ctl("license", "activate", "--key", "KEY-CRASH", check=True)
    integrity_key = lf.integrity_key(TENANT, [computer_id(node)])

    kills = 0
    for round_ in range(ROUNDS):
        kill = rng.random() < 0.5
        delay = rng.uniform(0.0, 0.150)
        call = subprocess.Popen(
            [DAEMON, "ctl", "--socket", node.socket, "license", "reactivate"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if kill:
            time.sleep(delay)
            node.kill()
            kills += 1
        out, err = call.communicate(timeout=120)
        what = f"round {round_} (seed {seed}, kill={kill}, delay={delay:.3f}s)"
        assert "Traceback" not in err, f"{what}: {err}"
        if kill:
            # Finished before the kill, or cut off by it (the daemon went away).
            assert call.returncode in (0, 69), f"{what}: exit {call.returncode}\n{out}\n{err}"
            start_and_settle(node)
        else:
            assert call.returncode == 0, f"{what}: exit {call.returncode}\n{out}\n{err}"
        check_stored_license(node, portal, integrity_key)
        state = node.tenant_state()["state"]
        assert state in LICENSED, f"{what}: state {state}: {node.tenant_state()['reason']}"

    print(f"{ROUNDS} reactivations, {kills} daemon kills")
    # One more, undisturbed: the daemon is fully working after all that.
    node.ctl("license", "reactivate", check=True)
    check_stored_license(node, portal, integrity_key)

    processed = [
        record
        for record in portal.requests(status=200, injected=False, replay=False)
        # activations and reactivations; the current-license checks have no ID
        if record.method == "POST" and record.path != "/api/v1/licenses/current/query"
    ]
    counts = collections.Counter(record.request_id for record in processed)
    repeated = {request_id: n for request_id, n in counts.items() if n > 1}
    assert not repeated, f"request IDs processed more than once (seed {seed}): {repeated}"
    assert all(record.request_id for record in processed)
    restores = [n for n in node.ctl_json("notifications") if "estore" in n["title"]]
    assert not restores, f"a crash is not a restore (seed {seed}): {restores}"
