"""The mailer: sends the e-mail outbox over SMTP, with retries, on the coordinator only.

Messages are written to the outbox in the same transaction as the failure they
report; the mailer sends each and marks it sent, or records the error and
tries again later (backing off up to max_retry_backoff). Nothing is lost across
a restart, and a message marked sent is never sent again. Each message carries
a Message-ID derived from its outbox row, so a receiving server can recognise
the rare duplicate of a message whose "sent" mark a crash prevented.

smtplib and the email package are imported at the first message: a node whose
outbox stays empty never loads them.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from paragon_licensed.daemon import log
from paragon_licensed.daemon.config import MailConfig
from paragon_licensed.daemon.secrets import read_secret
from paragon_licensed.daemon.store import messages as msg_q
from paragon_licensed.daemon.store.messages import MailRow

if TYPE_CHECKING:
    from email.message import EmailMessage

    from paragon_licensed.daemon.app import Daemon

CREDENTIAL = "smtp-password"


def smtp_password(config: MailConfig) -> str | None:
    """From mail.password_file, else the systemd credential smtp-password; never logged."""
    return read_secret(config.password_file, CREDENTIAL)


def build_message(config: MailConfig, mail: MailRow, store_id: str) -> EmailMessage:
    from email.message import EmailMessage
    from email.utils import formatdate

    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = formatdate(mail.created_at, usegmt=True)
    message["Message-ID"] = f"<outbox-{mail.id}.{store_id}@paragon-licensed>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body)
    return message


def send(config: MailConfig, message: EmailMessage) -> None:
    """One SMTP delivery (blocking: called in a worker thread)."""
    import smtplib

    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout) as smtp:
        if config.starttls:
            smtp.starttls(context=ssl.create_default_context(cafile=config.ca_bundle or None))
        if config.username:
            password = smtp_password(config)
            if password is None:
                raise smtplib.SMTPAuthenticationError(
                    535, b"no SMTP password: set mail.password_file or the smtp-password credential"
                )
            smtp.login(config.username, password)
        smtp.send_message(message)


class Mailer:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Coordinator duty: deliver what is due, then sleep until the next retry or a new message."""
        app = self.app
        while True:
            for mail in await app.db.read(msg_q.due_mail):
                await self.deliver(mail)
            wait = await app.db.read(msg_q.next_mail_due_in)
            with anyio.move_on_after(min(60.0, max(0.2, wait)) if wait is not None else 60.0):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def deliver(self, mail: MailRow) -> None:
        import smtplib

        app = self.app
        config = app.config.mail
        message = build_message(config, mail, app.view.snapshot.store_id)
        app.cluster.fence()  # still the coordinator: only one node ever sends the outbox
        try:
            await anyio.to_thread.run_sync(send, config, message)
        except (OSError, smtplib.SMTPException) as exc:
            backoff = min(config.max_retry_backoff, config.retry_backoff * 2**mail.attempts)
            reason = _describe(exc)
            await app.db.write(msg_q.mark_failed, mail.id, reason, backoff, fence=app.cluster.fence())
            log.warning(
                "e-mail not delivered, retrying",
                mail=mail.id,
                recipient=mail.recipient,
                reason=reason,
                retry_in=f"{backoff:.0f}s",
            )
            return
        await app.db.write(msg_q.mark_sent, mail.id, fence=app.cluster.fence())
        log.info("e-mail sent", mail=mail.id, recipient=mail.recipient, subject=mail.subject)


def _describe(exc: BaseException) -> str:
    import smtplib

    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error if isinstance(exc.smtp_error, str) else exc.smtp_error.decode(errors="replace")
        return f"SMTP {exc.smtp_code}: {text[:200]}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
