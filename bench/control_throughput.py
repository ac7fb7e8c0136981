"""Figure 1: GetStatus throughput over the control socket, against a bare anyio echo server.

Three processes: the daemon (the installed `paragon-licensed run`), a bare anyio
server that echoes NUL-framed messages (this file, `--echo-server`), and one
load generator (this file, `--load`) that drives either with the same closed
loop: N connections, each sending a GetStatus call and waiting for the reply.
Runs alternate between the two targets. The figure is our requests/s divided
by the echo server's (target >= 0.5), and our p99 latency (target <= 2 ms).

    .venv/bin/python bench/control_throughput.py [--connections 32] [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import DaemonProcess

REQUEST = b'{"method": "io.paragon.License.GetStatus"}\0'


# -- the echo server (its own process)


def echo_server(path: str) -> None:
    import anyio
    import anyio.abc

    async def handle(stream: anyio.abc.SocketStream) -> None:
        buffer = b""
        async with stream:
            try:
                while True:
                    buffer += await stream.receive()
                    while (end := buffer.find(b"\0")) >= 0:
                        message, buffer = buffer[: end + 1], buffer[end + 1 :]
                        await stream.send(message)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return

    async def main() -> None:
        listener = await anyio.create_unix_listener(path)
        await listener.serve(handle)

    anyio.run(main)


# -- the load generator (its own process)


async def load(path: str, connections: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop_at = 0.0

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_unix_connection(path, limit=16 * 1024 * 1024)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                writer.write(REQUEST)
                reply = await reader.readuntil(b"\0")
                latencies.append(time.perf_counter() - started)
                if b'"error"' in reply[:16]:
                    errors += 1
        finally:
            writer.close()
            await writer.wait_closed()

    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    return {"requests": len(latencies), "seconds": elapsed, "errors": errors, "latencies": latencies}


def run_load(path: str, connections: int, seconds: float) -> dict[str, Any]:
    """Drive one target from a separate process, so neither server shares a CPU budget with it."""
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            path,
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- the driver


def wait_for_socket(path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return
        except OSError:
            time.sleep(0.02)
        finally:
            probe.close()
    raise TimeoutError(f"nothing listens on {path}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per target")
    parser.add_argument("--echo-server", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        echo_server(args.echo_server)
        return 0
    if args.load:
        print(json.dumps(asyncio.run(load(args.load, args.connections, args.seconds))))
        return 0

    with tempfile.TemporaryDirectory(prefix="pl-bench-") as tmp:
        root = Path(tmp)
        echo_path = str(root / "echo.sock")
        echo = subprocess.Popen([sys.executable, __file__, "--echo-server", echo_path])
        daemon = DaemonProcess(root, config={"tenants": [{"id": f"tenant-{i}"} for i in range(3)]})
        try:
            daemon.start()
            wait_for_socket(echo_path)
            targets = {"echo": echo_path, "GetStatus": daemon.socket}
            for path in targets.values():  # warm up both (imports, caches, the status snapshot)
                run_load(path, args.connections, 0.5)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            for round_number in range(args.rounds):
                order = list(targets) if round_number % 2 == 0 else list(reversed(targets))
                for name in order:
                    runs[name].append(run_load(targets[name], args.connections, args.seconds))
            single = run_load(daemon.socket, 1, min(args.seconds, 2.0))
            rss_kb = _rss_kb(daemon)
        finally:
            daemon.stop()
            echo.terminate()
            echo.wait()

    rates = {name: [r["requests"] / r["seconds"] for r in rs] for name, rs in runs.items()}
    ours = [lat for r in runs["GetStatus"] for lat in r["latencies"]]
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    median = {name: statistics.median(values) for name, values in rates.items()}
    ratio = median["GetStatus"] / median["echo"]
    p50, p99 = percentile(ours, 0.50) * 1000, percentile(ours, 0.99) * 1000
    single_p50 = percentile(single["latencies"], 0.50) * 1000
    single_p99 = percentile(single["latencies"], 0.99) * 1000

    print(
        f"control socket throughput: {args.connections} connections, closed loop, "
        f"{args.rounds} interleaved runs of {args.seconds:g} s per target (cpus: {os.cpu_count()})"
    )
    print()
    print(f"{'target':<22}{'req/s (median)':>16}    runs")
    for name in targets:
        label = "anyio echo server" if name == "echo" else "paragon GetStatus"
        runs_text = ", ".join(f"{r:,.0f}" for r in rates[name])
        print(f"{label:<22}{median[name]:>16,.0f}    {runs_text}")
    print()
    print(f"{'ratio ours/echo':<34}{ratio:>8.2f}   target >= 0.5  {'OK' if ratio >= 0.5 else 'MISSED'}")
    print(f"{'GetStatus p50 latency (ms)':<34}{p50:>8.2f}")
    print(
        f"{'GetStatus p99 latency (ms)':<34}{p99:>8.2f}   target <= 2 ms {'OK' if p99 <= 2.0 else 'MISSED'}"
    )
    print(f"{'  one connection: p50 / p99 (ms)':<34}{single_p50:>8.2f} / {single_p99:.2f}")
    print(f"{'daemon RSS after the runs (MB)':<34}{rss_kb / 1024:>8.1f}")
    print(f"{'error replies':<34}{errors:>8}")
    return 0


def _rss_kb(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
