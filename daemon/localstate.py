"""Files under `paths.state_dir`: each tenant's last verified license, and the restore marker.

They let a node report its licenses through a store outage, and tell a restored
store from the live one. Every file is replaced atomically (write, fsync,
rename, fsync the folder), so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
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

    def save_licenses(self, documents: dict[str, str]) -> None:
        """Every tenant's current license document, in one file replaced at once."""
        atomic_write(self.licenses_path, msgspec.json.encode(documents))

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

    def write_marker(self, marker: Marker) -> None:
        atomic_write(self.marker_path, json.dumps(asdict(marker), sort_keys=True).encode())
