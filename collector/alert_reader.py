"""The alert engine's `MetricsReader` over the ledger's raw ``calls`` and ``scores`` tables.

Percentiles are exact (as in `collector.summary`); everything else is one grouped SQL query.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from alerting.reader import Group, Sample
from collector.summary import SCORE_DIMENSIONS, exact_percentiles

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
_COUNTED = frozenset({"requests", "errors", "unpriced_requests"})
_PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


class LedgerReader:
    """Reads metric windows from a ledger connection (its own, in the evaluating thread)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

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
        if aggregate in _PERCENTILES:
            return self._percentile(source, params, dims, _PERCENTILES[aggregate])
        sql_aggregate = (
            "total(v)"
            if metric in _COUNTED and aggregate == "count"
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
    clause = "ts_us >= ? AND ts_us < ?" + "".join(f" AND {name} = ?" for name in where)
    return clause, [start_us, end_us, *where.values()]


def _source(
    metric: str,
    start_us: int,
    end_us: int,
    where: Mapping[str, str],
    group_by: Sequence[str],
) -> tuple[str, list[Any]]:
    """A subquery of ``d0.., v`` rows: one per call (per value, for quality, scores included)."""
    clause, params = _filters(where, start_us, end_us)
    dims = "".join(f"{name} AS d{i}, " for i, name in enumerate(group_by))
    calls = f"SELECT {dims}{_VALUE[metric]} AS v FROM calls WHERE {clause}"
    if metric != "quality_score":
        return calls, params
    calls += " AND quality_score IS NOT NULL"
    if not set(where) <= SCORE_DIMENSIONS:
        return calls, params
    score_dims = "".join(
        f"{name if name in SCORE_DIMENSIONS else 'NULL'} AS d{i}, "
        for i, name in enumerate(group_by)
    )
    scores = f"SELECT {score_dims}value AS v FROM scores WHERE {clause} AND value BETWEEN 0 AND 1"
    return f"{calls} UNION ALL {scores}", params + params
