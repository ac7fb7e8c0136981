"""Output for people (aligned tables, plain sentences) and for programs (one JSON document).

Everything printed for people goes through ``out`` or ``err``, which show control
characters as escapes: a value that came from the network (a portal's message in
the history, a node name) cannot drive the reader's terminal. JSON escapes them
by itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from paragon_licensed.text import visible

TYPE_CHECKING = False  # typing costs ctl a few milliseconds at every start
if TYPE_CHECKING:
    from typing import Any


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], at_least: Sequence[int] = ()) -> str:
    """Columns as wide as their widest cell, or at least ``at_least`` (for pages printed apart)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [
        max([len(row[i]) for row in cells] + ([at_least[i]] if i < len(at_least) else []))
        for i in range(len(headers))
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {'' if v is None else v}" for k, v in pairs)


def human(name: str) -> str:
    """A machine name for people: needs_transfer becomes "needs transfer"."""
    return name.replace("_", " ")


def date(timestamp: str | None) -> str:
    return timestamp[:10] if timestamp else "-"


def when(timestamp: str | None) -> str:
    return timestamp.replace("T", " ").replace("Z", " UTC") if timestamp else "-"


def out(text: str = "") -> None:
    sys.stdout.write(visible(text) + "\n")


def err(text: str) -> None:
    sys.stderr.write(visible(text) + "\n")
