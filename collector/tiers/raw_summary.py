"""Totals and per-group figures over a time range of raw ledger events.

Percentiles over raw events are exact: linear interpolation between the closest ranks (the
``inclusive`` method of `statistics.quantiles`, numpy's default).
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import defaultdict
from typing import Any

from schemas.config import ALLOWED_DIMENSIONS

METRIC_KEYS = (
    "requests",
    "errors",
    "error_rate",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cost_usd",
    "unpriced_requests",
    "latency_ms_mean",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p95",
    "latency_ms_p99",
    "latency_ms_max",
    "quality_mean",
    "quality_count",
)
SCORE_DIMENSIONS = frozenset({"model", "task_type", "tenant_id"})
"""Dimensions a score event carries; it falls into groups by these only."""

_CALL_SUMS = (
    "count(*), coalesce(sum(status = 'error'), 0), coalesce(sum(input_tokens), 0),"
    " coalesce(sum(output_tokens), 0), coalesce(sum(total_tokens), 0),"
    " coalesce(sum(cache_read_tokens), 0), coalesce(sum(cost_usd), 0),"
    " coalesce(sum(price_source IS NULL), 0), coalesce(sum(quality_score), 0),"
    " count(quality_score)"
)


def exact_percentiles(values: list[float]) -> dict[int, float | None]:
    """p50/p90/p95/p99 by linear interpolation between closest ranks."""
    if not values:
        return dict.fromkeys((50, 90, 95, 99))
    if len(values) == 1:
        return dict.fromkeys((50, 90, 95, 99), values[0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {q: cuts[q - 1] for q in (50, 90, 95, 99)}


def check_dimensions(names: list[str]) -> None:
    unknown = [n for n in names if n not in ALLOWED_DIMENSIONS]
    if unknown:
        raise ValueError(
            f"cannot group by {', '.join(unknown)}; choose from {', '.join(ALLOWED_DIMENSIONS)}"
        )


class _Group:
    def __init__(self) -> None:
        self.sums = [0] * 10
        self.latencies: list[float] = []
        self.quality_sum = 0.0
        self.quality_count = 0

    def metrics(self) -> dict[str, Any]:
        requests, errors, t_in, t_out, t_total, t_cache, cost, unpriced, q_sum, q_count = self.sums
        quality_count = q_count + self.quality_count
        quality_sum = q_sum + self.quality_sum
        latencies = self.latencies
        percentiles = exact_percentiles(latencies)
        return {
            "requests": requests,
            "errors": errors,
            "error_rate": errors / requests if requests else None,
            "input_tokens": t_in,
            "output_tokens": t_out,
            "total_tokens": t_total,
            "cache_read_tokens": t_cache,
            "cost_usd": cost if unpriced < requests else None,
            "unpriced_requests": unpriced,
            "latency_ms_mean": statistics.fmean(latencies) if latencies else None,
            "latency_ms_p50": percentiles[50],
            "latency_ms_p90": percentiles[90],
            "latency_ms_p95": percentiles[95],
            "latency_ms_p99": percentiles[99],
            "latency_ms_max": max(latencies) if latencies else None,
            "quality_mean": quality_sum / quality_count if quality_count else None,
            "quality_count": quality_count,
        }


def summarize(
    db: sqlite3.Connection, since_us: int, until_us: int, by: list[str]
) -> dict[str, Any]:
    """``{"totals": {...}, "groups": [{<dims>, <metrics>}]}`` over ``[since, until)``."""
    check_dimensions(by)
    groups: dict[tuple[Any, ...], _Group] = defaultdict(_Group)
    total = _Group()
    dims = ", ".join(by)
    select = f"{dims}, " if by else ""
    group_by = f" GROUP BY {dims}" if by else ""
    window = "ts_us >= ? AND ts_us < ?"
    span = (since_us, until_us)
    for row in db.execute(f"SELECT {select}{_CALL_SUMS} FROM calls WHERE {window}{group_by}", span):
        key, sums = tuple(row[: len(by)]), row[len(by) :]
        if sums[0]:
            groups[key].sums = list(sums)
            total.sums = [a + b for a, b in zip(total.sums, sums, strict=True)]
    order = f" ORDER BY {dims}" if by else ""
    cursor = db.execute(
        f"SELECT {select}latency_ms FROM calls WHERE {window} AND latency_ms IS NOT NULL{order}",
        span,
    )
    for row in cursor:
        groups[tuple(row[:-1])].latencies.append(row[-1])
    for group in groups.values():
        group.latencies.sort()
        total.latencies.extend(group.latencies)
    total.latencies.sort()
    _add_scores(db, span, by, groups, total)
    return {
        "totals": total.metrics(),
        "groups": [
            dict(zip(by, key, strict=True)) | group.metrics()
            for key, group in sorted(groups.items(), key=lambda kv: group_sort_key(kv[0]))
        ]
        if by
        else [],
    }


def _add_scores(
    db: sqlite3.Connection,
    span: tuple[int, int],
    by: list[str],
    groups: dict[tuple[Any, ...], _Group],
    total: _Group,
) -> None:
    columns = [name if name in SCORE_DIMENSIONS else "NULL" for name in by]
    select = "".join(f"{c}, " for c in columns)
    group_by = f" GROUP BY {', '.join(columns)}" if by else ""
    rows = db.execute(
        f"SELECT {select}count(value), coalesce(sum(value), 0) FROM scores"
        f" WHERE ts_us >= ? AND ts_us < ? AND value BETWEEN 0 AND 1{group_by}",
        span,
    )
    for row in rows:
        count, value_sum = row[-2:]
        if not count:
            continue
        group = groups[tuple(row[:-2])]
        group.quality_count += count
        group.quality_sum += value_sum
        total.quality_count += count
        total.quality_sum += value_sum


def group_sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    """Groups in value order, NULL last."""
    return tuple((value is None, str(value)) for value in key)
