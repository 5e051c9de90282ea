"""Silences: the configured ones and those stored in the ledger (``llm-collector silence add``).

Both the outbox (when it queues) and the delivery (right before it sends) ask, so a silence
added while a notification waits out ``group_wait`` still stops it, as in Alertmanager.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from alerting import store
from alerting.clock import to_us
from schemas.alerting import Silence


class Silences:
    """Whether a silence covers a label set at a given time."""

    def __init__(self, configured: Sequence[Silence] = ()) -> None:
        self.configured = [
            (s.matchers, to_us(s.starts_at) if s.starts_at else 0, to_us(s.ends_at))
            for s in configured
        ]

    def cover(self, db: sqlite3.Connection, labels: dict[str, str], now_us: int) -> bool:
        """Whether a configured or stored silence covers ``labels`` at ``now_us``."""
        return self.at(db, now_us)(labels)

    def at(self, db: sqlite3.Connection, now_us: int) -> Callable[[dict[str, str]], bool]:
        """A test of label sets against the silences active at ``now_us`` (read once)."""
        stored = [(s.matchers, s.starts_us, s.ends_us) for s in store.active_silences(db, now_us)]
        active = [
            matchers
            for matchers, starts, ends in [*self.configured, *stored]
            if starts <= now_us < ends
        ]

        def covered(labels: dict[str, str]) -> bool:
            return any(
                all(labels.get(name) == value for name, value in matchers.items())
                for matchers in active
            )

        return covered
