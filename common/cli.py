"""The ``paragon-licensed`` entry point.

``ctl`` is dispatched before anything else is imported: it is the command
monitoring agents run every few seconds, so it must not pay for click, anyio or
the daemon's modules.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["ctl"]:
        from paragon_licensed.ctl.main import main as ctl_main

        sys.exit(ctl_main(argv[1:]))
    from paragon_licensed.daemon.cli import cli

    cli(prog_name="paragon-licensed")
