"""End to end: the tenant check's failure e-mails, received by a real SMTP server (aiosmtpd).

Who gets which digest in single- and multi-tenant deployments, what happens
without an address, the reminder interval, an SMTP server that is down, a
daemon killed with mail in its outbox, and STARTTLS with authentication.
A tenant whose license the portal has no record of (signed with the portal's
key, placed in the store before the first start) fails its reactivation with
`integrity_mismatch`, which makes failures cheap to set up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.daemon import DAEMON, DaemonProcess
from support.portal import PortalProcess
from support.smtp import Received, SmtpServer
from support.tenant_check import (
    check_config,
    notifications,
    outbox,
    outcomes,
    run_check,
    seed_refused,
    wait_for,
)

pytest_plugins = ["support.portal", "support.smtp", "support.tenant_check"]
pytestmark = pytest.mark.e2e

QUIET = 1.5  # seconds to wait for a message that must not come


def digest_tenants(message: Received) -> list[str]:
    """The tenants a digest lists ("  - TENANT: reason" lines)."""
    return sorted(
        line.strip()[2:].split(":", 1)[0] for line in message.body.splitlines() if line.startswith("  - ")
    )


def to(messages: list[Received], address: str) -> list[Received]:
    return [m for m in messages if address in m.recipients]


def test_single_tenant_each_admin_gets_one_digest_of_their_tenants(
    portal_factory: Callable[..., PortalProcess],
    smtp: SmtpServer,
    daemons: Callable[..., DaemonProcess],
) -> None:
    portal = portal_factory(serve_args=["--license-days", "1"])
    portal.add_order("KEY-good", "good")
    daemon = daemons("node-1", check_config(portal, smtp, extra={"tenants": [{"id": "good"}]}))
    seed_refused(daemon, portal, dict.fromkeys(("a1", "a2", "b1"), ""))
    daemon.start()
    for tenant, address in (
        ("a1", "alpha@example.com"),
        ("a2", "alpha@example.com"),
        ("b1", "beta@example.com"),
        ("good", "gamma@example.com"),
    ):
        daemon.ctl("tenants", "set", tenant, "--admin-email", address, check=True)
    daemon.ctl("license", "activate", "--key", "KEY-good", "--tenant", "good", check=True)  # expiring

    results = run_check(daemon)

    assert outcomes(results) == {"a1": "failed", "a2": "failed", "b1": "failed", "good": "reactivated"}
    smtp.wait_for(lambda m: bool(to(m, "alpha@example.com") and to(m, "beta@example.com")), what="digests")
    time.sleep(QUIET)
    mails = smtp.messages()
    assert sorted(m.recipients for m in mails) == [("alpha@example.com",), ("beta@example.com",)]
    alpha, beta = to(mails, "alpha@example.com")[0], to(mails, "beta@example.com")[0]
    assert digest_tenants(alpha) == ["a1", "a2"]
    assert digest_tenants(beta) == ["b1"]
    assert "2 tenant(s)" in alpha.subject
    assert "1 tenant(s)" in beta.subject
    for message in (alpha, beta):
        assert "integrity_mismatch" in message.body  # the portal's reason, per tenant
        assert message.message["From"] == "paragon-licensed@cluster.test"
        assert message.message_id
    assert to(mails, "gamma@example.com") == []


def test_multi_tenant_one_digest_to_the_cloud_admin(
    portal_factory: Callable[..., PortalProcess],
    smtp: SmtpServer,
    daemons: Callable[..., DaemonProcess],
) -> None:
    portal = portal_factory(serve_args=["--license-days", "1"])
    portal.add_order("KEY-good", "good")
    extra = {"product": {"deployment": "multi-tenant"}, "tenants": [{"id": "good"}]}
    daemon = daemons("node-1", check_config(portal, smtp, extra=extra))
    seed_refused(daemon, portal, dict.fromkeys(("a1", "a2", "b1"), ""))
    daemon.start()
    daemon.ctl("cloud", "set-admin-email", "cloud-admin@example.com", check=True)
    for tenant in ("a1", "a2", "b1", "good"):
        daemon.ctl("tenants", "set", tenant, "--admin-email", f"{tenant}-admin@example.com", check=True)
    daemon.ctl("license", "activate", "--key", "KEY-good", "--tenant", "good", check=True)

    results = run_check(daemon)

    assert outcomes(results) == {"a1": "failed", "a2": "failed", "b1": "failed", "good": "reactivated"}
    smtp.wait_count(1)
    time.sleep(QUIET)
    mails = smtp.messages()
    assert [m.recipients for m in mails] == [("cloud-admin@example.com",)]  # tenant admins: nothing
    assert digest_tenants(mails[0]) == ["a1", "a2", "b1"]
    assert "3 tenant(s)" in mails[0].subject


@pytest.mark.parametrize(
    ("deployment", "setting"),
    [
        ("single-tenant", "`paragon-licensed ctl tenants set lonely --admin-email ADDR`"),
        ("multi-tenant", "`paragon-licensed ctl cloud set-admin-email ADDR`"),
    ],
)
def test_missing_address_is_a_notification_not_a_mail(
    deployment: str,
    setting: str,
    portal: PortalProcess,
    smtp: SmtpServer,
    daemons: Callable[..., DaemonProcess],
) -> None:
    # In a multi-tenant deployment the tenant administrator's address is not the one to use.
    admin = "lonely-admin@example.com" if deployment == "multi-tenant" else ""
    extra = {"product": {"deployment": deployment}}
    daemon = daemons("node-1", check_config(portal, smtp, extra=extra))
    seed_refused(daemon, portal, {"lonely": admin})
    daemon.start()

    assert outcomes(run_check(daemon)) == {"lonely": "failed"}

    notes = notifications(daemon, "--tenant", "lonely")
    missing = [n for n in notes if n["title"] == "No address for failure e-mails"]
    assert len(missing) == 1, notes
    assert missing[0]["severity"] == "error"
    assert setting in missing[0]["text"]
    assert outbox(daemon) == []  # nothing queued, so nothing is ever sent
    time.sleep(QUIET)
    assert smtp.messages() == []


def test_reminder_interval_limits_repeats(
    portal: PortalProcess, smtp: SmtpServer, daemons: Callable[..., DaemonProcess]
) -> None:
    daemon = daemons("node-1", check_config(portal, smtp))
    seed_refused(daemon, portal, {"flaky": "flaky-admin@example.com"})
    daemon.start()

    assert outcomes(run_check(daemon)) == {"flaky": "failed"}
    assert outcomes(run_check(daemon)) == {"flaky": "failed"}  # back to back: the same failure
    smtp.wait_count(1)
    time.sleep(QUIET)
    assert len(smtp.messages()) == 1
    assert len(outbox(daemon)) == 1

    # A short reminder interval (applied on reload): after a pause, the same failure is mailed again.
    daemon.update_config({"tenant_check": {"reminder_interval": "1s"}})
    reloads = daemon.log().count("configuration reloaded")
    daemon.signal(signal.SIGHUP)
    daemon.wait_until(lambda: daemon.log().count("configuration reloaded") > reloads, what="reload")
    time.sleep(1.2)
    assert outcomes(run_check(daemon)) == {"flaky": "failed"}
    smtp.wait_count(2)
    time.sleep(QUIET)
    mails = smtp.messages()
    assert len(mails) == 2
    assert [digest_tenants(m) for m in mails] == [["flaky"], ["flaky"]]
    assert mails[0].message_id != mails[1].message_id


def test_smtp_down_during_the_run_then_up_delivers_once(
    portal_factory: Callable[..., PortalProcess],
    smtp: SmtpServer,
    daemons: Callable[..., DaemonProcess],
) -> None:
    portal = portal_factory(serve_args=["--latency", "1500"])
    daemon = daemons("node-1", check_config(portal, smtp))
    seed_refused(daemon, portal, dict.fromkeys(("x1", "x2", "x3"), "ops@example.com"))
    daemon.start()

    check = subprocess.Popen(
        [DAEMON, "ctl", "--socket", daemon.socket, "tenants", "check", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        daemon.wait_until(lambda: daemon.status()["activity"].startswith("tenant check"), what="a run")
        smtp.stop()  # during the run: the portal answers only after 1.5 s
        out, err = check.communicate(timeout=60)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    assert check.returncode == 1, out + err
    assert all(r["outcome"] == "failed" for r in json.loads(out)["results"])

    def tried_and_failed() -> list[tuple[Any, ...]]:
        return [row for row in outbox(daemon) if row[3] >= 1 and row[4] is None and row[5]]

    queued = wait_for(tried_and_failed, what="a failed delivery attempt")
    assert len(queued) == 1
    assert "e-mail not delivered, retrying" in daemon.log()
    assert smtp.messages() == []

    smtp.start()
    smtp.wait_count(1)
    time.sleep(QUIET + 2)  # past the next retry, had the "sent" mark been lost
    mails = smtp.messages()
    assert len(mails) == 1
    assert digest_tenants(mails[0]) == ["x1", "x2", "x3"]
    rows = outbox(daemon)
    assert len(rows) == 1
    assert rows[0][4] is not None
    assert rows[0][3] >= 2


def test_mail_in_the_outbox_survives_sigkill_and_is_sent_once(
    portal: PortalProcess,
    smtp_factory: Callable[..., SmtpServer],
    daemons: Callable[..., DaemonProcess],
) -> None:
    smtp = smtp_factory(start=False)  # down from the start: the digest stays in the outbox
    daemon = daemons("node-1", check_config(portal, smtp))
    seed_refused(daemon, portal, {"crashy": "crashy-admin@example.com"})
    daemon.start()

    assert outcomes(run_check(daemon)) == {"crashy": "failed"}
    wait_for(lambda: [r for r in outbox(daemon) if r[3] >= 1], what="a failed delivery attempt")
    daemon.kill()  # SIGKILL: the result and its mail are stored, the mail is not sent
    [row] = outbox(daemon)
    assert row[4] is None

    smtp.start()
    daemon.start()
    smtp.wait_count(1)
    time.sleep(QUIET + 2)
    mails = smtp.messages()
    assert len(mails) == 1
    assert mails[0].recipients == ("crashy-admin@example.com",)
    assert digest_tenants(mails[0]) == ["crashy"]
    assert mails[0].message_id.startswith(f"<outbox-{row[0]}.")
    [after] = outbox(daemon)
    assert after[4] is not None


@pytest.mark.parametrize("source", ["password_file", "credential"])
def test_starttls_and_authentication(
    source: str,
    tmp_path: Path,
    portal: PortalProcess,
    smtp_factory: Callable[..., SmtpServer],
    daemons: Callable[..., DaemonProcess],
) -> None:
    password = f"pw-{os.urandom(8).hex()}"
    smtp = smtp_factory(tls=True, credentials=("paragon-mailer", password))
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "smtp-password").write_text(password + "\n")
    (secrets / "smtp-password").chmod(0o600)
    mail: dict[str, Any] = {"username": "paragon-mailer"}
    env: dict[str, str] = {}
    if source == "password_file":
        mail["password_file"] = str(secrets / "smtp-password")
    else:
        env["CREDENTIALS_DIRECTORY"] = str(secrets)  # systemd's LoadCredential=smtp-password
    daemon = daemons("node-1", check_config(portal, smtp, extra={"mail": mail}))
    seed_refused(daemon, portal, {"secure": "secure-admin@example.com"})
    daemon.start(env=env)

    assert outcomes(run_check(daemon)) == {"secure": "failed"}
    [message] = smtp.wait_count(1)
    assert message.tls, "sent without STARTTLS"
    assert message.login == "paragon-mailer"
    assert smtp.auth_attempts == [("paragon-mailer", True)]
    assert digest_tenants(message) == ["secure"]
    assert password not in daemon.log()
    assert password not in daemon.ctl("status", "--json").stdout
    assert password not in Path(daemon.config_path).read_text()
