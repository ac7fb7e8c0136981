"""Operator logs: one line per event on stderr, with tenant, node and request id as key=value.

Under journald (``$JOURNAL_STREAM`` set) each line starts with its syslog
priority (``<4>``), so ``journalctl -p warning`` works without timestamps twice.
"""

from __future__ import annotations

import logging
import os
import sys
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
