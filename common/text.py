"""Text from outside made safe: for storing and logging (clean) and for a terminal (visible).

Text the daemon did not write itself (a portal's problem detail, a redirect's
Location, a peer's reason) may hold terminal escape sequences or be huge. ``clean``
keeps it to one printable line of bounded size before it is stored, logged or sent
on; ``visible`` is what ctl applies to everything it prints, so that even a value
that slipped through cannot drive the reader's terminal. Standard library only:
ctl imports it.
"""

from __future__ import annotations

import functools
import re

TYPE_CHECKING = False  # ctl imports this module: typing would cost it milliseconds at every start
if TYPE_CHECKING:
    from typing import Final

MAX_TEXT: Final = 2048  # characters of outside text kept; a portal's detail is a sentence or two

# Character sets as translation tables, not regular expressions: compiling a class with
# ranges above U+00FF costs milliseconds, which ctl would pay at every start.
# C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text.
_CONTROL: Final = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2066, 0x2069),
    (0xFEFF, 0xFEFF),
)
_TO_SPACE: Final = {c: " " for low, high in _CONTROL for c in range(low, high + 1)}
# What ctl shows escaped: controls except newline and tab (its own tables and sentences use them).
_UNPRINTABLE: Final = ((0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0x202A, 0x202E), (0x2066, 0x2069))
_ESCAPED: Final = {
    c: chr(c).encode("unicode_escape").decode("ascii")
    for low, high in _UNPRINTABLE
    for c in range(low, high + 1)
}


@functools.cache
def _sequence() -> re.Pattern[str]:
    """An escape sequence (CSI ... final byte, or OSC ... BEL/ST): it goes as a whole, not byte by byte."""
    return re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]")


def clean(text: object, limit: int = MAX_TEXT) -> str:
    """One line of printable text, at most ``limit`` characters (an ellipsis marks a cut)."""
    value = text if isinstance(text, str) else str(text)
    if len(value) > 4 * limit:  # never scan megabytes for a sentence's worth
        value = value[: 4 * limit]
    if not value.isprintable():  # else there is no control character, nor a sequence's ESC
        value = _sequence().sub("", value).translate(_TO_SPACE)
    value = " ".join(value.split())
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


def visible(text: str) -> str:
    """The text with every control character a terminal would act on shown as an escape."""
    if text.isprintable():
        return text
    return text.translate(_ESCAPED)
