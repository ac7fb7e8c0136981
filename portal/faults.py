"""Testing aids: added latency, injected failures, held answers and a missing endpoint, for testing clients.

Only the HTTP server consults this, once per API request. Latency and injected failures
come before anything is recorded: a request answered with an injected failure changes
nothing, so its retry succeeds. A held answer comes after: the request was processed and
recorded, and its answer waits until released, so a test knows a client is mid-call.
"""

from __future__ import annotations

import random
import threading
import time

from paragon_licensed.portal.problems import PROBLEMS, Problem


class Faults:
    """The options ``--latency``, ``--fail-*``, ``--retry-after``, ``--hold-after`` and
    ``--without-query``."""

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        fail_first: int = 0,
        fail_rate: float = 0.0,
        fail_code: str = "internal",
        retry_after: int = 1,
        hold_after: int | None = None,
        without_query: bool = False,
    ) -> None:
        if fail_code not in PROBLEMS:
            raise ValueError(f"unknown problem code {fail_code!r}")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("the failure rate must be between 0 and 1")
        self.latency = latency_ms / 1000
        self.fail_first = fail_first
        self.fail_rate = fail_rate
        self.fail_code = fail_code
        self.retry_after = retry_after
        self.hold_after = hold_after
        self.without_query = without_query  # answer POST /licenses/current/query as an unknown path
        self._seen = 0
        self._answered = 0
        self._lock = threading.Lock()
        self._released = threading.Event()

    def delay(self) -> None:
        """Sleep the configured latency (in the request's own thread)."""
        if self.latency > 0:
            time.sleep(self.latency)

    def injected(self) -> Problem | None:
        """The failure to answer this request with, if any."""
        with self._lock:
            self._seen += 1
            first = self._seen <= self.fail_first
        if first:
            why = f"the first {self.fail_first} requests fail (--fail-first)"
        elif self.fail_rate > 0 and random.random() < self.fail_rate:
            why = f"{self.fail_rate:g} of requests fail (--fail-rate)"
        else:
            return None
        return Problem(self.fail_code, f"injected failure, a testing aid: {why}")

    def hold(self) -> None:
        """Hold a processed POST's answer, once ``hold_after`` were answered, until released."""
        if self.hold_after is None:
            return
        with self._lock:
            self._answered += 1
            held = self._answered > self.hold_after
        if held:
            self._released.wait()

    def release(self) -> None:
        """Answer every held request, and hold no more (SIGUSR1 to ``serve``)."""
        self._released.set()
