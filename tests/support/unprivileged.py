"""Unprivileged callers: code run as uid/gid 65534 (nobody) in a forked child of the test.

The venv's interpreter lives under a root-only folder, so an unprivileged client
cannot be a new process: it is the test process, forked, with its rights
dropped. ``as_nobody`` runs a function to its end; ``Nobody`` runs one in the
background (an attacker holding connections while the test checks the daemon),
and reads what it reports line by line until the test stops it.

PYTEST_DONT_REWRITE: imported by test modules; it has no assert statements.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

NOBODY = 65534
_STOP_FD: list[int] = [-1]  # in a Nobody child: the pipe whose closing means "stop"


@contextlib.contextmanager
def public_dir() -> Iterator[Path]:
    """A folder under /tmp every user may enter: pytest's own tmp folders are root-only (0700)."""
    path = Path(tempfile.mkdtemp(prefix="pl-e2e-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _fork() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (the notify listener)
        return os.fork()


def _drop_privileges() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def as_nobody(fn: Callable[[], int]) -> tuple[int, str, str]:
    """Run fn in a forked child that dropped to uid/gid 65534; return (exit code, stdout, stderr)."""
    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:  # the child: never returns into pytest
        code = 98
        out, err = io.StringIO(), io.StringIO()
        try:
            os.close(read_end)
            sys.stdout, sys.stderr = out, err
            _drop_privileges()
            code = fn()
        except BaseException as exc:  # report whatever happened to the parent
            err.write(f"child failed: {exc!r}\n")
        finally:
            with contextlib.suppress(BaseException):
                os.write(write_end, json.dumps({"out": out.getvalue(), "err": err.getvalue()}).encode())
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    captured = json.loads(b"".join(chunks) or b'{"out": "", "err": ""}')
    return os.waitstatus_to_exitcode(status), captured["out"], captured["err"]


class Nobody:
    """``fn(report)`` running as nobody in the background; ``report(line)`` reaches the test.

    ``fn`` should report what it achieved, then block in ``wait_for_stop()`` (or end).
    ``stop()`` ends it (its connections close with it) and returns its exit code.
    """

    def __init__(self, fn: Callable[[Callable[[str], None]], None]) -> None:
        report_r, report_w = os.pipe()
        self._stop_r, stop_w = os.pipe()
        self.pid = _fork()
        if self.pid == 0:
            code = 0
            try:
                os.close(report_r)
                os.close(stop_w)
                _STOP_FD[0] = self._stop_r
                _drop_privileges()
                writer = os.fdopen(report_w, "w", buffering=1)

                def report(line: str) -> None:
                    writer.write(line.replace("\n", " ") + "\n")

                fn(report)
            except BaseException as exc:
                with contextlib.suppress(BaseException):
                    os.write(report_w, f"failed: {exc!r}\n".encode())
                code = 97
            finally:
                os._exit(code)
        os.close(report_w)
        os.close(self._stop_r)
        self._stop_w = stop_w
        self._reports: IO[str] = os.fdopen(report_r, "r")
        self.lines: list[str] = []

    def report(self, timeout: float = 60.0) -> str:
        """The next line the child reported (its "failed: ..." line if it failed)."""
        import select

        ready, _, _ = select.select([self._reports], [], [], timeout)
        line = self._reports.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the unprivileged child reported nothing within {timeout:g} s")
        self.lines.append(line.rstrip("\n"))
        return self.lines[-1]

    def stop(self) -> int:
        with contextlib.suppress(OSError):
            os.close(self._stop_w)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reports.close()
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        self._reports.close()
        return os.waitstatus_to_exitcode(status)


def wait_for_stop() -> None:
    """In a ``Nobody`` child: block until the test calls ``stop()`` (its pipe closes)."""
    os.read(_STOP_FD[0], 1)
