"""What `run` needs from the file system, checked before it starts (and by `check-config`).

A configuration `check-config` calls valid must start: the state folder must be
a folder this user can write (or can create), the control socket's path must fit
in a socket address and its folder must be a folder, and a SQLite store must be
a file in a folder. Each problem is one line naming the key, like every other
configuration problem.

A read-only or full file system is a fault of the disk, not of the file: `run`
starts anyway (serving the local copies and reporting the fault in `status`),
while `check-config`, which an operator runs to ask "will this work?", reports it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from paragon_licensed.daemon.config import Config, Problem

# sun_path holds 108 bytes with the terminating NUL (Linux).
MAX_SOCKET_PATH = 107
# Disk faults: reported by check-config, survived by run.
DISK_FAULTS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def _describe(path: str, what: str) -> str:
    return f'"{path}" ({what})'


def _existing_ancestor(path: Path) -> tuple[Path, str | None]:
    """The nearest existing path at or above `path`, and why it cannot hold a folder (or None)."""
    current = path
    while True:
        try:
            if current.is_dir():
                return current, None
            if current.exists() or current.is_symlink():
                return current, "is not a folder"
        except OSError as exc:  # e.g. a permission denied on a parent
            return current, exc.strerror or str(exc)
        if current.parent == current:
            return current, None
        current = current.parent


def _writable(folder: Path) -> tuple[int, str] | None:
    """(errno, reason) when a file cannot be created in the existing folder, else None.

    Tried for real (create and remove a file): access(2) does not see a read-only mount
    or a full disk.
    """
    probe = folder / f".paragon-licensed-check-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return exc.errno or 0, exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def _folder_problem(key: str, folder: Path, disk_faults: bool) -> Problem | None:
    """A folder the daemon writes in, or creates: usable by this user?"""
    existing, why = _existing_ancestor(folder)
    if why is not None:
        what = why if existing == folder else f"{existing} {why}"
        return Problem(key, "a folder the daemon can create files in", _describe(str(folder), what))
    failed = _writable(existing)
    if failed is None:
        return None
    code, reason = failed
    if code in DISK_FAULTS and not disk_faults:
        return None
    where = "" if existing == folder else f" in {existing}, where it would be created"
    return Problem(key, "a folder the daemon can create files in", _describe(str(folder), f"{reason}{where}"))


def path_problems(config: Config, disk_faults: bool = True) -> list[Problem]:
    """The file-system problems that would stop `run`; with disk_faults, also a read-only or
    full file system (which `run` survives, but an operator checking a file wants to hear of)."""
    problems: list[Problem] = []
    state_dir = Path(config.paths.state_dir)
    found = _folder_problem("paths.state_dir", state_dir, disk_faults)
    if found is not None:
        problems.append(found)

    socket_path = config.control.socket
    size = len(os.fsencode(socket_path))
    if size > MAX_SOCKET_PATH:
        problems.append(
            Problem(
                "control.socket",
                f"a socket path of at most {MAX_SOCKET_PATH} bytes",
                _describe(socket_path, f"{size} bytes"),
            )
        )
    else:
        socket_folder = Path(socket_path).parent
        existing, why = _existing_ancestor(socket_folder)
        if why is not None:
            problems.append(
                Problem(
                    "control.socket",
                    "a path whose folder is a folder (or can be created)",
                    _describe(socket_path, f"{existing} {why}"),
                )
            )
        elif os.path.isdir(socket_path):
            problems.append(Problem("control.socket", "a socket path", _describe(socket_path, "a folder")))

    url = config.store_url
    if url.startswith("sqlite://"):
        store = Path(url.removeprefix("sqlite://"))
        key = "store.url" if config.store.url else "paths.state_dir"
        if store.is_dir():
            problems.append(Problem(key, "a SQLite store file", _describe(str(store), "a folder")))
        elif store.parent != state_dir:
            found = _folder_problem(key, store.parent, disk_faults)
            if found is not None:
                problems.append(found)
    return problems
