"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder.

``$PARAGON_TEST_PG_DSN`` names an existing server instead (its role must be allowed to
create databases and roles). Otherwise the server binaries are found under
``/usr/lib/postgresql/*/bin`` or on PATH (``scripts/ensure-postgres`` installs them); when
they are missing the tests fail with a message saying so, they never skip. As root, the
server runs as the ``postgres`` user (or ``nobody``): PostgreSQL refuses to run as root.

It listens on 127.0.0.1 on a free port and on a Unix socket in its own folder. Every
connection is trusted, except the role ``PASSWORD_ROLE``, which must give its password
(SCRAM): the password-file tests log in as it.

Use the fixtures with ``pytest_plugins = ["support.postgres"]``: ``postgres`` is the
session's server, ``pg_dsn`` a fresh database on it for one test, and
``postgres_factory()`` makes a server of the test's own (to stop and start it).

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

ENV_DSN = "PARAGON_TEST_PG_DSN"
PASSWORD_ROLE = "paragon_pw"
SUPERUSER = "postgres"
START_TIMEOUT = 60
MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql/*/bin "
    "or on PATH. Run scripts/ensure-postgres (as root it installs Debian's 'postgresql' package), "
    f"or set {ENV_DSN} to a server the tests may create databases on."
)


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl (the newest version installed)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    raise RuntimeError(MISSING)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """The unprivileged user to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


def with_database(dsn: str, dbname: str, user: str | None = None, password: str | None = None) -> str:
    """The URL ``dsn`` with another database (and, when given, another user and password)."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        netloc = f"{auth}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, parts.fragment))


class PostgresServer:
    """One server: its folder, the running postmaster, and helpers for databases and roles.

    ``settings`` are extra ``-c name=value`` server options (e.g. shared_preload_libraries).
    """

    def __init__(self, settings: Mapping[str, str] | None = None, external_dsn: str | None = None) -> None:
        self.external = external_dsn
        self.settings = dict(settings or {})
        self.port = 0
        self.root: Path | None = None
        self.password = secrets.token_urlsafe(18)
        self._user: str | None = None
        self._bindir: Path | None = None
        self._counter = 0
        if external_dsn is None:
            self._bindir = find_bindir()
            self._user = _server_user()

    # -- life cycle

    @property
    def owned(self) -> bool:
        """True when this server is ours to stop and start (not $PARAGON_TEST_PG_DSN)."""
        return self.external is None

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    def _run(
        self, args: Sequence[str], check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        assert self._bindir is not None
        command = [str(self._bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}\n"
                f"{self.log_text()[-3000:]}"
            )
        return result

    def create(self) -> None:
        """initdb, the access rules, then start; an external server only gets the password role."""
        if not self.owned:
            self._ensure_password_role()
            return
        self.root = Path(tempfile.mkdtemp(prefix="paragon-pg-"))
        if self._user is not None:
            info = pwd.getpwnam(self._user)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        os.chmod(self.root, 0o700)
        self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        # First match wins: the password role must authenticate, everyone else is trusted.
        (self.data_dir / "pg_hba.conf").write_text(
            f"local all {PASSWORD_ROLE} scram-sha-256\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        self.start()
        self._ensure_password_role()
        atexit.register(self.destroy)

    def _options(self) -> str:
        assert self.root is not None
        options = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            # A throwaway server: durability buys nothing here and costs the shared machine time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            **self.settings,
        }
        return " ".join(f"-c {k}={v}" for k, v in options.items())

    def start(self) -> None:
        """Start the server (on the port of the first start, so DSNs stay valid)."""
        if not self.owned:
            raise RuntimeError(
                f"the server named by {ENV_DSN} cannot be stopped or started by the tests; "
                f"unset {ENV_DSN} so the suite starts a server of its own"
            )
        first = self.port == 0
        for _ in range(5):
            if first:
                self.port = free_port()
            result = self._run(
                [
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                    "-o",
                    self._options(),
                    "start",
                ],
                check=False,
                timeout=START_TIMEOUT + 30,
            )
            if result.returncode == 0:
                return
            if not first or "in use" not in self.log_text()[-2000:]:
                break
        raise RuntimeError(
            f"PostgreSQL did not start:\n{result.stdout}\n{result.stderr}\n{self.log_text()[-3000:]}"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``immediate`` drops every connection at once, as a crash would."""
        if not self.owned:
            self.start()  # raises the explanation
        if self.running:
            self._run(["pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"])

    @property
    def running(self) -> bool:
        if not self.owned:
            return True
        if self.root is None or not self.data_dir.exists():
            return False
        return self._run(["pg_ctl", "-D", str(self.data_dir), "status"], check=False).returncode == 0

    def destroy(self) -> None:
        """Stop the server and remove its folder; safe to call more than once."""
        if not self.owned or self.root is None:
            return
        with contextlib.suppress(Exception):
            if self.running:
                self._run(["pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.destroy)

    def log_text(self) -> str:
        if self.root is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    # -- databases

    @property
    def admin_dsn(self) -> str:
        if self.external is not None:
            return self.external
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def dsn(self, dbname: str, user: str | None = None, password: str | None = None) -> str:
        return with_database(self.admin_dsn, dbname, user, password)

    def connect(self, dbname: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection as the administrator (to the admin database by default)."""
        dsn = self.admin_dsn if dbname is None else self.dsn(dbname)
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)

    def _ensure_password_role(self) -> None:
        with self.connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PASSWORD_ROLE,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            # The password is a literal in DDL (no parameters there); it is URL-safe base64.
            conn.execute(f"{verb} ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{self.password}'")

    def new_database(self, owner: str | None = None) -> str:
        """A fresh, empty database; returns its URL (as the administrator, without a password)."""
        self._counter += 1
        name = f"paragon_{os.getpid()}_{self._counter}_{secrets.token_hex(3)}"
        with self.connect() as conn:
            suffix = f" OWNER {owner}" if owner else ""
            conn.execute(f"CREATE DATABASE {name}{suffix}")
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        name = urlsplit(dsn).path.lstrip("/")
        with contextlib.suppress(psycopg.Error), self.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def make_server(settings: Mapping[str, str] | None = None, own: bool = False) -> PostgresServer:
    """A created and started server: $PARAGON_TEST_PG_DSN unless ``own``, else a throwaway one."""
    external = None if own else (os.environ.get(ENV_DSN) or None)
    server = PostgresServer(settings, external)
    server.create()
    return server


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started once, removed at the end)."""
    server = make_server()
    yield server
    server.destroy()


@pytest.fixture
def pg_dsn(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's server for one test, dropped afterwards."""
    dsn = postgres.new_database()
    yield dsn
    postgres.drop_database(dsn)


@pytest.fixture
def postgres_factory() -> Iterator[Callable[..., PostgresServer]]:
    """Servers of the test's own (never $PARAGON_TEST_PG_DSN): for tests that stop the database."""
    made: list[PostgresServer] = []

    def make(settings: Mapping[str, str] | None = None) -> PostgresServer:
        server = make_server(settings, own=True)
        made.append(server)
        return server

    yield make
    for server in made:
        server.destroy()
