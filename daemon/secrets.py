"""Passwords from a file or a systemd credential: read when needed, never logged."""

from __future__ import annotations

import os
from pathlib import Path


def read_secret(password_file: str, credential: str) -> str | None:
    """The configured password file, else $CREDENTIALS_DIRECTORY/<credential>; None without either."""
    candidates = [password_file] if password_file else []
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        candidates.append(str(Path(directory) / credential))
    for path in candidates:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError:
            continue
    return None
