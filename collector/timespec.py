"""Time arguments on the command line: ISO 8601, ``now``, ``today``, ``yesterday``, ``-1h``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_RELATIVE = re.compile(r"^-(\d+)(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, zone: ZoneInfo, now: datetime | None = None) -> datetime:
    """An aware datetime; naive ISO values and day names are read in ``zone``."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if text == "now":
        return now
    if text in ("today", "yesterday"):
        midnight = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        day = midnight.date() - timedelta(days=1 if text == "yesterday" else 0)
        return datetime(day.year, day.month, day.day, tzinfo=zone)
    if match := _RELATIVE.match(text):
        return now - timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; use ISO 8601 (2026-11-20 or 2026-11-20T10:00:00+01:00),"
            " now, today, yesterday, or a relative time such as -1h or -7d"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
