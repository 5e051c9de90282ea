"""Numbers as a report shows them: counts with separators, USD, rates, deltas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

_COUNTS = frozenset({"requests", "input_tokens", "output_tokens", "cache_read_tokens"})
_COUNTS |= {"unpriced_requests", "quality_count", "total_tokens", "errors"}


def value(key: str, number: Any) -> str:
    """One figure, by what it measures."""
    if number is None:
        return "-"
    if key in _COUNTS:
        return f"{round(number):,}"
    if key == "cost_usd":
        return f"${number:,.2f}" if abs(number) >= 1 or number == 0 else f"${number:.4f}"
    if key == "error_rate":
        return f"{number * 100:.2f}%"
    if key.startswith("latency"):
        return f"{number:,.0f} ms"
    return f"{number:.3f}"


def delta(key: str, current: float | None, base: float | None) -> str:
    """The change from ``base``: percentage points for the error rate, else relative."""
    if current is None or base is None:
        return "-"
    if key == "error_rate":
        return f"{(current - base) * 100:+.2f} pp"
    if base == 0:
        return "new" if current else "±0%"
    return f"{(current - base) / base * 100:+.1f}%"


def share(part: float | None, whole: float | None) -> str:
    if not part or not whole:
        return "-"
    return f"{part / whole * 100:.1f}%"


def when(ts_us: int | None, zone: ZoneInfo) -> str:
    """A local date and time, or ``-``."""
    if ts_us is None:
        return "-"
    return f"{datetime.fromtimestamp(ts_us / 1e6, UTC).astimezone(zone):%Y-%m-%d %H:%M}"
