"""The daemon's own commands: ``run``, ``identity`` and ``check-config``."""

from __future__ import annotations

import os
import sys

import click

from paragon_licensed.daemon.config import Config, ConfigError, default_config_path, load_config

CONFIG_HELP = (
    "Configuration file (default: $PARAGON_LICENSED_CONFIG or /etc/paragon-licensed/paragon-licensed.toml)."
)


def _load(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)


def _paths_usable(config: Config, source: str, disk_faults: bool) -> None:
    """Exit 2 with one line per problem when the file system cannot hold what the daemon needs."""
    from paragon_licensed.daemon.pathcheck import path_problems

    problems = path_problems(config, disk_faults)
    if problems:
        click.echo("\n".join(p.line(source) for p in problems), err=True)
        sys.exit(ConfigError.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """The license daemon of a print-management installation's management nodes."""


@cli.command(short_help="Run the daemon in the foreground (systemd runs this).")
@click.option("--config", "config_path", metavar="FILE", help=CONFIG_HELP)
def run(config_path: str | None) -> None:
    """Run the daemon in the foreground (systemd runs this)."""
    from paragon_licensed.daemon.service import main

    sys.exit(main(config_path))


@cli.command(short_help="This node's computer ID and its sources, computed locally.")
@click.option("--config", "config_path", metavar="FILE", help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def identity(config_path: str | None, as_json: bool) -> None:
    """Print this node's computer ID, computed locally, and the sources it came from."""
    from paragon_licensed.daemon.identity_command import print_identity

    sys.exit(print_identity(_load(config_path), as_json))


@cli.command("check-config", short_help="Validate a configuration file (exit 0, or 2).")
@click.option("--config", "config_path", metavar="FILE", help=CONFIG_HELP)
def check_config(config_path: str | None) -> None:
    """Validate a configuration file: exit 0, or 2 with one line per problem."""
    from paragon_licensed.daemon.keys import load_keys
    from paragon_licensed.licensefile import KeyFileError

    config = _load(config_path)
    source = config_path or default_config_path()
    _paths_usable(config, source, disk_faults=True)
    try:
        keys = load_keys(config)
    except KeyFileError as exc:
        click.echo(
            f"{source}: portal.public_keys: expected a readable Ed25519 public key, found {exc}", err=True
        )
        sys.exit(2)
    found = f"{len(keys)} portal public key(s) found"
    if config_path is None and "PARAGON_LICENSED_CONFIG" not in os.environ and not os.path.exists(source):
        click.echo(f"no configuration file at {source}: the built-in defaults apply and are valid ({found})")
        return
    click.echo(f"{source}: configuration is valid ({found})")


@cli.command(
    short_help="Talk to the running daemon over its control socket.",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def ctl(args: tuple[str, ...]) -> None:
    """Talk to the running daemon over its control socket (see `ctl --help`)."""
    from paragon_licensed.ctl.main import main as ctl_main

    sys.exit(ctl_main(list(args)))
