"""Tier rows in the ledger's ``rollups`` table: one per (tier, window, group), with its sketch.

A window is ``window_start_us`` .. ``window_end_us`` (UTC microseconds). A group is
``group_key``, the JSON object of the grouped dimensions in config order; every dimension of
`ALLOWED_DIMENSIONS` also has its column, NULL when not grouped (or when the value is null).
Every write of a row stamps it with ``seq`` from the ledger-wide ``sequences`` counter
('rollups'), taken inside the writing transaction: a row committed later always has a higher
``seq``, so a sink that has sent every row up to ``seq`` N only ever needs the rows past N.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from ddsketch.ddsketch import BaseDDSketch

from alerting.db import joins_transaction
from collector.ledger import sequences
from collector.tiers import sketch as sketches
from schemas.config import ALLOWED_DIMENSIONS

SUMS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cost_usd",
    "unpriced",
    "latency_count",
    "latency_sum",
    "quality_count",
    "quality_sum",
)
MINIMA = ("latency_min", "quality_min")
METRIC_COLUMNS = (*SUMS, "latency_min", "latency_max", "quality_min")
_ROW_COLUMNS = (
    "tier",
    "window_start_us",
    "window_end_us",
    "group_key",
    *ALLOWED_DIMENSIONS,
    *METRIC_COLUMNS,
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
    "latency_sketch",
    "seq",
)
_INSERT = (
    f"INSERT INTO rollups ({', '.join(_ROW_COLUMNS)}) VALUES ({', '.join('?' * len(_ROW_COLUMNS))})"
)


@dataclass(slots=True)
class Aggregate:
    """The metrics of one group in one window; `merge` adds another window's or group's."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    latency_count: int = 0
    latency_sum: float = 0.0
    quality_count: int = 0
    quality_sum: float = 0.0
    latency_min: float | None = None
    latency_max: float | None = None
    quality_min: float | None = None
    sketch: BaseDDSketch | None = field(default=None, repr=False)

    def merge(self, other: Aggregate) -> None:
        for name in SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in MINIMA:
            setattr(self, name, least(getattr(self, name), getattr(other, name)))
        if self.latency_max is None or (
            other.latency_max is not None and other.latency_max > self.latency_max
        ):
            self.latency_max = other.latency_max
        if other.sketch is not None:
            if self.sketch is None:
                self.sketch = sketches.empty()
            self.sketch.merge(other.sketch)

    def add_quality(self, count: int, total: float, lowest: float | None) -> None:
        self.quality_count += count
        self.quality_sum += total
        self.quality_min = least(self.quality_min, lowest)

    def percentiles(self) -> dict[int, float | None]:
        if self.sketch is None:
            return dict.fromkeys(sketches.QUANTILES)
        return sketches.quantiles(self.sketch, self.latency_min, self.latency_max)


def least(a: float | None, b: float | None) -> float | None:
    """The smaller of two optional values."""
    if a is None:
        return b
    return a if b is None else min(a, b)


@dataclass(slots=True)
class Group:
    """A group's identity: ``key`` is the JSON of its grouped dimensions, in config order."""

    key: str
    dimensions: dict[str, Any]

    @classmethod
    def of(cls, names: Iterable[str], values: Iterable[Any]) -> Group:
        dimensions = dict(zip(names, values, strict=True))
        return cls(orjson.dumps(dimensions).decode(), dimensions)


@joins_transaction
def write_window(
    db: sqlite3.Connection,
    tier: str,
    start_us: int,
    end_us: int,
    groups: dict[str, tuple[Group, Aggregate]],
) -> int:
    """Replace every row of one window with ``groups``; returns the rows written. Joins the
    caller's transaction (its rows' ``seq`` are taken in it)."""
    db.execute("DELETE FROM rollups WHERE tier = ? AND window_start_us = ?", (tier, start_us))
    seqs = sequences.take(db, "rollups", len(groups)) if groups else range(0)
    db.executemany(
        _INSERT,
        (
            _row(tier, start_us, end_us, group, aggregate, seq)
            for (group, aggregate), seq in zip(groups.values(), seqs, strict=True)
        ),
    )
    return len(groups)


def _row(
    tier: str, start_us: int, end_us: int, group: Group, aggregate: Aggregate, seq: int
) -> tuple[Any, ...]:
    dims = group.dimensions
    percentiles = aggregate.percentiles()
    blob = None if aggregate.sketch is None else sketches.encode(aggregate.sketch)
    return (
        tier,
        start_us,
        end_us,
        group.key,
        *(dims.get(name) for name in ALLOWED_DIMENSIONS),
        *(getattr(aggregate, name) for name in METRIC_COLUMNS),
        *(percentiles[q] for q in sketches.QUANTILES),
        blob,
        seq,
    )


_READ = f"SELECT group_key, {', '.join(METRIC_COLUMNS)}, latency_sketch FROM rollups"


def read_window_rows(
    db: sqlite3.Connection, tier: str, start_us: int, end_us: int
) -> Iterator[tuple[str, Aggregate]]:
    """(group key, aggregate) of the rows of ``tier`` whose window starts in ``[start, end)``."""
    rows = db.execute(
        f"{_READ} WHERE tier = ? AND window_start_us >= ? AND window_start_us < ?",
        (tier, start_us, end_us),
    )
    for row in rows:
        yield row[0], aggregate_from_row(row[1:])


def rows_by(
    db: sqlite3.Connection, tier: str, start_us: int, end_us: int, by: Sequence[str]
) -> Iterator[tuple[int, tuple[Any, ...], Aggregate]]:
    """(window start, the values of the dimensions ``by``, aggregate) of the rows of ``tier``
    whose window starts in ``[start, end)``."""
    select = "".join(f"{name}, " for name in by)
    rows = db.execute(
        f"SELECT window_start_us, {select}{', '.join(METRIC_COLUMNS)}, latency_sketch"
        " FROM rollups WHERE tier = ? AND window_start_us >= ? AND window_start_us < ?",
        (tier, start_us, end_us),
    )
    width = len(by) + 1
    for row in rows:
        yield row[0], tuple(row[1:width]), aggregate_from_row(row[width:])


def aggregate_from_row(values: Sequence[Any]) -> Aggregate:
    """An aggregate from `METRIC_COLUMNS` followed by the sketch blob."""
    *metrics, blob = values
    aggregate = Aggregate(**dict(zip(METRIC_COLUMNS, metrics, strict=True)))
    aggregate.sketch = None if blob is None else sketches.decode(blob)
    return aggregate


def merge_rows(rows: Iterable[tuple[str, Aggregate]]) -> dict[str, tuple[Group, Aggregate]]:
    """Rows merged by group key; the key's JSON gives back the group's dimensions."""
    merged: dict[str, tuple[Group, Aggregate]] = {}
    for key, aggregate in rows:
        if key in merged:
            merged[key][1].merge(aggregate)
        else:
            merged[key] = (Group(key, orjson.loads(key)), aggregate)
    return merged


def tier_rows_after(
    db: sqlite3.Connection, tier: str, seq: int, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``tier`` with ``seq`` past the given one, in ``seq`` order.

    Each is ``{"tier", "seq", "window_start_us", "window_end_us", "dimensions": {grouped
    dimension: value}, "metrics": {name: int | float | None}, "sketch": bytes | None}``; the
    metrics are count, errors, error_rate, the token sums, cost_usd (sum of the priced calls),
    unpriced, latency_mean/min/max/p50/p90/p95/p99 (ms) and quality_count/mean/min.
    """
    rows = db.execute(
        "SELECT seq, window_start_us, window_end_us, group_key, latency_p50, latency_p90,"
        f" latency_p95, latency_p99, {', '.join(METRIC_COLUMNS)}, latency_sketch FROM rollups"
        " WHERE tier = ? AND seq > ? ORDER BY seq LIMIT ?",
        (tier, seq, limit),
    )
    return [_export(tier, row) for row in rows]


def _export(tier: str, row: tuple[Any, ...]) -> dict[str, Any]:
    seq, start, end, key, p50, p90, p95, p99, *metrics, blob = row
    m = dict(zip(METRIC_COLUMNS, metrics, strict=True))
    return {
        "tier": tier,
        "seq": seq,
        "window_start_us": start,
        "window_end_us": end,
        "dimensions": orjson.loads(key),
        "metrics": {
            "count": m["requests"],
            "errors": m["errors"],
            "error_rate": _mean(m["errors"], m["requests"]),
            "input_tokens": m["input_tokens"],
            "output_tokens": m["output_tokens"],
            "total_tokens": m["total_tokens"],
            "cache_read_tokens": m["cache_read_tokens"],
            "cost_usd": m["cost_usd"],
            "unpriced": m["unpriced"],
            "latency_mean": _mean(m["latency_sum"], m["latency_count"]),
            "latency_min": m["latency_min"],
            "latency_max": m["latency_max"],
            "latency_p50": p50,
            "latency_p90": p90,
            "latency_p95": p95,
            "latency_p99": p99,
            "quality_count": m["quality_count"],
            "quality_mean": _mean(m["quality_sum"], m["quality_count"]),
            "quality_min": m["quality_min"],
        },
        "sketch": blob,
    }


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


def _scalar(db: sqlite3.Connection, sql: str, *params: int | str) -> Any:
    return db.execute(sql, params).fetchone()[0]


def last_seq(db: sqlite3.Connection, tier: str) -> int:
    """The ``seq`` of the last row of ``tier`` written (0 before any)."""
    return int(_scalar(db, "SELECT coalesce(max(seq), 0) FROM rollups WHERE tier = ?", tier))


def count_after(db: sqlite3.Connection, tier: str, seq: int) -> int:
    """How many rows of ``tier`` were written after ``seq``."""
    return int(_scalar(db, "SELECT count(*) FROM rollups WHERE tier = ? AND seq > ?", tier, seq))


def first_window_after(db: sqlite3.Connection, tier: str, seq: int) -> int | None:
    """The earliest window start among the rows of ``tier`` written after ``seq``."""
    sql = "SELECT min(window_start_us) FROM rollups WHERE tier = ? AND seq > ?"
    return _scalar(db, sql, tier, seq)


def first_seq_since(db: sqlite3.Connection, tier: str, since_us: int) -> int | None:
    """The lowest ``seq`` among the rows of ``tier`` whose window starts at ``since_us`` or
    later."""
    sql = "SELECT min(seq) FROM rollups WHERE tier = ? AND window_start_us >= ?"
    return _scalar(db, sql, tier, since_us)


EXPORT_COLUMNS = (
    "window_start_us",
    "window_end_us",
    *ALLOWED_DIMENSIONS,
    *METRIC_COLUMNS,
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
)
"""Columns an export shows: everything but the binary latency sketch and the write sequence."""


def export_rows(db: sqlite3.Connection, tier: str, start_us: int, end_us: int) -> sqlite3.Cursor:
    """The `EXPORT_COLUMNS` of the rows of ``tier`` whose window starts in ``[start, end)``, by
    window and group; a group none of whose calls had a price has no cost, not $0 (as in
    ``summary``)."""
    columns = [
        "CASE WHEN unpriced < requests THEN cost_usd END" if c == "cost_usd" else c
        for c in EXPORT_COLUMNS
    ]
    return db.execute(
        f"SELECT {', '.join(columns)} FROM rollups WHERE tier = ?"
        " AND window_start_us >= ? AND window_start_us < ? ORDER BY window_start_us, group_key",
        (tier, start_us, end_us),
    )
