"""`paragon-licensed run`: the configuration, logging, the event loop, and the process exit code.

``main`` is the whole command. The program's entry point (``paragon_licensed.cli``)
calls it directly for ``run`` and ``run --config FILE``, so the daemon, a
long-running process, does not hold click in memory; every other form (``--help``,
a mistake) goes through click, whose ``run`` command calls the same function.
"""

from __future__ import annotations

import sys

from paragon_licensed.daemon.config import Config, ConfigError, default_config_path, load_config


def main(config_path: str | None) -> int:
    """Load and check the configuration (exit 2 with one line per problem), then run."""
    from paragon_licensed.daemon.pathcheck import path_problems

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    source = config_path or default_config_path()
    # A read-only or full disk is survived (and reported in status), not refused.
    problems = path_problems(config, disk_faults=False)
    if problems:
        print("\n".join(p.line(source) for p in problems), file=sys.stderr)
        return ConfigError.exit_code
    return run_daemon(config, source)


def run_daemon(config: Config, config_path: str) -> int:
    import anyio

    from paragon_licensed.daemon import log
    from paragon_licensed.daemon.app import Daemon

    log.setup()
    daemon = Daemon(config, config_path)
    try:
        return anyio.run(daemon.run)
    except KeyboardInterrupt:
        return 0
