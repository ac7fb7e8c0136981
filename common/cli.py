"""The ``paragon-licensed`` entry point.

``ctl`` is dispatched before anything else is imported: it is the command
monitoring agents run every few seconds, so it must not pay for click, anyio or
the daemon's modules. ``run`` and ``run --config FILE`` go straight to the
daemon too, which then does not keep click in memory for its whole life; every
other command line (help, the other commands, a mistake) is click's.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["ctl"]:
        from paragon_licensed.ctl.main import main as ctl_main

        sys.exit(ctl_main(argv[1:]))
    if argv[:1] == ["run"] and (config := _run_config(argv[1:])) is not None:
        from paragon_licensed.daemon.service import main as run

        sys.exit(run(config or None))
    from paragon_licensed.daemon.cli import cli

    cli(prog_name="paragon-licensed")


def _run_config(args: list[str]) -> str | None:
    """The configuration of a plain ``run`` ("" for the default), or None: click decides."""
    if not args:
        return ""
    if len(args) == 2 and args[0] == "--config" and args[1] and not args[1].startswith("-"):
        return args[1]
    if len(args) == 1 and args[0].startswith("--config=") and len(args[0]) > len("--config="):
        return args[0].removeprefix("--config=")
    return None
