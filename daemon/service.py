"""`paragon-licensed run`: logging, the event loop, and the process exit code."""

from __future__ import annotations

import anyio

from paragon_licensed.daemon import log
from paragon_licensed.daemon.app import Daemon
from paragon_licensed.daemon.config import Config


def run_daemon(config: Config, config_path: str) -> int:
    log.setup()
    daemon = Daemon(config, config_path)
    try:
        return anyio.run(daemon.run)
    except KeyboardInterrupt:
        return 0
