"""The wall clock, and the event times the collector accepts: from a fixed instant to the clock
plus a margin.

The upper end moves with the clock, read at each check, so a long-running daemon accepts
today's events tomorrow too. The parser quarantines events outside the range and the InfluxDB
encoder never sends one (rows stored before the range existed included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collector.timespec import to_us
from schemas.config import TimestampsConfig
from schemas.durations import format_duration


def wall_clock_us() -> int:
    """Now in microseconds since the epoch (a module function: parse workers pickle it)."""
    return time.time_ns() // 1000


def iso_us(ts_us: int) -> str:
    """A UTC instant as ISO 8601 with a ``Z``."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_us)
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``[earliest_us, now_us() + ahead_us]``, in microseconds since the epoch."""

    earliest_us: int
    ahead_us: int
    now_us: Callable[[], int] = wall_clock_us

    @classmethod
    def from_config(
        cls, config: TimestampsConfig, now_us: Callable[[], int] = wall_clock_us
    ) -> TimeRange:
        return cls(to_us(config.earliest), config.ahead // timedelta(microseconds=1), now_us)

    def outside(self, ts_us: int) -> str | None:
        """Why ``ts_us`` is outside the range, or None when it is inside."""
        if ts_us < self.earliest_us:
            return f"is before ingest.timestamps.earliest ({iso_us(self.earliest_us)})"
        now = self.now_us()
        if ts_us > now + self.ahead_us:
            ahead = format_duration(timedelta(microseconds=self.ahead_us))
            return f"is more than ingest.timestamps.ahead ({ahead}) after the clock ({iso_us(now)})"
        return None


DEFAULT_RANGE = TimeRange.from_config(TimestampsConfig.model_validate({}))
"""1970 to the wall clock + 1 day."""
