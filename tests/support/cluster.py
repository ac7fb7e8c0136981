"""Several real daemons sharing one store (PostgreSQL or a SQLite file), and a portal they talk to.

``Cluster`` makes nodes (``DaemonProcess`` with ``[store] url``), answers what the tests
ask about the cluster through ``ctl`` (who is the coordinator, which nodes are online),
and reads the shared store directly with the daemon's own store functions (the lease
term, jobs, audit rows), as an operator with ``psql`` or ``sqlite3`` would. ``Watcher``
follows ``ctl watch --json``. Every process is stopped by ``close()``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from paragon_licensed.daemon.store import nodes as node_q
from paragon_licensed.daemon.store.db import Database, Tx
from paragon_licensed.daemon.store.postgres import PostgresBackend
from paragon_licensed.daemon.store.sqlite import SqliteBackend
from support.daemon import DAEMON, DaemonProcess, deep_merge
from support.portal import PortalProcess

T = TypeVar("T")
ACTIVATION_KEY = "CLUSTER-KEY-0001"
TENANT = "default"


def open_store(url: str) -> Database:
    """The store a daemon configured with ``url`` uses, opened by the test process."""
    if url.startswith("sqlite://"):
        return Database(SqliteBackend(url.removeprefix("sqlite://")))
    return Database(PostgresBackend(url))


def wait_for(
    predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll until ``predicate()`` is truthy and return it; a timeout names ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what or 'condition'} not reached within {timeout:g}s; last {last!r}")


# The cluster timings of the sample configuration (etc/paragon-licensed.toml), as benchmarks use them.
DEFAULT_TIMINGS = {
    "heartbeat": "2s",
    "node_timeout": "10s",
    "lease": "15s",
    "renew": "5s",
    "renew_deadline": "10s",
}


class Cluster:
    """Nodes named node-1, node-2, ... sharing ``store_url``, pointed at ``portal``."""

    def __init__(
        self,
        root: Path,
        store_url: str,
        portal: PortalProcess,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.store_url = store_url
        self.portal = portal
        self.base_config: dict[str, Any] = deep_merge(
            {
                "store": {"url": store_url},
                "portal": {"url": portal.url, "public_keys": [portal.public_keys_glob]},
                "tenants": [{"id": TENANT, "admin_email": "admin@example.com"}],
            },
            config or {},
        )
        self.nodes: dict[str, DaemonProcess] = {}
        self._db: Database | None = None
        self._keys: set[str] = set()
        self.frozen: set[str] = set()

    # -- nodes

    def node(self, name: str, config: Mapping[str, Any] | None = None) -> DaemonProcess:
        """The node called ``name``, made (not started) on first use."""
        if name not in self.nodes:
            self.nodes[name] = DaemonProcess(
                self.root, name, deep_merge(self.base_config, dict(config or {}))
            )
        return self.nodes[name]

    def start(self, *names: str) -> list[DaemonProcess]:
        """Start the named nodes one after another (each up to READY=1)."""
        started = []
        for name in names:
            node = self.node(name)
            node.start()
            started.append(node)
        return started

    def running(self) -> list[DaemonProcess]:
        """The nodes whose process runs and is not frozen (SIGSTOP), so that they answer ctl."""
        return [
            n
            for n in self.nodes.values()
            if n.proc is not None and n.proc.poll() is None and n.name not in self.frozen
        ]

    def freeze(self, node: DaemonProcess) -> None:
        """SIGSTOP: the process keeps its sockets and its state, and does nothing at all.

        A process stopped while it holds a shared SQLite file's write lock keeps that
        lock (a POSIX lock lives as long as its process), and every other node waits on
        it: that is why a real cluster runs on PostgreSQL, whose server ends a paused
        node's open transaction after the lease. On SQLite the node is therefore stopped
        between two of its write transactions: the test holds the write lock itself
        while it sends the signal.
        """
        if not self.store_url.startswith("sqlite://"):
            node.signal(signal.SIGSTOP)
        else:
            path = self.store_url.removeprefix("sqlite://")
            with contextlib.closing(sqlite3.connect(path, timeout=60, isolation_level=None)) as lock:
                lock.execute("BEGIN IMMEDIATE")
                node.signal(signal.SIGSTOP)
                lock.execute("COMMIT")
        self.frozen.add(node.name)

    def thaw(self, node: DaemonProcess) -> None:
        node.signal(signal.SIGCONT)
        self.frozen.discard(node.name)

    def close(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.proc.send_signal(signal.SIGCONT)  # a stopped process cannot die of SIGKILL's cleanup
            node.kill()
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- what the nodes say

    @staticmethod
    def node_list(node: DaemonProcess) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = node.ctl_json("nodes")
        return nodes

    def online(self, via: DaemonProcess) -> set[str]:
        return {n["name"] for n in self.node_list(via) if n["online"]}

    def wait_online(self, names: set[str], via: DaemonProcess | None = None, timeout: float = 30.0) -> None:
        """Wait until ``via`` (every running node when None) sees exactly ``names`` online."""
        for node in [via] if via is not None else self.running():
            wait_for(
                partial(self.sees_online, node, names), timeout, what=f"{sorted(names)} online on {node.name}"
            )

    def sees_online(self, node: DaemonProcess, names: set[str]) -> bool:
        return self.online(node) == names

    def agreed_coordinator(self) -> str | None:
        """The coordinator when every running node names the same single one and it says so itself."""
        named: set[str | None] = set()
        for node in self.running():
            coordinators = [n["name"] for n in self.node_list(node) if n["coordinator"]]
            if len(coordinators) != 1:
                return None
            named.add(coordinators[0])
        if len(named) != 1:
            return None
        name = named.pop()
        assert name is not None
        leader = self.nodes.get(name)
        if leader is None or leader not in self.running() or not leader.status()["is_coordinator"]:
            return None
        others = [n.name for n in self.running() if n is not leader and n.status()["is_coordinator"]]
        assert not others, f"{others} also claim to be the coordinator besides {name}"
        return name

    def wait_coordinator(self, timeout: float = 40.0, other_than: str | None = None) -> DaemonProcess:
        """Wait until the running nodes agree on one coordinator (not ``other_than``); return it."""

        def agreed() -> str | None:
            name = self.agreed_coordinator()
            return name if name is not None and name != other_than else None

        name: str = wait_for(agreed, timeout, what="one agreed coordinator")
        return self.nodes[name]

    # -- the shared store, read as an operator would

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_store(self.store_url)
        return self._db

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        return self.db.read_sync(fn, *args)

    def lease(self) -> node_q.LeaseRow:
        row = self.read(node_q.lease)
        assert row is not None, "no lease in the store"
        return row

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.read(lambda tx: Tx.all(tx, sql, params))

    # -- the license

    def activate(self, via: DaemonProcess, key: str = ACTIVATION_KEY) -> subprocess.CompletedProcess[str]:
        """Add an order for ``key`` on the portal and activate through ``via``; asserts success."""
        if key not in self._keys:
            self.portal.add_order(key, TENANT, product="Dispatcher Paragon Enterprise")
            self._keys.add(key)
        return via.ctl("license", "activate", "--key", key, check=True)

    def license_ids(self, via: DaemonProcess, tenant: str = TENANT) -> list[str]:
        lic = via.ctl_json("license", "info", "--tenant", tenant)
        return sorted(lic["computer_ids"])


class Watcher:
    """``ctl watch --json`` on one node: every event it printed, in order."""

    def __init__(self, node: DaemonProcess) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [DAEMON, "ctl", "--socket", node.socket, "watch", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError), self._lock:
                self.events.append(json.loads(line))

    def seen(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def cluster_of(
    root: Path, store_url: str, portal: PortalProcess, config: Mapping[str, Any] | None = None
) -> Iterator[Cluster]:
    cluster = Cluster(root, store_url, portal, config)
    try:
        yield cluster
    finally:
        cluster.close()


def varlink_call(
    socket_path: str, method: str, parameters: Mapping[str, Any], timeout: float = 60.0
) -> dict[str, Any]:
    """One call over the raw socket, without ``more``: the reply as sent (``error`` included)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(json.dumps({"method": method, "parameters": dict(parameters)}).encode() + b"\0")
        buffer = b""
        while b"\0" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            buffer += chunk
    reply: dict[str, Any] = json.loads(buffer.split(b"\0", 1)[0])
    return reply
