"""The state metrics, built at scrape time from the daemon's in-memory view.

Runs in the metrics server's thread. It takes one copy of the tenant views
(`list(dict.values())` is a single step under the GIL, so the event loop's
updates cannot tear it) and reads nothing else that the event loop edits in
place. Per-tenant series follow `metrics.tenant_series`; the count of tenants
per state is always there, so 100,000 tenants need not mean 800,000 series.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from paragon_licensed.daemon import clock
from paragon_licensed.daemon.states import TenantView
from paragon_licensed.daemon.tenant_index import ATTENTION
from paragon_licensed.interface import wire

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon
    from paragon_licensed.daemon.metrics import Metrics

STATES: tuple[str, ...] = typing.get_args(wire.State)
CHECK_RESULTS = ("reactivated", "failed", "skipped", "pending")


def needs_attention(view: TenantView, now: float, within: float) -> bool:
    """Any state but active, a grace period, or a license ending within `within` seconds."""
    if view.state != "active" or view.grace_until is not None:
        return True
    valid_until = view.valid_until
    return valid_until is not None and valid_until - now <= within


def tenant_families(views: Iterable[TenantView]) -> list[Metric]:
    valid = GaugeMetricFamily(
        "paragon_license_valid_until_seconds",
        "When the tenant's license ends (Unix time).",
        labels=["tenant"],
    )
    state = GaugeMetricFamily(
        "paragon_license_state",
        "The tenant's license state: 1 for the current state, 0 for the others.",
        labels=["tenant", "state"],
    )
    grace = GaugeMetricFamily(
        "paragon_license_grace_until_seconds",
        "When the grace period of a tenant waiting for its reactivation ends (Unix time).",
        labels=["tenant"],
    )
    for view in views:
        tenant = view.tenant
        valid_until = view.valid_until
        if valid_until is not None:
            valid.add_metric([tenant], valid_until)
        for name in STATES:
            state.add_metric([tenant, name], 1.0 if view.state == name else 0.0)
        if view.grace_until is not None:
            grace.add_metric([tenant], view.grace_until)
    return [valid, state, grace]


class StateCollector(Collector):
    def __init__(self, app: Daemon, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        app = self.app
        config = app.config.metrics
        index, views = app.view.index, app.view.tenants
        counts = index.counts()  # kept up to date by the view: no pass over every tenant
        tenants = GaugeMetricFamily("paragon_tenants", "Tenants in each license state.", labels=["state"])
        for name in STATES:
            tenants.add_metric([name], counts.get(name, 0))
        yield tenants
        if config.tenant_series == "attention":
            now, within = clock.now(), config.attention_within
            names = index.expiring_before(now + within) + [
                name for state in ATTENTION for name in list(index.by_state[state])
            ]
            attention = [views[name] for name in sorted(set(names)) if name in views]
            yield from tenant_families(v for v in attention if needs_attention(v, now, within))
        elif config.tenant_series == "all":
            yield from tenant_families(list(views.values()))
        yield from self._cluster()
        yield from self._store_facts()
        info = InfoMetricFamily("paragon_build", "The daemon's version and the product build.")
        info.add_metric([], {"version": app.version, "build": app.build.value or ""})
        yield info

    def _cluster(self) -> Iterator[Metric]:
        app = self.app
        nodes = app.view.node_list()
        online = sum(1 for n in nodes if n.online)
        by_state = GaugeMetricFamily("paragon_cluster_nodes", "Registered nodes by state.", labels=["state"])
        by_state.add_metric(["online"], online)
        by_state.add_metric(["offline"], len(nodes) - online)
        yield by_state
        node_online = GaugeMetricFamily(
            "paragon_cluster_node_online",
            "1 while the node sends heartbeats, 0 once it has been silent for cluster.node_timeout.",
            labels=["node"],
        )
        seen = GaugeMetricFamily(
            "paragon_cluster_node_seen_age_seconds",
            "Seconds since the node's last heartbeat.",
            labels=["node"],
        )
        for n in nodes:
            node_online.add_metric([n.name], 1.0 if n.online else 0.0)
            seen.add_metric([n.name], n.seconds_since_seen)
        yield node_online
        yield seen
        yield _gauge(
            "paragon_cluster_node_timeout_seconds",
            "cluster.node_timeout: a node silent this long is offline.",
            app.config.cluster.node_timeout,
        )
        yield _gauge(
            "paragon_cluster_is_coordinator", "1 while this node holds the lease.", float(app.is_coordinator)
        )
        yield _gauge(
            "paragon_cluster_coordinator_present",
            "1 while this node knows of a lease holder whose lease has not run out.",
            float(app.view.coordinator() is not None),
        )
        lease = app.view.snapshot.lease
        yield _gauge("paragon_cluster_lease_term", "The current lease's term.", lease.term if lease else 0)
        yield _gauge(
            "paragon_store_available", "1 while the store answers this node.", float(not app.store_problem)
        )
        problems = GaugeMetricFamily(
            "paragon_node_problem",
            "1 while this node has the problem (`paragon-licensed ctl status` says what to do).",
            labels=["problem"],
        )
        problems.add_metric(["clock"], float(app.clock.problem is not None))
        problems.add_metric(["state_folder"], float(app.local.problem is not None))
        problems.add_metric(["build"], float(app.build.problem is not None))
        yield problems

    def _store_facts(self) -> Iterator[Metric]:
        facts = self.metrics.facts
        yield _gauge(
            "paragon_tenant_check_interval_seconds",
            "tenant_check.interval: how often the coordinator runs the tenant check.",
            self.app.config.tenant_check.interval,
        )
        last = facts.last_check
        if last is not None:
            yield _gauge(
                "paragon_tenant_check_last_run_timestamp_seconds",
                "When the last finished tenant check ended (Unix time).",
                last.finished_at,
            )
            yield _gauge(
                "paragon_tenant_check_last_run_duration_seconds",
                "How long the last finished tenant check took.",
                max(last.finished_at - last.started_at, 0.0),
            )
            results = GaugeMetricFamily(
                "paragon_tenant_check_last_run_tenants",
                "Tenants of the last finished tenant check, by result.",
                labels=["result"],
            )
            for name in CHECK_RESULTS:
                results.add_metric([name], last.results.get(name, 0))
            yield results
        outbox = GaugeMetricFamily(
            "paragon_mail_outbox",
            "E-mails not sent yet (pending), and those of them whose delivery failed at least once (failed).",
            labels=["state"],
        )
        outbox.add_metric(["pending"], facts.mail_pending)
        outbox.add_metric(["failed"], facts.mail_failed)
        yield outbox


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
