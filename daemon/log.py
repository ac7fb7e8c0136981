"""Operator logs: one line per event on stderr, with tenant, node and request id as key=value.

Under journald (``$JOURNAL_STREAM`` set) each line starts with its syslog
priority (``<4>``), so ``journalctl -p warning`` works without timestamps twice.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

logger = logging.getLogger("paragon_licensed")


class _Formatter(logging.Formatter):
    def __init__(self, journal: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s" if not journal else "%(message)s")
        self._journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record).replace("\n", " | ")
        if self._journal:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


def setup(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(journal=bool(os.environ.get("JOURNAL_STREAM"))))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _line(message: str, fields: dict[str, Any]) -> str:
    extra = " ".join(f"{k}={_quote(v)}" for k, v in fields.items() if v not in (None, ""))
    return f"{message} {extra}" if extra else message


def _quote(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if " " in text else text


def info(message: str, **fields: Any) -> None:
    logger.info(_line(message, fields))


def warning(message: str, **fields: Any) -> None:
    logger.warning(_line(message, fields))


def error(message: str, **fields: Any) -> None:
    logger.error(_line(message, fields))


def debug(message: str, **fields: Any) -> None:
    logger.debug(_line(message, fields))


class Throttle:
    """Repeated warnings of one kind from one source: the first one, then at most one line
    per window carrying the count of those suppressed, so no client can flood the journal."""

    def __init__(self, window: float = 60.0, sources: int = 1024) -> None:
        self.window = window
        self.sources = sources  # the oldest sources are forgotten beyond this many
        self._seen: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def warning(self, key: Hashable, message: str, **fields: Any) -> bool:
        """Log unless the same key logged within the window; True when a line was written."""
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        suppressed = last[1] if last is not None else 0
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > self.sources:
            self._seen.popitem(last=False)
        warning(message, **fields, suppressed=suppressed or None)
        return True


throttle = Throttle()
