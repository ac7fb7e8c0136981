"""HTTP clients for the daemon's portal calls, side by side: wall time and the client's CPU per request.

The daemon's own transport (``daemon/portal_http.py``: the standard library's
http.client over one keep-alive connection per worker thread, each exchange run
through ``anyio.to_thread.run_sync`` by ``daemon/portal_client.py``) against the
usual alternatives, all sending the same requests to one reference portal in one
run, so that the project chooses its HTTP client by measurement.

The load is a mass reactivation as the tenant check sends it: N POSTs to
/api/v1/reactivations (default 5,000), 16 at once, against one
``paragon-license-portal serve --latency 20``. The requests are the real thing:
before the portal serves, N tenants are seeded and activated through the
portal's own service code for a three-node cluster (three computer IDs), so
every request is a reactivation the portal carries out (a write transaction and
a freshly signed license), and its answer is that license. Every client sends
the same tenants in the same order with the same body (``json.dumps``, as the
daemon encodes it), each with request IDs of its own, so the portal does the
same work for each and never replays a stored answer. The sizes of the body and
of the answer are printed.

Each client runs in its own process, so that one client's libraries, threads and
garbage do not count against another. It first sends 2 x 16 warm-up requests
(its connections are opened, lazy imports done), then the N requests; the wall
time and the process's CPU time (``getrusage``: user + system, every thread) are
taken around those N only. The portal's CPU time over the same window is read
from /proc. Per request, every client does the same work: send the encoded body
with ``Content-Type: application/json``, read the whole answer, ``json.loads``
it, check for status 200 and a license in it. Clients:

- raw socket, 16 threads: the baseline, written here: one blocking socket per
  thread, one ``sendall`` per request, the answer read by its Content-Length.
  HTTP/1.1 keep-alive with nothing else, as cheap as Python's HTTP gets; every
  CPU figure is printed as a ratio to it.
- raw asyncio protocol, 16 tasks: the same on the event loop (an
  ``asyncio.Protocol`` per connection, each request inside ``anyio.fail_after``
  as the daemon bounds its attempts): the floor for a client on the daemon's
  event loop.
- portal_http as the daemon: ``PortalClient._attempt`` of the daemon itself (the
  capacity limiter, ``anyio.fail_after``, ``Abort`` and the transport run through
  ``anyio.to_thread.run_sync``), in 16 anyio tasks on asyncio.
- portal_http, 16 threads: the same ``Transport.exchange`` called from 16 plain
  threads. The difference to the line above is the cost of the daemon's hop from
  its event loop to a worker thread and back, which any blocking client
  (requests, urllib3) would pay in the daemon too: it is printed.
- requests.Session in 16 threads (one session per thread, redirects off).
- urllib3.PoolManager in 16 threads (one manager, 16 pooled connections,
  retries and redirects off).
- httpx.AsyncClient, 16 tasks, HTTP/1.1 (16 pooled connections, redirects off;
  each request inside ``anyio.fail_after``, since httpx has no deadline for a
  whole exchange and the daemon bounds every attempt as a whole).
- aiohttp.ClientSession, 16 tasks (16 pooled connections, a total timeout).

Each client is set up as the daemon would use it: the proxy decided once for
the portal's host (as ``portal_http`` does), not looked up in the environment at
every request, which requests and aiohttp do with ``trust_env``: it is off for
them (httpx reads the environment once, when the client is made).

The budget: the daemon's target is at most 0.6 ms of CPU per tenant for a whole
reactivation, which besides the HTTP exchange builds the request, verifies the
signed license it gets back (Ed25519 and the payload's checks,
bench/license_verify.py), writes the license and the tenant's state to the
store in a transaction, and reports progress to the control socket. The HTTP
client gets a third of it: 0.2 ms of client CPU per request. A client above it
prints MISSED. Wall time is printed against the ideal N x latency / 16.

Numbers depend on the machine and its load: compare the ratios of one run. The
script exits 0 whatever it measured; a client that fails prints why.

    .venv/bin/python bench/http_clients.py [--requests 5000] [--concurrency 16] [--latency 20]
        [--rounds 1] [--clients raw,rawasync,daemon,threads,requests,urllib3,httpx,aiohttp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.portal import PortalProcess

from paragon_licensed import licensefile as lf
from paragon_licensed.portal.db import PortalDB
from paragon_licensed.portal.requestlog import RequestRecord
from paragon_licensed.portal.service import PortalService

BUDGET_MS = 0.2  # client CPU per request: a third of the daemon's 0.6 ms per tenant
TIMEOUT = 10.0  # seconds, the daemon's default portal.timeout
BUILD = "3.2.1"
HEADERS = {"User-Agent": "paragon-licensed", "Accept": "application/json", "Content-Type": "application/json"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the client process: one client, its warm-up, the measured requests


class Meter:
    """Wall time, this process's CPU time and the portal's, between start() and stop()."""

    def __init__(self, portal_pid: int) -> None:
        self.portal_pid = portal_pid
        self.figures: dict[str, float] = {}
        self._start: tuple[float, resource.struct_rusage, float] | None = None

    def _portal_cpu(self) -> float:
        parts = Path(f"/proc/{self.portal_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLOCK_TICKS  # utime + stime

    def start(self) -> None:
        self._start = (time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), self._portal_cpu())

    def stop(self) -> None:
        wall, portal = time.perf_counter(), self._portal_cpu()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        if self._start is None:
            raise RuntimeError("the meter was never started")
        wall0, usage0, portal0 = self._start
        self.figures = {
            "wall": wall - wall0,
            "user": usage.ru_utime - usage0.ru_utime,
            "sys": usage.ru_stime - usage0.ru_stime,
            "portal": portal - portal0,
        }


ANSWER_SIZE = [0]  # the size of an answer body, for the report


def check(status: int, data: bytes) -> None:
    """What every client does with an answer: the status, the JSON, the license in it."""
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
    if "license" not in json.loads(data):
        raise RuntimeError(f"no license in the answer: {data[:300]!r}")
    ANSWER_SIZE[0] = len(data)


Send = Callable[[bytes], None]


def in_threads(
    concurrency: int, connect: Callable[[], Send], warmup: list[bytes], bodies: list[bytes], meter: Meter
) -> None:
    """Send the warm-up, then the measured bodies, from `concurrency` threads.

    Each thread gets its own `send` from `connect` (its connection or session) and
    keeps it for both phases; the meter runs while the measured bodies are sent.
    """
    lock = threading.Lock()
    warmed = threading.Barrier(concurrency + 1)
    go = threading.Barrier(concurrency + 1)
    errors: list[BaseException] = []

    def drain(items: Iterator[bytes], send: Send) -> None:
        while True:
            with lock:
                body = next(items, None)
            if body is None:
                return
            send(body)

    def worker(first: Iterator[bytes], second: Iterator[bytes]) -> None:
        try:
            send = connect()
            drain(first, send)
            warmed.wait()
            go.wait()
            drain(second, send)
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:
            errors.append(exc)
            warmed.abort()
            go.abort()

    first, second = iter(warmup), iter(bodies)
    threads = [threading.Thread(target=worker, args=(first, second)) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        warmed.wait()
        meter.start()
        go.wait()
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    meter.stop()


async def in_tasks(
    concurrency: int,
    send: Callable[[bytes], Awaitable[None]],
    warmup: list[bytes],
    bodies: list[bytes],
    meter: Meter,
) -> None:
    """Send the warm-up, then the measured bodies, from `concurrency` tasks; the meter runs
    while the measured bodies are sent."""

    async def drain(items: Iterator[bytes]) -> None:
        for body in items:
            await send(body)

    for items, measured in ((warmup, False), (bodies, True)):
        shared = iter(items)
        if measured:
            meter.start()
        async with anyio.create_task_group() as tasks:
            for _ in range(concurrency):
                tasks.start_soon(drain, shared)
        if measured:
            meter.stop()


def raw_socket(url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, meter: Meter) -> str:
    parts = urllib.parse.urlsplit(url)
    head = _request_head(parts)

    def connect() -> Send:
        sock = socket.create_connection((parts.hostname or "", parts.port or 80), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()

        def send(body: bytes) -> None:
            sock.sendall(b"%s%d\r\n\r\n%s" % (head, len(body), body))
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                buffer.extend(_recv(sock))
            header = bytes(buffer[:end])
            del buffer[: end + 4]
            status = int(header[9:12])
            length = 0
            for line in header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                buffer.extend(_recv(sock))
            data = bytes(buffer[:length])
            del buffer[:length]
            check(status, data)

        return send

    in_threads(concurrency, connect, warmup, bodies, meter)
    return f"Python {sys.version.split()[0]}"


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the portal closed the connection")
    return chunk


class _Exchange(asyncio.Protocol):
    """One keep-alive connection on the event loop: an answer is whole when its Content-Length is in."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        header = bytes(self.buffer[:end])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        data = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        self.waiter.set_result((int(header[9:12]), data))
        self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None:
            self.waiter.set_exception(exc or ConnectionError("the portal closed the connection"))
            self.waiter = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def raw_asyncio(url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, meter: Meter) -> str:
    parts = urllib.parse.urlsplit(url)
    head = _request_head(parts)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        idle: list[_Exchange] = []
        for _ in range(concurrency):
            _, protocol = await loop.create_connection(_Exchange, parts.hostname or "", parts.port or 80)
            idle.append(protocol)

        async def send(body: bytes) -> None:
            connection = idle.pop()  # as many connections as tasks: one is always idle
            try:
                with anyio.fail_after(TIMEOUT):
                    status, data = await connection.exchange(b"%s%d\r\n\r\n%s" % (head, len(body), body))
            finally:
                idle.append(connection)
            check(status, data)

        await in_tasks(concurrency, send, warmup, bodies, meter)

    anyio.run(main)
    return f"Python {sys.version.split()[0]}, asyncio"


def _request_head(parts: urllib.parse.SplitResult) -> bytes:
    """The request line and headers of every request, up to the Content-Length value."""
    return (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in HEADERS.items())
        + "Content-Length: "
    ).encode()


def daemon_transport(
    url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, meter: Meter
) -> str:
    """The daemon's PortalClient making its attempts, in anyio tasks on asyncio."""
    from paragon_licensed.daemon.config import PortalConfig
    from paragon_licensed.daemon.portal_client import PortalClient

    client = PortalClient(PortalConfig(url=url.rsplit("/", 1)[0], max_concurrency=concurrency))

    async def send(body: bytes) -> None:
        answer = await client._attempt("POST", url, body, float(client.config.timeout))
        if answer.status != 200 or "license" not in answer.body:
            raise RuntimeError(f"HTTP {answer.status}: {str(answer.body)[:300]}")

    anyio.run(in_tasks, concurrency, send, warmup, bodies, meter)
    return f"http.client, anyio {_version('anyio')}"


def daemon_transport_threads(
    url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, meter: Meter
) -> str:
    """The daemon's Transport (its connections per thread) called from plain threads."""
    from paragon_licensed.daemon.portal_http import Abort, Transport

    transport = Transport("", TIMEOUT, 1024 * 1024)

    def connect() -> Send:
        def send(body: bytes) -> None:
            reply = transport.exchange("POST", url, body, Abort())
            check(reply.status, reply.body)

        return send

    in_threads(concurrency, connect, warmup, bodies, meter)
    return "http.client"


def requests_session(
    url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, meter: Meter
) -> str:
    import requests

    def connect() -> Send:
        session = requests.Session()
        session.trust_env = False  # no proxy and netrc look-up at every request

        def send(body: bytes) -> None:
            response = session.post(url, data=body, headers=HEADERS, timeout=TIMEOUT, allow_redirects=False)
            check(response.status_code, response.content)

        return send

    in_threads(concurrency, connect, warmup, bodies, meter)
    return f"requests {requests.__version__}"


def urllib3_pool(url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, meter: Meter) -> str:
    import urllib3

    pool = urllib3.PoolManager(maxsize=concurrency, block=True, retries=False, timeout=TIMEOUT)

    def connect() -> Send:
        def send(body: bytes) -> None:
            response = pool.request("POST", url, body=body, headers=HEADERS, redirect=False)
            check(response.status, response.data)

        return send

    in_threads(concurrency, connect, warmup, bodies, meter)
    return f"urllib3 {_version('urllib3')}"


def httpx_async(url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, meter: Meter) -> str:
    import httpx

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(http1=True, http2=False, timeout=TIMEOUT, limits=limits) as client:

            async def send(body: bytes) -> None:
                with anyio.fail_after(TIMEOUT):
                    response = await client.post(url, content=body, headers=HEADERS)
                check(response.status_code, response.content)

            await in_tasks(concurrency, send, warmup, bodies, meter)

    anyio.run(main)
    return f"httpx {httpx.__version__}, httpcore {_version('httpcore')}"


def aiohttp_session(
    url: str, warmup: list[bytes], bodies: list[bytes], concurrency: int, meter: Meter
) -> str:
    import aiohttp

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def send(body: bytes) -> None:
                async with session.post(url, data=body, headers=HEADERS, allow_redirects=False) as response:
                    data = await response.read()
                check(response.status, data)

            await in_tasks(concurrency, send, warmup, bodies, meter)

    anyio.run(main)
    return f"aiohttp {aiohttp.__version__}"


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


Client = Callable[[str, list[bytes], list[bytes], int, Meter], str]


@dataclass(frozen=True)
class Entry:
    label: str
    run: Client


CLIENTS: dict[str, Entry] = {
    "raw": Entry("raw socket, 16 threads (baseline)", raw_socket),
    "rawasync": Entry("raw asyncio protocol, 16 tasks", raw_asyncio),
    "daemon": Entry("portal_http as the daemon (anyio.to_thread)", daemon_transport),
    "threads": Entry("portal_http, 16 threads", daemon_transport_threads),
    "requests": Entry("requests.Session, 16 threads", requests_session),
    "urllib3": Entry("urllib3.PoolManager, 16 threads", urllib3_pool),
    "httpx": Entry("httpx.AsyncClient, 16 tasks", httpx_async),
    "aiohttp": Entry("aiohttp.ClientSession, 16 tasks", aiohttp_session),
}
BASELINE = "raw"


def client_main(args: argparse.Namespace) -> int:
    """One client process: print its figures as one JSON line."""
    lines = Path(args.bodies).read_bytes().splitlines()
    warmup, bodies = lines[: args.warmup], lines[args.warmup :]
    meter = Meter(args.portal_pid)
    try:
        version = CLIENTS[args.client].run(args.url, warmup, bodies, args.concurrency, meter)
    except Exception as exc:
        error: BaseException = exc
        while isinstance(error, BaseExceptionGroup) and error.exceptions:  # from a task group
            error = error.exceptions[0]
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps({**meter.figures, "version": version, "answer": ANSWER_SIZE[0]}), flush=True)
    return 0


# -- the benchmark: the portal, its tenants, one process per client and round


def activate_tenants(portal: PortalProcess, count: int, computer_ids: list[str]) -> list[str]:
    """Seed `count` tenants and activate each for these computer IDs with the portal's service code."""
    pairs = portal.db.seed_tenants(count, valid_until=(datetime.now(UTC) + timedelta(days=365)).date())
    db = PortalDB(portal.db_path)
    service = PortalService(db, lf.load_private_key(portal.key_path))
    try:
        for tenant, key in pairs:
            body = {
                "activation_key": key,
                "tenant_id": tenant,
                "computer_ids": computer_ids,
                "build": BUILD,
                "request_id": str(uuid.uuid4()),
            }
            record = RequestRecord(method="POST", path="/api/v1/activations", source="offline")
            outcome = service.call("activation", body, record, time.perf_counter())
            if outcome.status != 200:
                raise RuntimeError(f"activation of {tenant}: {outcome.status} {outcome.body!r}")
    finally:
        db.close()
    return [tenant for tenant, _ in pairs]


def write_bodies(path: Path, tenants: list[str], warmup: int, computer_ids: list[str]) -> int:
    """The warm-up bodies, then one reactivation per tenant, each with a new request ID; one per line.
    Returns the size of the first measured body."""
    bodies = []
    for tenant in tenants[:warmup] + tenants:
        body = {"tenant_id": tenant, "computer_ids": computer_ids, "build": BUILD}
        bodies.append(json.dumps({**body, "request_id": str(uuid.uuid4())}))
    path.write_text("\n".join(bodies) + "\n")
    return len(bodies[warmup].encode())


@dataclass
class Result:
    wall: float
    cpu_ms: float  # client CPU per request
    user_ms: float
    sys_ms: float
    portal_ms: float
    version: str
    answer: int


def run_client(
    name: str, portal: PortalProcess, bodies: Path, warmup: int, count: int, concurrency: int
) -> Result | str:
    """One client in its own process: its figures, or why it failed."""
    assert portal.pid is not None
    command = [
        sys.executable,
        __file__,
        "--client",
        name,
        "--url",
        portal.url + "/reactivations",
        "--bodies",
        str(bodies),
        "--warmup",
        str(warmup),
        "--concurrency",
        str(concurrency),
        "--portal-pid",
        str(portal.pid),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    except subprocess.TimeoutExpired:
        return "no answer within 1800 s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"exited {done.returncode}"
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    per = 1000 / count
    return Result(
        wall=figures["wall"],
        cpu_ms=(figures["user"] + figures["sys"]) * per,
        user_ms=figures["user"] * per,
        sys_ms=figures["sys"] * per,
        portal_ms=figures["portal"] * per,
        version=figures["version"],
        answer=figures["answer"],
    )


def median_result(results: list[Result]) -> Result:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    return Result(
        wall=med([r.wall for r in results]),
        cpu_ms=med([r.cpu_ms for r in results]),
        user_ms=med([r.user_ms for r in results]),
        sys_ms=med([r.sys_ms for r in results]),
        portal_ms=med([r.portal_ms for r in results]),
        version=results[0].version,
        answer=results[0].answer,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per client (5000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests at once (16)")
    parser.add_argument("--latency", type=float, default=20.0, help="the portal's --latency, in ms (20)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every client, in rotated order (1)")
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help=f"which clients, of {','.join(CLIENTS)} (all)"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--portal-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return client_main(args)

    names = [n.strip() for n in args.clients.split(",") if n.strip()]
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        parser.error(f"unknown clients {unknown}; choose of {','.join(CLIENTS)}")
    if BASELINE not in names:
        names.insert(0, BASELINE)
    count, concurrency = args.requests, args.concurrency
    warmup = min(2 * concurrency, count)
    computer_ids = sorted(str(uuid.uuid4()) for _ in range(3))
    results: dict[str, list[Result]] = {n: [] for n in names}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-http-clients-") as tmp:
        root = Path(tmp)
        portal = PortalProcess(root / "portal")
        try:
            started = time.perf_counter()
            tenants = activate_tenants(portal, count, computer_ids)
            portal.start(["--latency", f"{args.latency:g}"])
            print(f"set-up: {count} tenants seeded and activated in {time.perf_counter() - started:.1f} s")
            body_size = 0
            for round_no in range(args.rounds):
                order = names[round_no % len(names) :] + names[: round_no % len(names)]
                for name in order:
                    bodies = root / f"bodies-{name}-{round_no}"
                    body_size = write_bodies(bodies, tenants, warmup, computer_ids)
                    outcome = run_client(name, portal, bodies, warmup, count, concurrency)
                    bodies.unlink()
                    if isinstance(outcome, str):
                        failures[name] = outcome
                        print(f"  {name}: FAILED: {outcome}", flush=True)
                    else:
                        results[name].append(outcome)
                        print(f"  round {round_no + 1}, {name}: {outcome.wall:.1f} s, "
                              f"{outcome.cpu_ms:.3f} ms CPU per request", flush=True)  # fmt: skip
        finally:
            portal.close()

    ideal = count * args.latency / 1000 / concurrency
    merged = {name: median_result(runs) for name, runs in results.items() if runs}
    base = merged.get(BASELINE)
    answer = next(iter(merged.values())).answer if merged else 0
    print()
    print(f"HTTP clients: {count} reactivations (POST /api/v1/reactivations, body {body_size} B, "
          f"answer {answer} B), {concurrency} at once, portal latency {args.latency:g} ms")  # fmt: skip
    print(f"ideal wall time {count} x {args.latency:g} ms / {concurrency} = {ideal:.2f} s; "
          f"CPU per request as a ratio to the raw-socket baseline; budget {BUDGET_MS} ms per request"
          + (f"; medians of {args.rounds} rounds" if args.rounds > 1 else ""))  # fmt: skip
    print()
    print(f"  {'client':44} {'wall s':>7} {'/ideal':>7} {'CPU ms/req':>11} {'(user+sys)':>14} "
          f"{'x base':>7} {'budget':>7} {'portal ms/req':>14}  version")  # fmt: skip
    for name in names:
        label = CLIENTS[name].label
        r = merged.get(name)
        if r is None:
            print(f"  {label:44} FAILED: {failures.get(name, 'no result')}")
            continue
        ratio = f"{r.cpu_ms / base.cpu_ms:7.2f}" if base else f"{'-':>7}"
        verdict = "ok" if r.cpu_ms <= BUDGET_MS else "MISSED"
        print(f"  {label:44} {r.wall:7.2f} {r.wall / ideal:7.2f} {r.cpu_ms:11.3f} "
              f"{f'({r.user_ms:.3f}+{r.sys_ms:.3f})':>14} {ratio} {verdict:>7} {r.portal_ms:14.3f}  "
              f"{r.version}")  # fmt: skip
    daemon, threads = merged.get("daemon"), merged.get("threads")
    if daemon and threads:
        print()
        print(f"  the daemon's event-loop hop (as the daemon minus 16 threads): "
              f"{daemon.cpu_ms - threads.cpu_ms:.3f} ms CPU per request; a blocking client "
              "(requests, urllib3) used by the daemon would pay it too")  # fmt: skip
    libraries = {n: r for n, r in merged.items() if n not in ("raw", "rawasync")}
    if libraries:
        cheapest = min(libraries, key=lambda n: libraries[n].cpu_ms)
        figure = libraries[cheapest].cpu_ms
        print(f"  cheapest client, the raw ones aside: {CLIENTS[cheapest].label} ({figure:.3f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
