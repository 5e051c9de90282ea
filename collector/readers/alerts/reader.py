"""The alert engine's `MetricsReader` over the ledger's raw ``calls`` and ``scores`` tables.

Percentiles are exact (as in `collector.tiers.raw_summary`); everything else is one grouped SQL
query.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from alerting.reader import Group, Sample
from collector.tiers.raw_summary import SCORE_DIMENSIONS, exact_percentiles
from schemas.rules import Rule

_VALUE = {
    "requests": "1",
    "errors": "(status = 'error')",
    "unpriced_requests": "(price_source IS NULL)",
    "error_rate": "(status = 'error')",
    "success_rate": "(status <> 'error')",
    "cost_usd": "cost_usd",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "total_tokens": "total_tokens",
    "latency_ms": "latency_ms",
    "tokens_per_second": "CASE WHEN latency_ms > 0 THEN output_tokens * 1000.0 / latency_ms END",
    "quality_score": "quality_score",
}
_SQL_AGGREGATE = {
    "count": "count(v)",
    "sum": "sum(v)",
    "mean": "avg(v)",
    "min": "min(v)",
    "max": "max(v)",
    "rate_per_s": "total(v)",
}
COUNTED = frozenset({"requests", "errors", "unpriced_requests"})
PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


class LedgerReader:
    """Reads metric windows from a ledger connection (its own, in the evaluating thread)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def refresh(self, now_us: int, rules: Sequence[Rule]) -> None:
        """Nothing to prepare: every window is a query over the raw rows."""

    def window(
        self,
        metric: str,
        aggregate: str,
        start_us: int,
        end_us: int,
        where: Mapping[str, str],
        group_by: Sequence[str],
    ) -> dict[Group, Sample]:
        source, params = _source(metric, start_us, end_us, where, group_by)
        dims = [f"d{i}" for i in range(len(group_by))]
        grouping = f" GROUP BY {', '.join(dims)}" if dims else ""
        select = "".join(f"{d}, " for d in dims)
        if aggregate in PERCENTILES:
            return self._percentile(source, params, dims, PERCENTILES[aggregate])
        sql_aggregate = (
            "total(v)"
            if metric in COUNTED and aggregate == "count"
            else (_SQL_AGGREGATE[aggregate])
        )
        rows = self.db.execute(
            f"SELECT {select}count(*), {sql_aggregate} FROM ({source}){grouping}", params
        )
        seconds = (end_us - start_us) / 1e6
        result: dict[Group, Sample] = {}
        for row in rows:
            requests, value = row[-2], row[-1]
            if not requests:
                continue
            if aggregate == "rate_per_s" and value is not None:
                value = value / seconds
            result[tuple(row[:-2])] = Sample(value, requests)
        return result

    def _percentile(
        self, source: str, params: list[Any], dims: list[str], q: int
    ) -> dict[Group, Sample]:
        width = len(dims)
        order = ", ".join([*dims, "v"])
        values: dict[Group, list[float]] = defaultdict(list)
        requests: dict[Group, int] = defaultdict(int)
        select = "".join(f"{d}, " for d in dims)
        for row in self.db.execute(f"SELECT {select}v FROM ({source}) ORDER BY {order}", params):
            key = tuple(row[:width])
            requests[key] += 1
            if row[width] is not None:
                values[key].append(row[width])
        return {
            key: Sample(exact_percentiles(values[key])[q], count) for key, count in requests.items()
        }

    def events(self, start_us: int, end_us: int, where: Mapping[str, str]) -> int:
        clause, params = _filters(where, start_us, end_us)
        total = self.db.execute(f"SELECT count(*) FROM calls WHERE {clause}", params).fetchone()[0]
        if set(where) <= SCORE_DIMENSIONS:
            total += self.db.execute(
                f"SELECT count(*) FROM scores WHERE {clause}", params
            ).fetchone()[0]
        return int(total)


def _filters(where: Mapping[str, str], start_us: int, end_us: int) -> tuple[str, list[Any]]:
    """The WHERE clause for a time range and dimension filters (names checked by the schema)."""
    return _with_dimensions("ts_us >= ? AND ts_us < ?", [start_us, end_us], where)


def _with_dimensions(
    clause: str, params: list[Any], where: Mapping[str, str]
) -> tuple[str, list[Any]]:
    return clause + "".join(f" AND {name} = ?" for name in where), [*params, *where.values()]


Range = tuple[str, list[Any]]
"""A row range of one table as SQL: a clause on ``ts_us`` or ``id`` and its parameters."""


def _source(
    metric: str,
    start_us: int,
    end_us: int,
    where: Mapping[str, str],
    group_by: Sequence[str],
) -> tuple[str, list[Any]]:
    """A subquery of ``d0.., v`` rows: one per call (per value, for quality, scores included)."""
    span: Range = ("ts_us >= ? AND ts_us < ?", [start_us, end_us])
    return metric_rows(metric, where, group_by, span, span)


def metric_rows(
    metric: str,
    where: Mapping[str, str],
    group_by: Sequence[str],
    calls_range: Range,
    scores_range: Range,
) -> tuple[str, list[Any]]:
    """A subquery of ``ts_us, d0.., v`` rows of the calls (and scores) within the ranges.

    ``metric`` ``events`` is 1 per call and per score, for absence rules.
    """
    clause, params = _with_dimensions(*calls_range, where)
    dims = "".join(f"{name} AS d{i}, " for i, name in enumerate(group_by))
    value = "1" if metric == "events" else _VALUE[metric]
    calls = f"SELECT ts_us, {dims}{value} AS v FROM calls WHERE {clause}"
    if metric == "quality_score":
        calls += " AND quality_score IS NOT NULL"
    if metric not in ("quality_score", "events") or not set(where) <= SCORE_DIMENSIONS:
        return calls, params
    score_clause, score_params = _with_dimensions(*scores_range, where)
    score_dims = "".join(
        f"{name if name in SCORE_DIMENSIONS else 'NULL'} AS d{i}, "
        for i, name in enumerate(group_by)
    )
    score_value = "1" if metric == "events" else "value"
    scores = f"SELECT ts_us, {score_dims}{score_value} AS v FROM scores WHERE {score_clause}"
    if metric == "quality_score":
        scores += " AND value BETWEEN 0 AND 1"
    return f"{calls} UNION ALL {scores}", params + score_params
