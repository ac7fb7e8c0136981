"""Folders the daemon creates: every missing level with the intended mode, whatever the umask.

``os.makedirs(path, mode)`` applies the mode to the last level only; the levels above get
0777 less the umask, which is 0777 under a umask of 0. A folder above the control socket
that another local user may write lets them swap it for one of their own.
"""

from __future__ import annotations

import os


def make_dirs(path: str | os.PathLike[str], mode: int) -> None:
    """Create ``path`` and each missing folder above it with exactly ``mode``; existing ones stay."""
    missing: list[str] = []
    level = os.path.abspath(path)
    while not os.path.isdir(level):
        missing.append(level)
        parent = os.path.dirname(level)
        if parent == level:
            break
        level = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
            continue  # made meanwhile by someone else: not ours to change
        os.chmod(folder, mode)  # the umask may have taken bits away, or left too many
