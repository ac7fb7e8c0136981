"""The Debian package, built once per test session, and a throwaway Debian 12 root.

``packages`` builds ``paragon-licensed`` twice with ``scripts/build-deb``: as the
version in debian/changelog (N) and as the next one (N+1, the same source), for the
upgrade; the build of N also makes the Cockpit page's package,
``cockpit-paragon-licensed``. ``DebianRoot`` is a minimal Debian 12 made by mmdebstrap
in which the tests run apt and the programs with chroot(8). Nothing is mounted in it
and no init is ever started there (systemd's boot-time clean-up would empty the host's
/tmp): the daemon runs directly, as systemd would run it, and talks to a portal on the
host's loopback.

Use the fixtures with ``pytest_plugins = ["support.package"]``.

PYTEST_DONT_REWRITE: test modules both import this module and name it in
``pytest_plugins``; its few asserts carry their own messages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_DEB = ROOT / "scripts" / "build-deb"
CHANGELOG = ROOT / "debian" / "changelog"
PACKAGE = "paragon-licensed"
SUITE = "bookworm"
# Slow steps (builds, mmdebstrap, apt) on a shared two-core machine.
STEP_TIMEOUT = 600


def run(
    args: Sequence[str | Path],
    *,
    timeout: float = STEP_TIMEOUT,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
    return result


def changelog_version() -> str:
    return run(["dpkg-parsechangelog", "-l", CHANGELOG, "-S", "Version"], timeout=60).stdout.strip()


def next_version(version: str) -> str:
    """A version dpkg orders right after ``version`` that is still a product build."""
    return f"{version}+1"


def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "--field", deb, field], timeout=60).stdout.strip()


def deb_files(deb: Path) -> list[str]:
    """The paths the package ships (files and symlinks, not folders), absolute."""
    names = run(["dpkg-deb", "--contents", deb], timeout=120).stdout
    found = []
    for line in names.splitlines():
        kind = line[0]
        path = line.split(" ./", 1)[1].split(" -> ", 1)[0]
        if kind != "d":
            found.append("/" + path)
    return found


@dataclass(frozen=True)
class Packages:
    current: Path  # version N, from debian/changelog
    next: Path  # version N+1, the same source
    cockpit: Path  # cockpit-paragon-licensed, version N
    version: str
    next_version: str
    build_seconds: float  # building N


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packages]:
    """Both packages, built once per session into a folder removed at its end."""
    out = tmp_path_factory.mktemp("debs")
    version = changelog_version()
    started = time.monotonic()
    run([BUILD_DEB, "--out", out])
    build_seconds = time.monotonic() - started
    run([BUILD_DEB, "--out", out, "--version", next_version(version)])
    arch = run(["dpkg", "--print-architecture"], timeout=60).stdout.strip()
    yield Packages(
        current=out / f"{PACKAGE}_{version}_{arch}.deb",
        next=out / f"{PACKAGE}_{next_version(version)}_{arch}.deb",
        cockpit=out / f"cockpit-{PACKAGE}_{version}_all.deb",
        version=version,
        next_version=next_version(version),
        build_seconds=build_seconds,
    )
    shutil.rmtree(out, ignore_errors=True)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (there should never be any)."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split()[4]
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


class DebianRoot:
    """A minimal Debian 12 in a folder, operated with chroot(8); nothing is mounted in it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self) -> None:
        # A server has systemd (installed, not running: nothing here boots it). The
        # package lists are kept for apt to install the package's dependencies.
        options = ["--quiet", "--variant=apt", "--include=systemd", "--skip=cleanup/apt/lists"]
        run(["mmdebstrap", *options, SUITE, self.path])
        assert mounts_under(self.path) == [], "mmdebstrap left mounts behind"

    def file(self, path: str) -> Path:
        """The host path of ``path`` inside the root (not following its symlinks)."""
        return self.path / path.lstrip("/")

    def chroot(
        self,
        *args: str,
        user: str | None = None,
        check: bool = True,
        timeout: float = STEP_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        return run(self.command(args, user=user), check=check, timeout=timeout, env=self.env())

    def command(self, args: Sequence[str], user: str | None = None) -> list[str]:
        userspec = [f"--userspec={user}:{user}"] if user else []
        return ["chroot", *userspec, str(self.path), *args]

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "DEBIAN_FRONTEND": "noninteractive",
        }

    def apt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.chroot("apt-get", "-y", "-q", "--no-install-recommends", *args)

    def install(self, deb: Path) -> subprocess.CompletedProcess[str]:
        """``apt-get install ./DEB`` inside the root, dependencies from Debian's mirror."""
        inside = f"/tmp/{deb.name}"
        shutil.copy(deb, self.file(inside))
        try:
            return self.apt("install", inside)
        finally:
            self.file(inside).unlink()

    def remove(self) -> None:
        leftover = mounts_under(self.path)
        assert leftover == [], f"refusing to delete {self.path}: mounted {leftover}"
        shutil.rmtree(self.path, ignore_errors=True)


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebianRoot]:
    root = DebianRoot(tmp_path_factory.mktemp("debian-root") / "root")
    try:
        root.create()
        yield root
    finally:
        root.remove()


class ChrootDaemon:
    """The installed daemon run directly in the root as its own account (never by an init)."""

    def __init__(self, root: DebianRoot, log: Path) -> None:
        self.root = root
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.root.command(["/usr/bin/paragon-licensed", "run"], user=PACKAGE),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env={**self.root.env(), "HOME": "/nonexistent"},
                start_new_session=True,
            )

    def stop(self, timeout: float = 15.0) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
        return proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``paragon-licensed ctl ARGS`` as root inside the root (the installed ctl, default socket)."""
        return self.root.chroot("paragon-licensed", "ctl", *args, check=check, timeout=60)

    def wait_until(self, predicate: object, timeout: float = 60.0, what: str = "condition") -> object:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                last = predicate()
            except (AssertionError, ValueError, KeyError) as exc:  # not listening yet, say
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.2)
        raise TimeoutError(f"{what} not reached; last {last!r}\n{self.log()[-4000:]}")


def environment_problems() -> list[str]:
    """Why the package test cannot run here (it never skips: CI must run it)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the package test runs as root (mmdebstrap, chroot, apt)")
    for tool in ("mmdebstrap", "dpkg-buildpackage", "dh_virtualenv", "lintian", "chroot"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is missing (scripts/ensure-deb-tools installs it)")
    return problems
