"""End to end: the coordinator dies in the middle of a tenant check; the other node finishes the run.

Two daemons share one SQLite store. 96 tenants are due (licenses issued by
the portal for both nodes' computer IDs, valid one day) and two more are
refused by the portal. The run is either the coordinator's scheduled one or a
`ctl tenants check` started on the follower (a job the coordinator runs). The
portal answers the first reactivations, then holds every further answer
(`--hold-after`): once a held request is processed the coordinator is known to be
mid-call, and is SIGKILLed; the follower takes the lease and finishes. The
portal's request log then shows how often each tenant was really reactivated,
and the SMTP server which digests arrived.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.daemon import DAEMON, DaemonProcess
from support.portal import PortalProcess
from support.smtp import SmtpServer
from support.tenant_check import (
    check_config,
    computer_id,
    in_days,
    install_many,
    payload_of,
    portal_activate,
    processed,
    read,
    unknown_license,
    wait_for,
)

from paragon_licensed.daemon.store.db import Tx

pytest_plugins = ["support.portal", "support.smtp", "support.tenant_check"]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TENANTS = 96
HOLD_AFTER = TENANTS // 5  # the portal answers this many reactivations, then holds the rest
REACTIVATIONS = "/api/v1/reactivations"
REFUSERS = {"refuser-1": "r1-admin@example.com", "refuser-2": "r2-admin@example.com"}


def states(daemon: DaemonProcess) -> dict[str, str]:
    return {t["tenant"]: t["state"] for t in daemon.tenants()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("trigger", ["scheduled", "ctl"])
def test_failover_in_the_middle_of_a_run(
    trigger: str,
    tmp_path: Path,
    portal_factory: Callable[..., PortalProcess],
    smtp: SmtpServer,
    daemons: Callable[..., DaemonProcess],
) -> None:
    portal = portal_factory(serve_args=["--license-days", "1"])  # set-up: no latency, 1-day licenses
    pairs = portal.db.seed_tenants(TENANTS, valid_until=(datetime.now(UTC) + timedelta(days=365)).date())
    extra = {
        "store": {"url": f"sqlite://{tmp_path / 'shared' / 'store.db'}"},
        # The killed coordinator still counts as online while the other takes over (lease 3 s):
        # a reactivation needs every registered node online.
        "cluster": {"node_timeout": "30s"},
    }
    node_a = daemons("node-a", check_config(portal, smtp, extra=extra))
    node_b = daemons("node-b", check_config(portal, smtp, extra=extra))
    node_a.start()
    node_b.start()
    ids = [computer_id(node_a), computer_id(node_b)]
    node_b.wait_until(lambda: len(node_b.status()["nodes"]) == 2, what="both nodes registered")
    node_b.stop()
    node_a.stop()

    documents = [portal_activate(portal, tenant, key, ids) for tenant, key in pairs]
    licenses = [(doc, payload_of(portal, doc)) for doc in documents]
    licenses += [unknown_license(portal, tenant, ids, in_days(1)) for tenant in REFUSERS]  # refused
    install_many(node_a, licenses, REFUSERS)
    tenants = [tenant for tenant, _ in pairs]
    portal.restart(["--hold-after", str(HOLD_AFTER)])  # 30-day licenses from now on

    if trigger == "scheduled":  # the first run starts as soon as a node becomes the coordinator
        for node in (node_a, node_b):
            node.update_config({"tenant_check": {"splay": "0s"}})
    node_a.start()
    node_a.wait_until(lambda: node_a.status()["is_coordinator"], what="node-a coordinating")
    node_b.start()
    if trigger == "ctl":
        before = states(node_b)
        assert {before[t] for t in tenants} == {"expiring"}
        assert {before[t] for t in REFUSERS} == {"expiring"}
    check = None
    ctl_results: list[dict[str, str]] = []
    if trigger == "ctl":  # a job: the coordinator runs it, this ctl follows it through node-b
        check = subprocess.Popen(
            [DAEMON, "ctl", "--socket", node_b.socket, "tenants", "check", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        # A request processed beyond HOLD_AFTER is one whose answer the portal holds: the
        # coordinator is waiting for it. Killed now, it never installs those licenses, and
        # the take-over must re-send them. The portal lets go before the follower asks.
        wait_for(lambda: len(processed(portal)) > HOLD_AFTER, timeout=60, what="a held reactivation")
        node_a.kill()
        portal.release()
        assert len(processed(portal)) < TENANTS, "the run ended before the coordinator was killed"
        node_b.wait_until(lambda: node_b.status()["is_coordinator"], timeout=30, what="node-b taking over")
        node_a.start()  # back as a follower: the cluster is whole again
        if check is not None:
            out, err = check.communicate(timeout=180)
            assert check.returncode in (0, 1), out + err
            ctl_results = json.loads(out)["results"]  # the result, from the node that took over
    finally:
        if check is not None and check.poll() is None:
            check.kill()
            check.communicate()

    node_b.wait_until(
        lambda: all(states(node_b)[t] == "active" for t in tenants), timeout=60, what="every tenant active"
    )

    def unfinished(tx: Tx) -> int:
        return int(tx.scalar("SELECT count(*) FROM check_runs WHERE finished_at IS NULL"))

    wait_for(lambda: read(node_b, unfinished) == 0, what="every run finished")

    def first_run(tx: Tx) -> Counter[str]:
        run = tx.scalar("SELECT id FROM check_runs ORDER BY started_at LIMIT 1")
        return Counter(str(r[0]) for r in tx.all("SELECT state FROM check_items WHERE run_id = ?", (run,)))

    # The run the dead coordinator started was finished by the other: every item settled.
    assert read(node_b, first_run) == Counter({"reactivated": TENANTS, "failed": len(REFUSERS)})

    # No tenant was reactivated twice: one processed request each; a re-sent request_id replays.
    requests = portal.requests(path=REACTIVATIONS)
    done = Counter(r.tenant_id for r in requests if r.status == 200 and not r.replay and not r.injected)
    twice = {t: n for t, n in done.items() if n > 1}
    assert twice == {}, f"reactivated more than once: {twice}"
    assert set(done) == set(tenants)
    first_ids = {r.request_id for r in requests if not r.replay}
    replays = [r for r in requests if r.replay]
    assert all(r.request_id in first_ids for r in replays)
    assert replays, "no request was re-sent after the take-over"

    # Each refused tenant's digest arrived exactly once.
    def unsent(tx: Tx) -> int:
        return int(tx.scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))

    smtp.wait_for(lambda m: len({x.recipients for x in m}) >= len(REFUSERS), timeout=30, what="digests")
    wait_for(lambda: read(node_b, unsent) == 0, what="the outbox sent")
    mails = Counter(m.recipients for m in smtp.messages())
    assert mails == Counter({(address,): 1 for address in REFUSERS.values()})

    # ctl reports what the run it started did: every tenant reactivated (not "skipped").
    if trigger == "ctl":
        reported = Counter(r["outcome"] for r in ctl_results if r["tenant"] in tenants)
        assert reported == Counter({"reactivated": TENANTS}), (
            f"ctl reported {dict(reported)} for {TENANTS} tenants its run reactivated"
        )
