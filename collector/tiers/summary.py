"""Summaries over a rollup tier, with the keys of `collector.tiers.raw_summary`.

A tier's window counts when it starts inside ``[since, until)``. Sums are exact; percentiles
come from the merged sketches of the windows and groups (1% relative accuracy), never from
averaging the windows' percentiles.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from collector.tiers.raw_summary import METRIC_KEYS, check_dimensions, group_sort_key
from collector.tiers.rollup import sealed_before
from collector.tiers.store import METRIC_COLUMNS, Aggregate, aggregate_from_row


def default_tier(db: sqlite3.Connection, since_us: int) -> str:
    """The finest tier that still holds ``since``: retention has not deleted it there yet."""
    for tier, above in (("raw", "1h"), ("1h", "1d"), ("1d", "1mo")):
        deleted_before = sealed_before(db, above)
        if deleted_before is None or since_us >= deleted_before:
            return tier
    return "1mo"


def summarize_tier(
    db: sqlite3.Connection,
    tier: str,
    since_us: int,
    until_us: int,
    by: Sequence[str],
    grouped: Sequence[str],
) -> dict[str, Any]:
    """``{"totals", "groups"}`` like `collector.tiers.raw_summary.summarize`, from ``tier``'s rows.

    ``grouped`` are the dimensions the tiers are grouped by; ``by`` must be among them.
    """
    check_dimensions(list(by))
    missing = [name for name in by if name not in grouped]
    if missing:
        raise ValueError(
            f"the tiers are grouped by {', '.join(grouped) or 'nothing'}, not by "
            f"{', '.join(missing)}; use --tier raw"
        )
    select = "".join(f"{name}, " for name in by)
    rows = db.execute(
        f"SELECT {select}{', '.join(METRIC_COLUMNS)}, latency_sketch FROM rollups"
        " WHERE tier = ? AND window_start_us >= ? AND window_start_us < ?",
        (tier, since_us, until_us),
    )
    total = Aggregate()
    groups: dict[tuple[Any, ...], Aggregate] = {}
    for row in rows:
        aggregate = aggregate_from_row(row[len(by) :])
        total.merge(aggregate)
        if by:
            groups.setdefault(tuple(row[: len(by)]), Aggregate()).merge(aggregate)
    return {
        "totals": metrics(total),
        "groups": [
            dict(zip(by, key, strict=True)) | metrics(group)
            for key, group in sorted(groups.items(), key=lambda kv: group_sort_key(kv[0]))
        ],
    }


def metrics(aggregate: Aggregate) -> dict[str, Any]:
    """The `METRIC_KEYS` of one aggregate."""
    a = aggregate
    percentiles = a.percentiles()
    values = {
        "requests": a.requests,
        "errors": a.errors,
        "error_rate": a.errors / a.requests if a.requests else None,
        "input_tokens": a.input_tokens,
        "output_tokens": a.output_tokens,
        "total_tokens": a.total_tokens,
        "cache_read_tokens": a.cache_read_tokens,
        "cost_usd": a.cost_usd if a.unpriced < a.requests else None,
        "unpriced_requests": a.unpriced,
        "latency_ms_mean": a.latency_sum / a.latency_count if a.latency_count else None,
        "latency_ms_p50": percentiles[50],
        "latency_ms_p90": percentiles[90],
        "latency_ms_p95": percentiles[95],
        "latency_ms_p99": percentiles[99],
        "latency_ms_max": a.latency_max,
        "quality_mean": a.quality_sum / a.quality_count if a.quality_count else None,
        "quality_count": a.quality_count,
    }
    return {key: values[key] for key in METRIC_KEYS}
