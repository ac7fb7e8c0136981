"""The daemon's metrics while ``metrics.listen`` is empty: nothing is counted or served.

A node without metrics never imports prometheus_client (nor the WSGI server under it);
``metrics.listen`` takes effect at a restart, so the choice is made once, at start.
"""

from __future__ import annotations


class NoMetrics:
    """What the daemon's code reports to ``Metrics``, dropped."""

    def operation(self, cause: str, outcome: str) -> None:
        """An online operation's end: not counted."""

    def portal_attempt(self, seconds: float, answered: bool) -> None:
        """One attempt to reach the portal: not timed."""

    def close(self) -> None:
        """Nothing to stop."""
