"""Times on the wire and in output: RFC 3339 in UTC, second precision."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def rfc3339(seconds: float | None = None) -> str:
    moment = time.time() if seconds is None else seconds
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_datetime(value: datetime) -> float:
    return value.timestamp()


def days_left(until: float, now: float | None = None) -> int:
    """Whole days until a moment (negative once it passed), rounding toward the past, by the
    daemon's trusted clock."""
    from paragon_licensed.daemon import clock

    remaining = until - (clock.now() if now is None else now)
    return int(remaining // 86400)
