"""A real SMTP server (aiosmtpd) for tests that check the daemon's e-mail: it records what it receives.

``SmtpServer`` listens on 127.0.0.1 on a port it keeps across ``stop()`` and
``start()``, so a test can take the server down and bring it back where the
daemon expects it. With ``tls=True`` it offers STARTTLS with a certificate from a
throw-away CA (trustme) and requires it, and with ``credentials`` it requires
AUTH (LOGIN or PLAIN) after STARTTLS with that user and password.
``mail_config()`` is the daemon's ``[mail]`` section pointing at it.

PYTEST_DONT_REWRITE: test modules both import this module and name it in
``pytest_plugins``; it has no assert statements, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message as the server received it."""

    mail_from: str
    recipients: tuple[str, ...]
    message: EmailMessage
    tls: bool
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "")

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        return "" if part is None else str(part.get_content())


class _Recorder:
    """The aiosmtpd handler: keeps every message and every AUTH attempt."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = email.message_from_bytes(data, policy=email.policy.default)
        login = None
        auth = getattr(session, "auth_data", None)  # typed as None in aiosmtpd, set on AUTH
        if session.authenticated and isinstance(auth, LoginPassword):
            login = auth.login.decode()
        self.server.record(
            Received(
                mail_from=str(envelope.mail_from),
                recipients=tuple(str(r) for r in envelope.rcpt_tos),
                message=message,
                tls=session.ssl is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"


class SmtpServer:
    """An aiosmtpd server on a fixed port that a test can stop and start again."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials
        self.port = _free_port()
        self.received: list[Received] = []
        self.auth_attempts: list[tuple[str, bool]] = []  # (login, accepted)
        self._cond = threading.Condition()
        self._controller: Controller | None = None
        self.ca_path: Path | None = None
        self._tls_context: ssl.SSLContext | None = None
        if tls:
            ca = trustme.CA()
            cert = ca.issue_cert(HOST, "localhost")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            self._tls_context = context
            self.ca_path = workdir / "smtp-ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_path))

    # -- process control

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Listen (again) on this server's port."""
        if self._controller is not None:
            raise RuntimeError("the SMTP server is already running")
        kwargs: dict[str, Any] = {}
        if self._tls_context is not None:
            kwargs |= {"tls_context": self._tls_context, "require_starttls": True}
        if self.credentials is not None:
            kwargs |= {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": True}
        deadline = time.monotonic() + 10
        while True:
            controller = Controller(
                _Recorder(self), hostname=HOST, port=self.port, server_hostname="smtp.test", **kwargs
            )
            try:
                controller.start()
            except OSError:
                # The port may linger a moment after a stop; try it again.
                with contextlib.suppress(Exception):
                    controller.stop(no_assert=True)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            self._controller = controller
            return

    def stop(self) -> None:
        """Stop listening; connections are refused until start()."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def close(self) -> None:
        self.stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if self.credentials is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (login, password) == self.credentials
        with self._cond:
            self.auth_attempts.append((login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    # -- what arrived

    def record(self, received: Received) -> None:
        with self._cond:
            self.received.append(received)
            self._cond.notify_all()

    def messages(self, to: str | None = None) -> list[Received]:
        with self._cond:
            return [m for m in self.received if to is None or to in m.recipients]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0, what: str = "messages"
    ) -> list[Received]:
        """Wait until predicate(all messages so far) holds; return the messages."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.received)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [(m.recipients, m.subject) for m in self.received]
                    raise TimeoutError(f"{what} not received within {timeout:g}s; got {summary!r}")
                self._cond.wait(remaining)
            return list(self.received)

    def wait_count(self, count: int, timeout: float = 30.0) -> list[Received]:
        return self.wait_for(lambda msgs: len(msgs) >= count, timeout, f"{count} message(s)")

    # -- the daemon's side

    def mail_config(self, **extra: Any) -> dict[str, Any]:
        """The daemon's [mail] section for this server (STARTTLS and CA when TLS is on)."""
        section: dict[str, Any] = {
            "smtp_host": HOST,
            "smtp_port": self.port,
            "from": "paragon-licensed@cluster.test",
            "timeout": "5s",
        }
        if self.ca_path is not None:
            section |= {"starttls": True, "ca_bundle": str(self.ca_path)}
        return section | extra


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp_factory(tmp_path: Path) -> Iterator[Callable[..., SmtpServer]]:
    """Make started SMTP servers: ``smtp_factory(tls=..., credentials=..., start=True)``."""
    made: list[SmtpServer] = []

    def make(
        *, tls: bool = False, credentials: tuple[str, str] | None = None, start: bool = True
    ) -> SmtpServer:
        server = SmtpServer(tmp_path / f"smtp-{len(made)}", tls=tls, credentials=credentials)
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        with contextlib.suppress(Exception):
            server.close()


@pytest.fixture
def smtp(smtp_factory: Callable[..., SmtpServer]) -> SmtpServer:
    """A started plain SMTP server that accepts every message."""
    return smtp_factory()
