"""Text from outside made safe: for storing and logging (clean) and for a terminal (visible).

Text the daemon did not write itself (a portal's problem detail, a redirect's
Location, a peer's reason) may hold terminal escape sequences or be huge. ``clean``
keeps it to one printable line of bounded size before it is stored, logged or sent
on; ``visible`` is what ctl applies to everything it prints, so that even a value
that slipped through cannot drive the reader's terminal. Standard library only:
ctl imports it.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # ctl imports this module: typing would cost it milliseconds at every start
if TYPE_CHECKING:
    from typing import Final

MAX_TEXT: Final = 2048  # characters of outside text kept; a portal's detail is a sentence or two

# C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
# An escape sequence (CSI ... final byte, or OSC ... BEL/ST) goes as a whole, not byte by byte.
_SEQUENCE: Final = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]"
)
# What ctl shows escaped: controls except newline and tab (its own tables and sentences use them).
_UNPRINTABLE: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: object, limit: int = MAX_TEXT) -> str:
    """One line of printable text, at most ``limit`` characters (an ellipsis marks a cut)."""
    value = text if isinstance(text, str) else str(text)
    if len(value) > 4 * limit:  # never scan megabytes for a sentence's worth
        value = value[: 4 * limit]
    value = _SEQUENCE.sub("", value)
    value = _CONTROL.sub(" ", value)
    value = " ".join(value.split())
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


def visible(text: str) -> str:
    """The text with every control character a terminal would act on shown as an escape."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
