"""Prometheus metrics: the work counters, the facts read from the store, and the HTTP server.

The server is prometheus_client's own (a WSGI server in threads of its own), so
a scrape never runs on the event loop: the collector (`metrics_collector`) reads
the in-memory view, which the event loop replaces rather than edits while it is
read, and the figures that live in the store are read by the event loop every
FACTS_EVERY seconds, not per scrape. A slow or hostile scraper thus costs the
event loop nothing but its share of the GIL.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from paragon_licensed.daemon import log
from paragon_licensed.daemon.config import parse_listen
from paragon_licensed.daemon.store import monitoring
from paragon_licensed.daemon.store.db import StoreUnavailableError

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon

SWITCH_INTERVAL = 0.0005  # seconds (bench/metrics_scrape.py)
FACTS_EVERY = 10.0  # seconds between reads of the store's figures (a scrape every 15 s is usual)
# A portal answer takes from milliseconds (a local portal) to the whole portal.timeout.
PORTAL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class MetricsListenError(Exception):
    """metrics.listen names an address this node cannot listen on."""

    exit_code = 1

    def __init__(self, listen: str, reason: str) -> None:
        super().__init__(
            f"cannot serve metrics on {listen} (metrics.listen): {reason}; set metrics.listen to a "
            "free port on an address of this node (or leave it empty to turn metrics off) and restart"
        )


def operation_cause(cause: str) -> str:
    """A bounded label: "upgrade:BUILD" becomes "upgrade" (a build per series would never end)."""
    return cause.split(":", 1)[0]


class Metrics:
    """The daemon's registry: counters and histograms for work done, a collector for state."""

    def __init__(self, app: Daemon) -> None:
        from paragon_licensed.daemon.metrics_collector import StateCollector

        self.app = app
        self.registry = CollectorRegistry()  # the state collector runs only when scraped
        self.reactivations = Counter(
            "paragon_reactivations",
            "Online reactivations this node ran as coordinator, by cause (reactivation, upgrade, "
            "restore) and outcome (success, or the error's name, e.g. PortalUnreachable).",
            ["cause", "outcome"],
            registry=self.registry,
        )
        self.operations = Counter(
            "paragon_license_operations",
            "Online activations and transfers this node ran as coordinator, by outcome.",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.portal_seconds = Histogram(
            "paragon_portal_request_duration_seconds",
            "Duration of one attempt to reach the License Portal, by result (answered, failed).",
            ["result"],
            buckets=PORTAL_BUCKETS,
            registry=self.registry,
        )
        self.facts = monitoring.Facts()
        self.facts_ok = False  # whether the last read of the store's figures succeeded
        self.registry.register(StateCollector(app, self))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- what the daemon's code reports

    def operation(self, cause: str, outcome: str) -> None:
        """One online operation's end (Licensing): its cause as Licensing names it, and its outcome."""
        if cause in ("activation", "transfer"):
            self.operations.labels(cause, outcome).inc()
        else:
            self.reactivations.labels(operation_cause(cause), outcome).inc()

    def portal_attempt(self, seconds: float, answered: bool) -> None:
        self.portal_seconds.labels("answered" if answered else "failed").observe(seconds)

    # -- the server

    def bind(self) -> tuple[str, int]:
        """Listen on metrics.listen (before READY=1, like the control socket); the bound address."""
        listen = self.app.config.metrics.listen
        host, port = parse_listen(listen)
        try:
            server, thread = start_http_server(port, host, registry=self.registry)
        except (OSError, socket.gaierror) as exc:
            raise MetricsListenError(listen, exc.strerror or str(exc)) from None
        self._server, self._thread = server, thread
        # A scrape of many tenants is seconds of Python in the server's thread. The event loop,
        # waking for a control call, waits for the GIL up to the switch interval at each of its
        # system calls (5 ms by default, so 10-20 ms a call); a shorter interval bounds that wait
        # at the price of more switches while two threads compute, which is rare here.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    async def serve(self) -> None:
        """Keep the store's figures fresh while the server answers; stop the server when cancelled."""
        try:
            while True:
                await self.read_facts()
                await anyio.sleep(FACTS_EVERY)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.close)

    async def read_facts(self) -> None:
        if not self.app.store_opened:
            return
        try:
            self.facts = await self.app.db.read(monitoring.read_facts)
            self.facts_ok = True
        except StoreUnavailableError as exc:
            self.facts_ok = False  # the old figures stay, marked stale by paragon_store_available
            log.debug("metrics: store figures not read", reason=exc)

    def close(self) -> None:
        server = self._server
        if server is not None:
            self._server = None
            server.shutdown()
            with contextlib.suppress(OSError):
                server.server_close()
