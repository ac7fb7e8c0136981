"""Files under `paths.state_dir`: each tenant's last verified license, the restore marker,
and the latest trusted time.

They let a node report its licenses through a store outage, and tell a restored
store from the live one. Every file is replaced atomically (write, fsync,
rename, fsync the folder), so a crash leaves the old file or the new one.

A read-only, full or vanished folder must not stop the daemon: a write that
fails is reported (`problem`, shown in status), retried after a backoff that
doubles up to MAX_BACKOFF, and at once when the folder's file system looks
healthy again. The license copies are only ever replaced by newer verified
licenses, never by fewer or older ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec

from paragon_licensed.daemon.dirs import make_dirs

MAX_BACKOFF = 30.0
# Below this, the next copy may not fit: report the file system as full before a write fails.
MIN_FREE = 64 * 1024


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    make_dirs(path.parent, 0o750)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # a half-written temporary file must not fill the disk
            os.unlink(tmp)
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


@dataclass
class Marker:
    """What this node last saw of the store: a store with a lower generation, or another
    store id, was restored from a backup or replaced."""

    store_id: str = ""
    generation: int = 0
    licenses: dict[str, str] = field(default_factory=dict)  # tenant -> license_id


class LocalState:
    def __init__(self, state_dir: str) -> None:
        self.root = Path(state_dir)
        self.licenses_path = self.root / "licenses.json"
        self.marker_path = self.root / "marker.json"
        self.clock_path = self.root / "clock.json"
        self.copies: dict[str, str] = {}
        self.issued: dict[str, float] = {}  # tenant -> issued_at of its copy
        self.disk_problem: str | None = None
        self.write_problem: str | None = None
        self._failures = 0
        self._retry_at = 0.0

    @property
    def problem(self) -> str | None:
        return self.disk_problem or self.write_problem

    def probe(self) -> bool:
        """Look at the folder's file system (cheap: one statvfs); True when the state changed."""
        before = self.problem
        try:
            fs = os.statvfs(self.root)
        except OSError as exc:
            self.disk_problem = (
                f"the state folder {self.root} cannot be used ({exc.strerror}): the local license "
                "copies cannot be updated; the daemon retries by itself"
            )
        else:
            free = fs.f_bavail * fs.f_frsize
            if fs.f_flag & os.ST_RDONLY:
                self.disk_problem = (
                    f"the state folder {self.root} is on a read-only file system: the local license "
                    "copies cannot be updated; make it writable (the daemon retries by itself)"
                )
            elif free < MIN_FREE:
                self.disk_problem = (
                    f"the file system of the state folder {self.root} is full ({free // 1024} KiB "
                    "free): the local license copies cannot be updated; free space (the daemon "
                    "retries by itself)"
                )
            else:
                if self.disk_problem is not None:
                    self._retry_at = 0.0  # the disk is back: retry the failed write at once
                self.disk_problem = None
        return self.problem != before

    def due(self) -> bool:
        """False while backing off after a failed write."""
        return time.monotonic() >= self._retry_at

    def _write(self, path: Path, data: bytes) -> bool:
        try:
            atomic_write(path, data)
        except OSError as exc:
            self._failures += 1
            delay = min(2.0 ** (self._failures - 1), MAX_BACKOFF)
            self._retry_at = time.monotonic() + delay
            self.write_problem = (
                f"cannot write {path} ({exc.strerror or exc}): the local license copies are not "
                "up to date; the daemon retries by itself"
            )
            return False
        self._failures = 0
        self._retry_at = 0.0
        self.write_problem = None
        return True

    def save_licenses(self, documents: dict[str, tuple[str, float]]) -> bool:
        """Keep each tenant's newest verified license (document, issued_at), in one file replaced
        at once. A tenant missing from `documents`, or given an older license, keeps its copy."""
        merged = dict(self.copies)
        issued = dict(self.issued)
        for tenant, (document, issued_at) in documents.items():
            if tenant in merged and issued_at < issued.get(tenant, 0.0):
                continue
            merged[tenant], issued[tenant] = document, issued_at
        if merged == self.copies and self.licenses_path.exists():
            return True
        if not self._write(self.licenses_path, msgspec.json.encode(merged)):
            return False
        self.copies, self.issued = merged, issued
        return True

    def load_licenses(self) -> dict[str, str]:
        try:
            data = json.loads(self.licenses_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def read_marker(self) -> Marker | None:
        try:
            data = json.loads(self.marker_path.read_text(encoding="utf-8"))
            return Marker(str(data["store_id"]), int(data["generation"]), dict(data.get("licenses", {})))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_marker(self, marker: Marker) -> bool:
        return self._write(self.marker_path, json.dumps(asdict(marker), sort_keys=True).encode())

    def read_clock(self) -> float:
        """The latest trusted time this node wrote down (0 when none)."""
        try:
            return float(json.loads(self.clock_path.read_text(encoding="utf-8"))["high_water"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    def write_clock(self, high_water: float) -> bool:
        return self._write(self.clock_path, json.dumps({"high_water": high_water}).encode())
