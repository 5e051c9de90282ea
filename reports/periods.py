"""Report periods in the reporting time zone: a calendar day, an ISO week (Mon-Sun), a month.

Bounds are local midnights as UTC microseconds, so a day across a DST change has 23 or 25
hours; each period knows the one before it and its trailing span (7 days, 4 weeks, 3 months).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

HOUR_US = 3_600_000_000
TRAILING = {"daily": 7, "weekly": 4, "monthly": 3}
"""How many periods the trailing average spans."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def midnight_us(day: date, zone: ZoneInfo) -> int:
    """Local midnight of ``day`` as UTC microseconds."""
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    return (local - _EPOCH) // timedelta(microseconds=1)


def local_date(ts_us: int, zone: ZoneInfo) -> date:
    return (_EPOCH + timedelta(microseconds=ts_us)).astimezone(zone).date()


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """``[first, end)`` local days of one report; ``label`` names its files."""

    kind: str
    first: date
    end: date
    zone: ZoneInfo

    @classmethod
    def containing(cls, kind: str, day: date, zone: ZoneInfo) -> Period:
        """The daily, weekly or monthly period holding ``day``."""
        if kind == "daily":
            return cls(kind, day, day + timedelta(days=1), zone)
        if kind == "weekly":
            monday = day - timedelta(days=day.weekday())
            return cls(kind, monday, monday + timedelta(days=7), zone)
        if kind == "monthly":
            first = day.replace(day=1)
            return cls(kind, first, _add_months(first, 1), zone)
        raise ValueError(f"unknown report kind {kind!r}; use daily, weekly or monthly")

    @classmethod
    def last_complete(cls, kind: str, now: datetime, zone: ZoneInfo) -> Period:
        """The latest period that has ended by ``now``."""
        return cls.containing(kind, now.astimezone(zone).date(), zone).previous()

    @classmethod
    def from_label(cls, kind: str, label: str, zone: ZoneInfo) -> Period:
        """The period a `label` names: ``2026-11-20``, ``2026-W47`` or ``2026-11``."""
        if kind == "weekly":
            year, week = label.split("-W")
            day = date.fromisocalendar(int(year), int(week), 1)
        elif kind == "monthly":
            day = date.fromisoformat(f"{label}-01")
        else:
            day = date.fromisoformat(label)
        return cls.containing(kind, day, zone)

    @property
    def label(self) -> str:
        if self.kind == "daily":
            return self.first.isoformat()
        if self.kind == "weekly":
            year, week, _ = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.first:%Y-%m}"

    @property
    def title(self) -> str:
        if self.kind == "daily":
            return f"{self.first:%A %d %B %Y}"
        if self.kind == "weekly":
            last = self.end - timedelta(days=1)
            return f"week {self.label} ({self.first:%d %b} - {last:%d %b %Y})"
        return f"{self.first:%B %Y}"

    @property
    def start_us(self) -> int:
        return midnight_us(self.first, self.zone)

    @property
    def end_us(self) -> int:
        return midnight_us(self.end, self.zone)

    def previous(self) -> Period:
        return Period.containing(self.kind, self.first - timedelta(days=1), self.zone)

    def trailing(self) -> list[int]:
        """The starts of the periods just before this one (7 days, 4 weeks, 3 months), oldest
        first; the last of them ends where this one starts."""
        starts, period = [], self
        for _ in range(TRAILING[self.kind]):
            period = period.previous()
            starts.append(period.start_us)
        return starts[::-1]

    def buckets(self) -> list[int]:
        """Chart bucket starts: each real hour from midnight (daily), else each local day."""
        if self.kind == "daily":
            return list(range(self.start_us, self.end_us, HOUR_US))
        days = (self.end - self.first).days
        return [midnight_us(self.first + timedelta(days=i), self.zone) for i in range(days)]

    def bucket_tier(self) -> str:
        """The rollup tier whose windows are the chart buckets."""
        return "1h" if self.kind == "daily" else "1d"
