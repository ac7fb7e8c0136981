"""The pieces that bound what a hostile peer can do, tested in-process.

Outside text made safe (``paragon_licensed.text``), the control socket's framing
limits, its per-user admission, and the log throttle.
"""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paragon_licensed import text
from paragon_licensed.daemon import log
from paragon_licensed.daemon.control.admission import Admission, ConnectionRate, Refusal
from paragon_licensed.daemon.control.framing import MAX_DEPTH, FrameBuffer, MessageTooLarge, too_deep
from paragon_licensed.daemon.control.peer import Peer

# -- text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain sentence.", "plain sentence."),
        ("\x1b[2J\x1b[31mred\x1b[0m", "red"),
        ("title\x1b]0;evil\x07 after", "title after"),
        ("line one\r\nline two\tend", "line one line two end"),
        ("bell\x07 and \x9b1m c1", "bell and c1"),
        ("right\u202eto left\u2066", "right to left"),
    ],
)
def test_clean_keeps_one_printable_line(raw: str, clean: str) -> None:
    assert text.clean(raw) == clean


def test_clean_caps_the_length() -> None:
    cleaned = text.clean("y" * 100_000)
    assert len(cleaned) == text.MAX_TEXT
    assert cleaned.endswith("…")
    assert text.clean(12345) == "12345"


@given(st.text())
def test_clean_output_has_no_control_characters(raw: str) -> None:
    cleaned = text.clean(raw, 300)
    assert len(cleaned) <= 300
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in cleaned)


def test_visible_escapes_what_a_terminal_would_act_on() -> None:
    assert text.visible("a table\n\twith tabs") == "a table\n\twith tabs"
    assert text.visible("\x1b[2Jgone") == "\\x1b[2Jgone"
    assert text.visible("c1 \x9b and \u202e") == "c1 \\x9b and \\u202e"


# The character classes as regular expressions: text.py keeps them as translation tables.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]")
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SPECIAL = ["\u200b", "\u202e", "\u2066", "\ufeff", "\u00a0", "\u2028", "\x1b[31m", "\x1b]0;t\x07", "\x9b2J"]
CONTROLS = st.sampled_from([*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), *SPECIAL])


@given(st.lists(st.one_of(st.text(), CONTROLS)).map("".join))
def test_clean_and_visible_match_the_regular_expressions(raw: str) -> None:
    expected = " ".join(CONTROL.sub(" ", SEQUENCE.sub("", raw)).split())
    assert text.clean(raw, 10**6) == expected
    escaped = UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), raw)
    assert text.visible(raw) == escaped


# -- framing


def test_frames_are_split_on_nul() -> None:
    frames = FrameBuffer(100)
    frames.feed(b'{"a": 1}\0{"b"')
    assert frames.next() == b'{"a": 1}'
    assert frames.next() is None
    frames.feed(b": 2}\0")
    assert frames.next() == b'{"b": 2}'


def test_everything_buffered_counts_against_the_limit() -> None:
    frames = FrameBuffer(100)
    frames.feed(b"x" * 50 + b"\0" + b"y" * 50)  # a message of the limit and its NUL fit
    with pytest.raises(MessageTooLarge):
        frames.feed(b"\0z")  # complete messages queued behind a call count too


@pytest.mark.parametrize(
    ("message", "deep"),
    [
        (b'{"method": "x", "parameters": {"a": [1, 2, {"b": []}]}}', False),
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, False),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), True),
        (b'{"document": "' + b"[{" * 10_000 + b'"}', False),  # brackets inside a string
        (b'{"a": "\\"[[[", "b": ' + b"{" * 40 + b"}" * 40 + b"}", True),
        (b"[]" * 10_000, False),  # many brackets, shallow
    ],
)
def test_nesting_is_measured_outside_strings(message: bytes, deep: bool) -> None:
    assert too_deep(message) is deep


# -- admission


ROOT = Peer(pid=1, uid=0, gid=0)


def user(uid: int) -> Peer:
    return Peer(pid=1000 + uid, uid=uid, gid=uid)


def test_each_user_gets_a_share_and_the_administrators_keep_their_slots() -> None:
    admission = Admission(lambda: (10, 3, 4))  # total, per user, reserved
    assert [admission.admit(user(1000)) for _ in range(4)] == [None, None, None, Refusal("user", 3)]
    admission.release(user(1000))
    assert admission.admit(user(1000)) is None  # a freed slot is the user's again
    assert [admission.admit(user(1001)) for _ in range(3)] == [None, None, None]
    assert admission.needs_group_lookup(user(1002))  # 6 of the 6 open slots are taken
    assert admission.admit(user(1002)) == Refusal("total", 6)
    assert admission.admit(user(1002), admin=True) is None  # a member of the admin group
    assert [admission.admit(ROOT) for _ in range(4)] == [None, None, None, Refusal("total", 10)]
    assert admission.refused == 3


def test_root_is_not_limited_per_user() -> None:
    admission = Admission(lambda: (100, 2, 10))
    assert all(admission.admit(ROOT) is None for _ in range(50))
    assert not admission.needs_group_lookup(ROOT)


def test_the_connection_rate_is_a_token_bucket_per_user() -> None:
    rate = ConnectionRate(lambda: 10.0)  # a burst of 20
    assert sum(rate.allow(1000) for _ in range(50)) == 20
    assert rate.allow(1001)  # another user has its own bucket
    assert rate.dropped == 30


# -- log throttle


def test_repeated_warnings_from_one_source_are_counted_not_written(caplog: pytest.LogCaptureFixture) -> None:
    throttle = log.Throttle(window=3600)
    with caplog.at_level(logging.WARNING, logger="paragon_licensed"):
        log.logger.propagate = True
        try:
            written = [throttle.warning(("denied", 65534), "permission denied", uid=65534) for _ in range(50)]
            assert throttle.warning(("denied", 1000), "permission denied", uid=1000)
            throttle.window = 0  # the window has passed: the next line carries the count
            assert throttle.warning(("denied", 65534), "permission denied", uid=65534)
        finally:
            log.logger.propagate = False
    assert written == [True] + [False] * 49
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "permission denied uid=65534",
        "permission denied uid=1000",
        "permission denied uid=65534 suppressed=49",
    ]
