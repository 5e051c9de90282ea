"""Alert spans older than the raw rows, read from the hourly rollups.

Only budgets and day-old baselines reach that far; each hour's aggregates count in the step
the hour starts in. Rules filtering or grouping by a dimension the rollups do not keep cannot be
read this way, and their spans start at the oldest raw row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from collector.ledger import events

_US = 1_000_000
_SPLIT = {
    # metric: events, values present, sum, min, max (as in the grid rows)
    "requests": ("requests", "requests", "requests", "1", "1"),
    "events": ("requests", "requests", "requests", "1", "1"),
    "errors": ("requests", "requests", "errors", "NULL", "NULL"),
    "unpriced_requests": ("requests", "requests", "unpriced", "NULL", "NULL"),
    "error_rate": ("requests", "requests", "errors", "NULL", "NULL"),
    "success_rate": ("requests", "requests", "requests - errors", "NULL", "NULL"),
    "cost_usd": ("requests", "requests - unpriced", "cost_usd", "NULL", "NULL"),
    "input_tokens": ("requests", "requests", "input_tokens", "NULL", "NULL"),
    "output_tokens": ("requests", "requests", "output_tokens", "NULL", "NULL"),
    "total_tokens": ("requests", "requests", "total_tokens", "NULL", "NULL"),
    "latency_ms": ("requests", "latency_count", "latency_sum", "latency_min", "latency_max"),
    "quality_score": ("quality_count", "quality_count", "quality_sum", "quality_min", "NULL"),
}


def raw_start(db: sqlite3.Connection) -> int | None:
    """The end of the last hourly rollup before the oldest raw event: raw rows start there."""
    oldest = events.oldest_us(db)
    row = db.execute(
        "SELECT max(window_end_us) FROM rollups WHERE tier = '1h' AND window_end_us <= ?",
        (2**62 if oldest is None else oldest,),
    ).fetchone()
    return row[0]


def readable(metric: str, dimensions: Sequence[str], tier_dimensions: Sequence[str]) -> bool:
    return metric in _SPLIT and set(dimensions) <= set(tier_dimensions)


def hourly_rows(
    metric: str,
    where: dict[str, str],
    group_by: Sequence[str],
    step_s: int,
    start_us: int,
    end_us: int,
) -> tuple[str, list[object]]:
    """SQL for ``step, d0.., events, values, sum, min, max`` of the hours in the range."""
    events, values, total, low, high = _SPLIT[metric]
    dims = "".join(f", {name}" for name in group_by)
    filters = "".join(f" AND {name} = ?" for name in where)
    sql = (
        f"SELECT window_start_us / {step_s * _US}{dims}, sum({events}), sum({values}),"
        f" total({total}), min({low}), max({high}) FROM rollups"
        f" WHERE tier = '1h' AND window_start_us >= ? AND window_end_us <= ?{filters}"
        f" GROUP BY 1{dims}"
    )
    return sql, [start_us, end_us, *where.values()]
