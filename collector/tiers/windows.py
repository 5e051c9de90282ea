"""Rollup windows: calendar hours, days and months of one time zone, as UTC microseconds.

A day runs from one local midnight to the next, so it has 23 or 25 hours across a DST change.
Its hour windows start at its midnight and step one real hour; the last one is cut at the next
midnight (only zones whose offset changes by half an hour ever see a short one). Every hour
window lies in one day, and every day in one month, so each tier is rolled from whole windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
PARENT = {"1h": "1d", "1d": "1mo"}
"""The tier each rolled tier feeds; 1mo feeds nothing."""


@dataclass(frozen=True, slots=True)
class Window:
    """``[start_us, end_us)`` of one window of ``tier``."""

    tier: str
    start_us: int
    end_us: int


def utc_hour(ts_us: int) -> int:
    """The number of the UTC hour holding ``ts_us`` (what ingest marks as pending)."""
    return ts_us // HOUR_US


class Calendar:
    """Windows of the tiers in one time zone; day boundaries are cached."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._midnight = lru_cache(maxsize=4096)(self._midnight_us)

    def _midnight_us(self, day: date) -> int:
        # fold=0: a midnight skipped by DST maps to the transition, a repeated one to its first.
        local = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return (local - _EPOCH) // _MICROSECOND

    def _local_date(self, ts_us: int) -> date:
        return (_EPOCH + ts_us * _MICROSECOND).astimezone(self.zone).date()

    def day(self, ts_us: int) -> Window:
        """The local day holding ``ts_us``."""
        day = self._local_date(ts_us)
        while ts_us < self._midnight(day):
            day -= timedelta(days=1)
        while ts_us >= self._midnight(day + timedelta(days=1)):
            day += timedelta(days=1)
        return Window("1d", self._midnight(day), self._midnight(day + timedelta(days=1)))

    def hour(self, ts_us: int) -> Window:
        """The hour window holding ``ts_us``."""
        day = self.day(ts_us)
        start = day.start_us + (ts_us - day.start_us) // HOUR_US * HOUR_US
        return Window("1h", start, min(start + HOUR_US, day.end_us))

    def month(self, ts_us: int) -> Window:
        """The local calendar month holding ``ts_us``."""
        first = self._local_date(self.day(ts_us).start_us).replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return Window("1mo", self._midnight(first), self._midnight(following))

    def window(self, tier: str, ts_us: int) -> Window:
        """The window of ``tier`` (1h, 1d or 1mo) holding ``ts_us``."""
        return {"1h": self.hour, "1d": self.day, "1mo": self.month}[tier](ts_us)

    def hours_of_utc_hour(self, hour: int) -> list[Window]:
        """The hour windows overlapping UTC hour number ``hour`` (two in a +5:30 zone)."""
        windows = [self.hour(hour * HOUR_US)]
        while windows[-1].end_us < (hour + 1) * HOUR_US:
            windows.append(self.hour(windows[-1].end_us))
        return windows
