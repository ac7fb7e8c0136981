"""Generate the manual pages and the bash/zsh completion of the three programs.

Run at build time (``make man completions``), never at run time; the output goes under
``build/`` and is not committed. Everything comes from the argument parsers themselves:

- ``paragon-licensed ctl`` is argparse (``ctl.main.build_parser``): its manual page is
  argparse-manpage's rendering of that parser.
- ``paragon-licensed`` is a click group whose ``ctl`` command hands its arguments to
  argparse, so click cannot see inside ``ctl``. Its completion is shtab's, over one
  argparse tree: the click commands with their options, translated one to one, and
  ctl's own parser as the ``ctl`` subcommand. Its manual pages are click-man's (the
  ``ctl`` one replaced by argparse-manpage's).
- ``paragon-license-portal`` is click alone: click-man writes its manual pages and click's
  own shell completion writes its completion scripts (which ask the program itself, so
  they follow every option it has).

Usage: ``python scripts/man_completions.py {man,completions} OUT_DIR``.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

import click
import shtab
from build_manpages.manpage import Manpage
from click.shell_completion import get_completion_class
from click_man.core import write_man_pages

from paragon_licensed.ctl.main import build_parser as build_ctl_parser
from paragon_licensed.daemon.cli import cli as daemon_cli
from paragon_licensed.portal.cli import main as portal_cli

DAEMON = "paragon-licensed"
PORTAL = "paragon-license-portal"
SHELLS = ("bash", "zsh")
# Metavars that name a file or a folder: completed as such.
FILE_METAVARS = frozenset({"FILE", "PATH"})
DIRECTORY_METAVARS = frozenset({"DIR"})


def package_version() -> str:
    return version("paragon-licensed")


def _complete_paths(parser: argparse.ArgumentParser) -> None:
    """Mark every argument whose metavar names a file (or folder) for shtab, in the whole tree."""
    for action in parser._actions:
        if action.metavar in FILE_METAVARS:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        elif action.metavar in DIRECTORY_METAVARS:
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _complete_paths(sub)


def _add_click_params(parser: argparse.ArgumentParser, command: click.Command) -> None:
    """Each option and argument of a click command as the same argparse argument."""
    for param in command.params:
        if isinstance(param, click.Option):
            if param.hidden:
                continue
            names = [*param.opts, *param.secondary_opts]
            if param.is_flag:
                parser.add_argument(*names, action="store_true", help=param.help)
                continue
            action = parser.add_argument(
                *names,
                metavar=param.metavar or param.make_metavar(click.Context(command)),
                choices=list(param.type.choices) if isinstance(param.type, click.Choice) else None,
                help=param.help,
            )
            if isinstance(param.type, click.Path):
                action.complete = shtab.FILE  # type: ignore[attr-defined]
        elif isinstance(param, click.Argument):
            parser.add_argument(param.name or "ARG", nargs="*" if param.nargs == -1 else None)


def program_parser() -> argparse.ArgumentParser:
    """``paragon-licensed`` as one argparse tree: the daemon's click commands, and ctl's parser."""
    parser = argparse.ArgumentParser(prog=DAEMON, description=daemon_cli.help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in daemon_cli.commands.items():
        short = command.get_short_help_str()
        if name == "ctl":
            ctl = build_ctl_parser()
            commands.add_parser(name, help=short, description=ctl.description, parents=[ctl], add_help=False)
        else:
            _add_click_params(commands.add_parser(name, help=short, description=command.help), command)
    _complete_paths(parser)
    return parser


def ctl_man_page() -> str:
    parser = build_ctl_parser()
    page = Manpage(parser)
    page.description = parser.description
    page.source = f"{DAEMON} {package_version()}"
    page.manual = "paragon-licensed Manual"  # as click-man titles the others
    # argparse-manpage titles the page after the program, "paragon-licensed ctl"; a title
    # is one word, the page's name: paragon-licensed-ctl(1). The NAME line names the page
    # the same way, so that whatis (man -k) finds it.
    text = str(page).replace(".TH PARAGON\\-LICENSED CTL ", ".TH PARAGON\\-LICENSED\\-CTL ", 1)
    return text.replace(".SH NAME\nparagon\\-licensed ctl \\- ", ".SH NAME\nparagon\\-licensed\\-ctl \\- ", 1)


def write_man(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for path in out.glob("*.1"):
        path.unlink()
    release = package_version()
    write_man_pages(DAEMON, daemon_cli, version=release, target_dir=str(out))
    write_man_pages(PORTAL, portal_cli, version=release, target_dir=str(out))
    (out / f"{DAEMON}-ctl.1").write_text(ctl_man_page(), encoding="utf-8")
    return sorted(out.glob("*.1"))


def click_completion(shell: str, command: click.Command, name: str) -> str:
    variable = "_" + name.replace("-", "_").upper() + "_COMPLETE"
    completion = get_completion_class(shell)
    if completion is None:
        raise RuntimeError(f"click has no {shell} completion")
    return completion(command, {}, name, variable).source()


def completion_file(out: Path, shell: str, program: str) -> Path:
    """Where a shell looks for a program's completion: bash by name, zsh as ``_NAME``."""
    return out / shell / (program if shell == "bash" else f"_{program}")


def write_completions(out: Path) -> list[Path]:
    written = []
    parser = program_parser()
    for shell in SHELLS:
        (out / shell).mkdir(parents=True, exist_ok=True)
        scripts = {
            DAEMON: shtab.complete(parser, shell=shell),
            PORTAL: click_completion(shell, portal_cli, PORTAL),
        }
        for program, text in scripts.items():
            path = completion_file(out, shell, program)
            path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Generate manual pages or shell completion.")
    parser.add_argument("what", choices=["man", "completions"])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    written = write_man(args.out) if args.what == "man" else write_completions(args.out)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
