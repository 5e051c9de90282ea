"""One hour window's groups from the raw ``calls`` and ``scores`` tables, in three SQL queries.

Sums, minima and maxima come from one GROUP BY; the latency sketch from a second that counts
events per (group, bin key), so Python sees a few hundred bins per group, never one row per
event. Scores follow `collector.summary`: values in 0..1 count towards quality, in the groups
of the dimensions a score carries (`SCORE_DIMENSIONS`).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from collector import sketch as sketches
from collector.summary import SCORE_DIMENSIONS
from collector.tiers import METRIC_COLUMNS, Aggregate, Group

_SUMS = (
    "count(*)",
    "coalesce(sum(status = 'error'), 0)",
    "coalesce(sum(input_tokens), 0)",
    "coalesce(sum(output_tokens), 0)",
    "coalesce(sum(total_tokens), 0)",
    "coalesce(sum(cache_read_tokens), 0)",
    "total(cost_usd)",
    "coalesce(sum(price_source IS NULL), 0)",
    "count(latency_ms)",
    "total(latency_ms)",
    "count(quality_score)",
    "total(quality_score)",
    "min(latency_ms)",
    "max(latency_ms)",
    "min(quality_score)",
    "coalesce(sum(latency_ms <= :min_positive), 0)",
)
_WINDOW = "ts_us >= :start AND ts_us < :end"


def raw_groups(
    db: sqlite3.Connection, dimensions: Sequence[str], start_us: int, end_us: int
) -> dict[str, tuple[Group, Aggregate]]:
    """The groups of ``[start, end)`` keyed by `Group.key`; empty when nothing happened."""
    params = {
        "start": start_us,
        "end": end_us,
        "min_positive": sketches.MIN_POSITIVE,
        "key_multiplier": sketches.KEY_MULTIPLIER,
    }
    dims = list(dimensions)
    found: dict[tuple[Any, ...], Aggregate] = {}
    zeros = _call_sums(db, dims, params, found)
    _add_sketches(db, dims, params, found, zeros)
    _add_scores(db, dims, params, found)
    return {
        group.key: (group, aggregate)
        for values, aggregate in found.items()
        for group in (Group.of(dims, values),)
    }


def _select(columns: Sequence[str]) -> tuple[str, str]:
    """``"a, b, "`` and ``" GROUP BY a, b"`` (both empty without columns)."""
    if not columns:
        return "", ""
    listed = ", ".join(columns)
    return f"{listed}, ", f" GROUP BY {listed}"


def _call_sums(
    db: sqlite3.Connection,
    dims: list[str],
    params: dict[str, Any],
    found: dict[tuple[Any, ...], Aggregate],
) -> dict[tuple[Any, ...], int]:
    select, group_by = _select(dims)
    query = f"SELECT {select}{', '.join(_SUMS)} FROM calls WHERE {_WINDOW}{group_by}"
    zeros = {}
    width = len(dims)
    for row in db.execute(query, params):
        key, metrics = tuple(row[:width]), row[width:]
        if metrics[0]:
            found[key] = Aggregate(**dict(zip(METRIC_COLUMNS, metrics[:-1], strict=True)))
            zeros[key] = metrics[-1]
    return zeros


def _add_sketches(
    db: sqlite3.Connection,
    dims: list[str],
    params: dict[str, Any],
    found: dict[tuple[Any, ...], Aggregate],
    zeros: dict[tuple[Any, ...], int],
) -> None:
    select, _ = _select(dims)
    query = (
        f"SELECT {select}{sketches.KEY_SQL} AS bin_key, count(*) FROM calls"
        f" WHERE {_WINDOW} AND latency_ms > :min_positive"
        f" GROUP BY {select}bin_key"
    )
    bins: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
    width = len(dims)
    for row in db.execute(query, params):
        bins[tuple(row[:width])].append((row[width], row[width + 1]))
    for key, aggregate in found.items():
        if aggregate.latency_count:
            aggregate.sketch = sketches.from_bins(zeros[key], bins.get(key, ()))


def _add_scores(
    db: sqlite3.Connection,
    dims: list[str],
    params: dict[str, Any],
    found: dict[tuple[Any, ...], Aggregate],
) -> None:
    columns = [name if name in SCORE_DIMENSIONS else "NULL" for name in dims]
    select, group_by = _select(columns)
    query = (
        f"SELECT {select}count(*), total(value), min(value) FROM scores"
        f" WHERE {_WINDOW} AND value BETWEEN 0 AND 1{group_by}"
    )
    width = len(dims)
    for row in db.execute(query, params):
        count, total, least = row[width:]
        if count:
            found.setdefault(tuple(row[:width]), Aggregate()).add_quality(count, total, least)


def consume_raw(db: sqlite3.Connection, start_us: int, end_us: int) -> None:
    """Delete the raw rows of ``[start, end)`` once a sealed window has absorbed them."""
    for table in ("calls", "scores"):
        db.execute(f"DELETE FROM {table} WHERE ts_us >= ? AND ts_us < ?", (start_us, end_us))
