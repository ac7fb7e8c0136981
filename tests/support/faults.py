"""Faults under a running daemon: mounts, file damage, and the figures of how fast it noticed.

``measure`` waits for a state (never sleeps "long enough") and returns how long
that took; ``record`` appends one figure to the JSON-lines file named by
$PARAGON_FAULT_FIGURES, which bench/faults.py reads. Tests never assert the
figures: the machine's speed varies several-fold.

Mounts need root, as CI has; each is undone in a ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.daemon import DaemonProcess

FIGURES_ENV = "PARAGON_FAULT_FIGURES"


def measure(daemon: DaemonProcess, predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> float:
    started = time.monotonic()
    daemon.wait_until(predicate, timeout, interval=0.05, what=what)
    return time.monotonic() - started


def record(row: str, event: str, seconds: float) -> None:
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"row": row, "event": event, "seconds": round(seconds, 3)}) + "\n")


def alive(daemon: DaemonProcess) -> bool:
    return daemon.proc is not None and daemon.proc.poll() is None


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at path (created), unmounted afterwards whatever happens."""
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0750", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


class ReadOnly:
    """Makes a folder read-only under a running process: a read-only bind mount over it.

    Files the process already holds open stay writable (as on a real remount they would
    fail later, at the next open); every new file, rename or open by path fails with EROFS.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mounted = False

    def __enter__(self) -> ReadOnly:
        return self

    def apply(self) -> None:
        _run("mount", "--bind", str(self.folder), str(self.folder))
        self.mounted = True
        _run("mount", "-o", "remount,bind,ro", str(self.folder))

    def remove(self) -> None:
        if self.mounted:
            _run("umount", str(self.folder))
            self.mounted = False

    def __exit__(self, *exc_info: object) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False, capture_output=True, timeout=30)
            self.mounted = False


def fill(folder: Path) -> Path:
    """Fill the file system of folder completely; returns the filler file to delete."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def snapshot_copy(store: Path, target: Path) -> None:
    """A consistent one-file copy of a live SQLite store (the online backup API)."""
    source = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()
