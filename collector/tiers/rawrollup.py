"""One hour window's groups from the raw ``calls`` and ``scores`` tables, in two SQL queries.

Calls are grouped by (latency bin key, dimensions): sums, minima and maxima per bin are folded
into their group, and the bins' counts make the latency sketch, so Python sees a few hundred
rows per group, never one row per event. Scores follow `collector.tiers.raw_summary`: values in 0..1
count towards quality, in the groups of the dimensions a score carries (`SCORE_DIMENSIONS`).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from alerting.db import joins_transaction
from collector.ledger import events
from collector.tiers import sketch as sketches
from collector.tiers.raw_summary import SCORE_DIMENSIONS
from collector.tiers.store import METRIC_COLUMNS, Aggregate, Group

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
)
_WINDOW = "ts_us >= :start AND ts_us < :end"


_BIN_KEY = f"CASE WHEN latency_ms > :min_positive THEN {sketches.KEY_SQL} END"


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
    found = _calls(db, dims, params)
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


def _calls(
    db: sqlite3.Connection, dims: list[str], params: dict[str, Any]
) -> dict[tuple[Any, ...], Aggregate]:
    """One GROUP BY (bin key, dimensions): a single sort gives both sums and sketch bins.

    The bin key leads because comparing integers first makes SQLite's sort cheaper.
    """
    select, _ = _select(dims)
    query = (
        f"SELECT {select}{_BIN_KEY} AS bin_key, {', '.join(_SUMS)} FROM calls"
        f" WHERE {_WINDOW} GROUP BY bin_key{''.join(f', {name}' for name in dims)}"
    )
    width = len(dims)
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for row in db.execute(query, params):
        groups[row[:width]].append(row[width:])
    return {key: _aggregate(rows) for key, rows in groups.items()}


def _aggregate(rows: list[tuple[Any, ...]]) -> Aggregate:
    """Fold one group's rows (bin key, then the `_SUMS` of that bin) column by column."""
    bin_keys, *columns = zip(*rows, strict=True)
    values = [sum(columns[i]) for i in range(12)]
    values.append(min((v for v in columns[12] if v is not None), default=None))
    values.append(max((v for v in columns[13] if v is not None), default=None))
    values.append(min((v for v in columns[14] if v is not None), default=None))
    aggregate = Aggregate(**dict(zip(METRIC_COLUMNS, values, strict=True)))
    if aggregate.latency_count:
        bins = list(zip(bin_keys, columns[8], strict=True))  # latency_count: calls in the bin
        zeros = sum(n for key, n in bins if key is None)  # latencies without a bin are zeros
        aggregate.sketch = sketches.from_bins(zeros, [b for b in bins if b[0] is not None])
    return aggregate


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


@joins_transaction
def consume_raw(db: sqlite3.Connection, start_us: int, end_us: int) -> None:
    """Delete the raw rows of ``[start, end)`` once a sealed window has absorbed them; joins
    the caller's transaction."""
    for table in events.TABLES:
        events.delete(db, table, "ts_us >= ? AND ts_us < ?", (start_us, end_us))
