"""`paragon-licensed ctl`: the command tree, and its exit codes (docs/control.md, "Errors").

Each verb's code lives in a module of its own, imported only when that verb
runs; this module and the client use the standard library alone, so that
`ctl status` starts in a few milliseconds.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Callable

from paragon_licensed.ctl.client import (
    Busy,
    Client,
    ConfigUnreadable,
    Endpoint,
    TooLarge,
    Unreachable,
    endpoint,
)
from paragon_licensed.ctl.output import err
from paragon_licensed.interface.errors import EXIT_UNREACHABLE, EXIT_USAGE, VarlinkError

TYPE_CHECKING = False  # typing itself costs ctl a few milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, NoReturn

# argparse asks gettext for a translation of each of its phrases, and gettext looks for
# catalogue files on disk each time; ctl speaks English, and Python ships no catalogue.
argparse._ = str  # type: ignore[attr-defined]

# (command words) -> (module, function, varlink method it calls): the table a test checks
# against the interface file, so every method has a command.
COMMANDS: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("status",): ("status", "status", "GetStatus"),
    ("identity",): ("status", "identity", "GetIdentity"),
    ("check",): ("check", "check", "GetStatus"),
    ("license", "info"): ("license", "info", "GetLicense"),
    ("license", "activate"): ("license", "activate", "Activate"),
    ("license", "reactivate"): ("license", "reactivate", "Reactivate"),
    ("license", "request"): ("license", "request", "CreateOfflineRequest"),
    ("license", "import"): ("license", "import_file", "ImportLicense"),
    ("license", "transfer"): ("license", "transfer", "Transfer"),
    ("nodes",): ("nodes", "list_nodes", "ListNodes"),
    ("nodes", "forget"): ("nodes", "forget", "ForgetNode"),
    ("tenants",): ("tenants", "list_tenants", "ListTenants"),
    ("tenants", "set"): ("tenants", "set_tenant", "SetTenant"),
    ("tenants", "check"): ("tenants", "check", "RunTenantCheck"),
    ("cloud", "set-admin-email"): ("tenants", "set_cloud_admin_email", "SetCloudAdminEmail"),
    ("notifications",): ("notifications", "list_notifications", "ListNotifications"),
    ("notifications", "ack"): ("notifications", "ack", "AckNotifications"),
    ("watch",): ("watch", "watch", "Watch"),
}


class Context:
    """What a command needs: its arguments and a way to reach the daemon."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))
        self._endpoint: Endpoint | None = None

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            self._endpoint = endpoint(self.args.socket, self.args.config)
        return self._endpoint

    @property
    def socket(self) -> str:
        return self.endpoint.socket

    def portal_url(self) -> str:
        return self.endpoint.portal_url

    def command_prefix(self) -> str:
        """How to call ctl again for the same daemon, as this call was made."""
        prefix = "paragon-licensed ctl"
        if self.args.socket:
            return f"{prefix} --socket {self.args.socket}"
        if self.args.config:
            return f"{prefix} --config {self.args.config}"
        return prefix

    def connect(self, timeout: float | None = 120.0) -> Client:
        return Client(self.socket, timeout, self.endpoint.max_message)

    def call(self, method: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.connect() as client:
            return client.call(method, parameters)


def _json_flag(parser: argparse.ArgumentParser, top: bool = False) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="Print one JSON document on stdout (watch: one per line, JSON Lines).",
    )


def _tenant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", metavar="T", help="The tenant (needed when there are several).")


class _HelpFormatter(argparse.HelpFormatter):
    """The look of `paragon-licensed --help`: "Usage:", then "Options:" and "Commands:" sections.

    argparse makes a formatter at every add_argument; the terminal's width is read once,
    without importing shutil for it.
    """

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _columns() - 2)

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)

    def start_section(self, heading: str | None) -> None:
        titles = {"options": "Options", "positional arguments": "Commands"}
        super().start_section(titles.get(heading or "", heading))


@functools.cache
def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() finds it: $COLUMNS, else stdout's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _parser(**kwargs: Any) -> argparse.ArgumentParser:
    # _Parser: usage errors reach main(), which answers `check`'s as a monitoring plugin must.
    return _Parser(formatter_class=_HelpFormatter, add_help=False, **kwargs)


def _help(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-h", "--help", action="help", help="Show this message and exit.")


def build_parser() -> argparse.ArgumentParser:
    parser = _parser(
        prog="paragon-licensed ctl",
        description="Talk to the running paragon-licensed daemon over its control socket.",
    )
    _help(parser)
    parser.add_argument("--socket", metavar="PATH", help="Control socket (default: from the configuration).")
    parser.add_argument("--config", metavar="FILE", help="Read control.socket from this configuration.")
    _json_flag(parser, top=True)
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")

    def verb(name: str, help_text: str, sub: Any = None) -> argparse.ArgumentParser:
        summary = help_text[0].upper() + help_text[1:] + "."
        command = (sub or verbs).add_parser(
            name, help=summary, description=summary, formatter_class=_HelpFormatter, add_help=False
        )
        _help(command)
        _json_flag(command)
        return command

    verb("status", "node, coordinator, cluster nodes, every tenant's license state")
    verb("identity", "this node's computer ID and which sources it came from")
    check = verb("check", "monitoring plugin: 0 ok, 1 warning, 2 critical, 3 unknown (docs/monitoring.md)")
    _tenant(check)
    # Monitors write a plugin's options after its command: accepted there too.
    check.add_argument("--socket", metavar="PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    check.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    check.add_argument(
        "--warning", type=_days, default=7, metavar="DAYS", help="WARNING below this many days left (7)."
    )
    check.add_argument(
        "--critical", type=_days, default=2, metavar="DAYS", help="CRITICAL below this many days left (2)."
    )

    license_cmd = verb("license", "the license: info, activation, reactivation, import, transfer")
    license_verbs = license_cmd.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    info = verb("info", "support ID, build, orders, validity and integrity key", license_verbs)
    _tenant(info)
    info.add_argument("--history", action="store_true", help="Also show the audit log.")
    activate = verb("activate", "first activation with an activation key", license_verbs)
    activate.add_argument("--key", required=True, metavar="ACTIVATION_KEY")
    _tenant(activate)
    activate.add_argument("--offline", action="store_true", help="Write a request file instead.")
    activate.add_argument("--out", metavar="FILE", help="Where --offline writes the request.")
    reactivate = verb("reactivate", "re-activate every order used before", license_verbs)
    _tenant(reactivate)
    mode = reactivate.add_mutually_exclusive_group()
    mode.add_argument("--online", action="store_true", help="Ask the portal now (the default).")
    mode.add_argument("--offline", action="store_true", help="Write a request file instead.")
    reactivate.add_argument("--out", metavar="FILE", help="Where --offline writes the request.")
    request = verb("request", "write an offline request file for the portal", license_verbs)
    request.add_argument("kind", choices=["activation", "reactivation", "transfer"])
    _tenant(request)
    request.add_argument("--key", metavar="ACTIVATION_KEY")
    request.add_argument("--replace", metavar="COMPUTER_ID")
    request.add_argument("--out", required=True, metavar="FILE")
    importing = verb("import", "install a license or an offline response file", license_verbs)
    importing.add_argument("file", metavar="FILE")
    transfer = verb("transfer", "move the license from a replaced computer ID", license_verbs)
    transfer.add_argument("--replace", required=True, metavar="COMPUTER_ID")
    _tenant(transfer)
    transfer.add_argument("--offline", action="store_true", help="Write request files instead.")
    transfer.add_argument("--out", metavar="FILE", help="Where --offline writes the request.")

    nodes = verb("nodes", "cluster nodes: name, computer ID, online, last seen, coordinator")
    nodes_verbs = nodes.add_subparsers(dest="sub", metavar="SUBCOMMAND")
    verb("forget", "drop a node that is gone for good (then transfer)", nodes_verbs).add_argument("name")

    tenants = verb("tenants", "tenants, state, valid until, admin e-mail")
    tenants.add_argument("--tenant", metavar="T", help="Only this tenant.")
    tenants.add_argument("--state", choices=TENANT_STATES, help="Only the tenants in this state.")
    tenants.add_argument(
        "--limit", type=int, metavar="N", help="One page of at most N tenants (with --json: with the cursor)."
    )
    tenants.add_argument(
        "--cursor", metavar="C", help="The page after this cursor (next_cursor of the last one)."
    )
    tenants_verbs = tenants.add_subparsers(dest="sub", metavar="SUBCOMMAND")
    set_tenant = verb("set", "create a tenant or set its administrator's e-mail", tenants_verbs)
    set_tenant.add_argument("tenant", metavar="T")
    set_tenant.add_argument("--admin-email", metavar="ADDR")
    verb("check", "run the tenant license processing now, with progress", tenants_verbs)

    cloud = verb("cloud", "the cloud administrator (multi-tenant deployments)")
    cloud_verbs = cloud.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    verb("set-admin-email", "the address failure e-mails go to", cloud_verbs).add_argument("email")

    notes = verb("notifications", "the notification center")
    _tenant(notes)
    notes.add_argument("--unread", action="store_true", help="Only those not acknowledged.")
    notes_verbs = notes.add_subparsers(dest="sub", metavar="SUBCOMMAND")
    ack = verb("ack", "mark notifications as read", notes_verbs)
    ack.add_argument("ids", nargs="+", type=int, metavar="ID")

    verb("watch", "stream events (state changes, notifications) until Ctrl-C")
    return parser


# The license states, as the interface names them (ctl keeps to the standard library).
TENANT_STATES = (
    "unlicensed",
    "active",
    "expiring",
    "expired",
    "invalid",
    "needs_reactivation",
    "needs_transfer",
)


class UsageError(Exception):
    """argparse found the command line wrong; main() decides how to say so."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"{text} days is outside 0 to 36500")
    return days


def _verb(argv: list[str]) -> str | None:
    """The command word of a command line argparse refused (its global options skipped)."""
    words = iter(argv)
    for word in words:
        if word in ("--socket", "--config"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _usage_error(exc: UsageError, argv: list[str]) -> int:
    if _verb(argv) == "check":
        # A monitor reads 2 as CRITICAL ("the license is gone"): a usage error is UNKNOWN.
        from paragon_licensed.ctl.check import usage_error

        return usage_error(exc.message, "--json" in argv)
    exc.parser.print_usage(sys.stderr)
    err(f"{exc.parser.prog}: error: {exc.message}")
    return EXIT_USAGE


def _command(args: argparse.Namespace) -> Callable[[Context], int]:
    words = tuple(w for w in (args.verb, getattr(args, "sub", None)) if w)
    module, function, _ = COMMANDS[words]
    loaded = importlib.import_module(f"paragon_licensed.ctl.{module}")
    command: Callable[[Context], int] = getattr(loaded, function)
    return command


def _unreachable(exc: Unreachable, ctx: Context) -> str:
    from paragon_licensed.ctl.service import unit_state

    try:
        source = ctx.endpoint.source
    except ConfigUnreadable:
        source = "the command line"
    given = ctx.args.socket or ctx.args.config
    hint = "another --socket PATH" if given else "--socket PATH or --config FILE"
    return (
        f"cannot reach paragon-licensed on {exc.path} (from {source}): {exc.reason}. {unit_state()} "
        f"(use {hint} if the daemon listens elsewhere)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _usage_error(exc, argv)
    if not args.verb:
        parser.print_help()
        return EXIT_USAGE
    ctx = Context(args)
    try:
        return _command(args)(ctx)
    except Unreachable as exc:
        err(_unreachable(exc, ctx))
        return EXIT_UNREACHABLE
    except Busy as exc:
        err(
            f"paragon-licensed on {exc.path} is running but busy: {exc.reason}. Try again; "
            "if it stays busy, `journalctl -u paragon-licensed` says who holds its connections."
        )
        return exc.exit_code
    except VarlinkError as exc:
        err(f"error: {exc.sentence()}")
        return exc.exit_code
    except (ConfigUnreadable, TooLarge) as exc:
        err(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
