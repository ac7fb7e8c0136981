"""The ``paragon-license-portal`` command: keygen, orders add, serve, offline process, requests."""

from __future__ import annotations

import ipaddress
import logging
import signal
import sqlite3
import ssl
import sys
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

import click
import msgspec

from paragon_licensed import licensefile as lf
from paragon_licensed.portal import offline
from paragon_licensed.portal.db import PortalDB
from paragon_licensed.portal.faults import Faults
from paragon_licensed.portal.problems import PROBLEMS, Problem
from paragon_licensed.portal.requestlog import RequestRecord
from paragon_licensed.portal.server import PortalHTTPServer
from paragon_licensed.portal.service import PortalService

DB_OPTION = click.option(
    "--db", "db_path", required=True, type=click.Path(dir_okay=False), help="The portal database."
)
KEY_OPTION = click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The portal's private key (portal.key from keygen).",
)
LICENSE_DAYS_OPTION = click.option(
    "--license-days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="A license is valid at most this many days (and never past its orders' ends).",
)
TRANSFER_LIMIT_OPTION = click.option(
    "--transfer-limit",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Transfers a tenant may make in 365 days.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The reference License Portal: portal API v1, orders, offline processing."""


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory.")
def keygen(out_dir: str) -> None:
    """Write DIR/portal.key (private, mode 0600) and DIR/KID.pub, and print the key ID."""
    try:
        kid = lf.generate_keypair(out_dir)
    except FileExistsError:
        raise click.ClickException(
            f"{Path(out_dir) / lf.PRIVATE_KEY_NAME} already exists; not replacing a portal key"
        ) from None
    except OSError as exc:
        raise click.ClickException(f"{out_dir}: {exc.strerror or exc}") from None
    click.echo(kid)


@main.group()
def orders() -> None:
    """Manage the orders behind activation keys."""


@orders.command("add")
@DB_OPTION
@click.option("--activation-key", required=True, help="The key; created with its first order.")
@click.option("--tenant", required=True, help="The tenant the key is sold to.")
@click.option("--product", required=True, help="The product name.")
@click.option(
    "--valid-until",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Last day of the order (it ends at 23:59:59 UTC that day).",
)
@click.option("--quantity", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--feature", "features", multiple=True, metavar="K=V", help="A feature; repeatable.")
def orders_add(
    db_path: str,
    activation_key: str,
    tenant: str,
    product: str,
    valid_until: datetime,
    quantity: int,
    features: tuple[str, ...],
) -> None:
    """Add an order to an activation key and print its order ID."""
    parsed: dict[str, str] = {}
    for feature in features:
        name, sep, value = feature.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{feature!r} is not K=V", param_hint="--feature")
        parsed[name] = value
    db = _open_db(db_path)
    try:
        order_id = db.add_order(
            activation_key, tenant, product, valid_until.date(), quantity=quantity, features=parsed
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.close()
    click.echo(order_id)


def _service(db_path: str, key_path: str, license_days: int, transfer_limit: int) -> PortalService:
    try:
        key = lf.load_private_key(key_path)
    except lf.KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    return PortalService(_open_db(db_path), key, license_days=license_days, transfer_limit=transfer_limit)


def _open_db(path: str) -> PortalDB:
    try:
        return PortalDB(path)
    except (sqlite3.Error, RuntimeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--listen")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 -- an empty host means all


def _is_loopback(host: str | bytes | bytearray) -> bool:
    name = host if isinstance(host, str) else bytes(host).decode()
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name == "localhost"


@main.command()
@DB_OPTION
@KEY_OPTION
@click.option("--listen", required=True, metavar="HOST:PORT", help="Address; port 0 picks one.")
@LICENSE_DAYS_OPTION
@TRANSFER_LIMIT_OPTION
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM chain.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM key.")
@click.option("--access-log", is_flag=True, help="Log one line per HTTP request to stderr.")
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0,
    metavar="MS",
    help="TESTING AID: sleep this long before answering each API request.",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0,
    metavar="P",
    help="TESTING AID: answer this fraction of API requests with the --fail-code problem.",
)
@click.option(
    "--fail-first",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="TESTING AID: answer the first N API requests with the --fail-code problem.",
)
@click.option(
    "--fail-code",
    type=click.Choice(sorted(PROBLEMS)),
    default="internal",
    show_default=True,
    metavar="CODE",
    help="TESTING AID: the injected problem: internal (500), rate_limited (429 with Retry-After), "
    "unavailable (503 with Retry-After) or any other problem code of the API.",
)
@click.option(
    "--retry-after",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    metavar="S",
    help="TESTING AID: the Retry-After seconds sent with injected 429 and 503 answers.",
)
@click.option(
    "--hold-after",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="TESTING AID: after N successful POST answers, hold every further answer (processed "
    "and recorded) until the process receives SIGUSR1.",
)
@click.option(
    "--without-query",
    is_flag=True,
    help="TESTING AID: answer POST /licenses/current/query 404 not_found, as a portal without "
    "that endpoint does.",
)
def serve(
    db_path: str,
    key_path: str,
    listen: str,
    license_days: int,
    transfer_limit: int,
    tls_cert: str | None,
    tls_key: str | None,
    access_log: bool,
    latency: float,
    fail_rate: float,
    fail_first: int,
    fail_code: str,
    retry_after: int,
    hold_after: int | None,
    without_query: bool,
) -> None:
    """Serve portal API v1 under /api/v1 until SIGTERM or Ctrl-C.

    Once listening, prints one line "listening on URL" to stdout. The testing aids
    (--latency, --fail-*, --retry-after, --hold-after, --without-query) are for exercising
    clients; an injected failure records nothing except its request log entry.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    address = _listen(listen)
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    context = None
    if tls_cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise click.ClickException(f"cannot load the TLS certificate or key: {exc}") from None
    service = _service(db_path, key_path, license_days, transfer_limit)
    faults = Faults(
        latency_ms=latency,
        fail_first=fail_first,
        fail_rate=fail_rate,
        fail_code=fail_code,
        retry_after=retry_after,
        hold_after=hold_after,
        without_query=without_query,
    )
    try:
        server = PortalHTTPServer(address, service, faults, ssl_context=context, access_log=access_log)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen}: {exc.strerror or exc}") from None

    logger = logging.getLogger("paragon_licensed.portal")
    if context is None and not _is_loopback(server.server_address[0]):
        logger.warning("serving plain HTTP on a non-loopback address: daemons accept only HTTPS there")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, lambda signum, frame: faults.release())
    click.echo(f"listening on {server.url}")
    sys.stdout.flush()
    public_key = service.private_key.public_key()
    logger.info("serving %s with key %s", server.url, lf.key_id(public_key))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        service.db.close()


@main.group("offline")
def offline_group() -> None:
    """Offline activation: answer request files with response files."""


@offline_group.command("process")
@DB_OPTION
@KEY_OPTION
@LICENSE_DAYS_OPTION
@TRANSFER_LIMIT_OPTION
@click.argument("request_file", type=click.File("r", encoding="utf-8"))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Response.")
def offline_process(
    db_path: str,
    key_path: str,
    license_days: int,
    transfer_limit: int,
    request_file: TextIO,
    out_path: str,
) -> None:
    """Answer an offline REQUEST file and write the response file to --out."""
    service = _service(db_path, key_path, license_days, transfer_limit)
    try:
        response = offline.process(service, request_file.read())
    except Problem as problem:
        click.echo(f"{problem.code}: {problem.detail}", err=True)
        sys.exit(1)
    finally:
        service.db.close()
    Path(out_path).write_text(response, encoding="utf-8")
    click.echo(f"wrote {out_path}")


@main.command("requests")
@click.option(
    "--db", "db_path", required=True, type=click.Path(exists=True, dir_okay=False), help="The database."
)
@click.option("--path", help="Only this URL path, e.g. /api/v1/activations.")
@click.option("--tenant", help="Only this tenant.")
@click.option("--request-id", help="Only this request ID.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def requests_command(
    db_path: str, path: str | None, tenant: str | None, request_id: str | None, as_json: bool
) -> None:
    """Show the request log: every API request answered, oldest first."""
    db = _open_db(db_path)
    try:
        records = db.requests(path=path, tenant_id=tenant, request_id=request_id)
    finally:
        db.close()
    if as_json:
        click.echo(msgspec.json.encode(records).decode())
        return
    for r in records:
        flags = ",".join(f for f, on in (("replay", r.replay), ("injected", r.injected)) if on)
        click.echo(
            f"{r.at}  {r.source:7}  {r.method:4} {r.path:28} {r.status} {r.code or '-':24} "
            f"{_who(r):16} {r.request_id or '-'} {flags}".rstrip()
        )


def _who(record: RequestRecord) -> str:
    """The tenant a request was for, or how many installations a current-license query asked about."""
    if record.tenant_id:
        return record.tenant_id
    return "-" if record.asked is None else f"({record.asked} asked)"
