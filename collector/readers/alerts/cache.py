"""The alert engine's reader over incremental aggregates: a pass reads only the new rows.

Every (metric, where, group_by) the rules use is a series: per-second aggregates over the span
its rules look back, up to two hours; beyond that, per-minute ones (per quarter hour past two
days: month budgets) and per-second ones only for what windows ending now need. Percentile
series also keep their values for the per-second span. The parts of a window finer than the
steps are read from the raw rows, so a window's value is the raw query's. Whatever the cache
does not hold is read from the raw rows by `LedgerReader`.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

import numpy as np

from alerting.reader import Group, Sample
from collector.ledger import events
from collector.readers.alerts.grid import Grid, Totals, combine
from collector.readers.alerts.reader import COUNTED, PERCENTILES, LedgerReader, Range, metric_rows
from collector.readers.alerts.tiers import hourly_rows, raw_start, readable
from schemas.rules import AbsenceRule, BudgetRule, ChangeRule, Rule, ThresholdRule

log = logging.getLogger("collector.alerts")
_US = 1_000_000
FINE_LIMIT_S = 2 * 3600
"""Spans up to this many seconds are kept per second; longer ones per minute."""
_PERIOD_SPAN_S = {"day": 25 * 3600, "month": 31 * 86400 + 3600}
_DAY_S = 86_400


def coarse_step(span_s: int) -> int:
    """Seconds per step of a long series: a minute up to two days, else a quarter of an hour
    (a month per minute and group would take 2 MB; every time zone's offset is in quarters)."""
    return 60 if span_s <= 2 * _DAY_S else 900


@dataclass(frozen=True)
class SeriesKey:
    """What a window reads: a metric, dimension filters and the grouping."""

    metric: str
    where: tuple[tuple[str, str], ...]
    group_by: tuple[str, ...]

    @classmethod
    def of(cls, metric: str, where: Mapping[str, str], group_by: Sequence[str]) -> SeriesKey:
        return cls(metric, tuple(sorted(where.items())), tuple(group_by))


def _seconds(delta: timedelta) -> int:
    return math.ceil(delta.total_seconds())


class Need(NamedTuple):
    """What the rules read of one series: how far back (s), how far back windows ending now
    reach (s), and whether a percentile."""

    span: int
    recent: int
    percentile: bool

    def merge(self, other: Need) -> Need:
        return Need(
            max(self.span, other.span),
            max(self.recent, other.recent),
            self.percentile or other.percentile,
        )


def series_needs(rules: Iterable[Rule]) -> dict[SeriesKey, Need]:
    """Per series the rules read, what they need of it."""
    needs: dict[SeriesKey, Need] = {}

    def need(key: SeriesKey, found: Need) -> None:
        needs[key] = needs[key].merge(found) if key in needs else found

    for rule in rules:
        if isinstance(rule, ThresholdRule | ChangeRule):
            key = SeriesKey.of(rule.metric, rule.where, rule.group_by)
            window = _seconds(rule.window)
            span = recent = window
            if isinstance(rule, ChangeRule):
                offset, trailing = rule.baseline.offset, rule.baseline.trailing
                recent += _seconds(trailing or timedelta(0))
                span = max(recent, window + _seconds(offset or timedelta(0)))
            need(key, Need(span, recent, rule.aggregate in PERCENTILES))
        elif isinstance(rule, BudgetRule):
            key = SeriesKey.of(rule.metric, rule.where, rule.group_by)
            need(key, Need(_PERIOD_SPAN_S[rule.period], 0, False))
        elif isinstance(rule, AbsenceRule):
            window = _seconds(rule.window)
            need(SeriesKey.of("events", rule.where, ()), Need(window, window, False))
    return needs


class Cover(NamedTuple):
    """Aggregates of the whole seconds ``[first, end)`` of a window that the grids hold."""

    totals: Totals
    first: int
    end: int


class _Values:
    """The values of a percentile series (second, group column, value), oldest trimmed."""

    def __init__(self) -> None:
        self.base = 0
        self.rows = np.empty((0, 3))

    def add(self, rows: np.ndarray) -> None:
        self.rows = np.concatenate([self.rows, rows[rows[:, 0] >= self.base]])

    def trim(self, base: int) -> None:
        self.base = base
        self.rows = self.rows[self.rows[:, 0] >= base]

    def between(self, first: int, end: int, column: int) -> np.ndarray:
        rows = self.rows
        return rows[(rows[:, 0] >= first) & (rows[:, 0] < end) & (rows[:, 1] == column), 2]


class Series:
    """One series' grids (and values), filled once from the raw rows, then from new ones."""

    def __init__(self, key: SeriesKey, need: Need) -> None:
        self.key = key
        self.columns: dict[Group, int] = {}
        if need.span <= FINE_LIMIT_S:
            self.fine, self.coarse = Grid(1, need.span), None
        else:  # per step; per second only what windows ending now need, and the last step
            step = coarse_step(need.span)
            fine_span = min(max(need.recent, 2 * step), FINE_LIMIT_S)
            self.fine, self.coarse = Grid(1, fine_span), Grid(step, need.span // step + 2)
        self.values = _Values() if need.percentile else None

    def holds_values(self, cover: Cover) -> bool:
        """Whether the values behind a covered range are kept (percentiles need them)."""
        return self.values is not None and cover.first >= self.values.base

    def fill(self, db: sqlite3.Connection, now_s: int, last_ids: tuple[int, int]) -> None:
        """Load the span before ``now_s`` from rows up to ``last_ids`` (calls, scores).

        Each row is read once: per second within the fine span, per step before it.
        """
        fine = self.fine
        fine.start(now_s)
        seconds = self._aggregate(db, 1, _span(fine.base * _US, None, last_ids))
        fine.add(seconds)
        if self.coarse is not None:
            coarse, step = self.coarse, self.coarse.step_s
            coarse.start(now_s // step)
            older = _span(coarse.base * step * _US, fine.base * _US, last_ids)
            coarse.add(self._aggregate(db, step, older))
            coarse.add(_per_step(seconds, step))
        if self.values is not None:
            self.values.trim(fine.base)
            self._load_values(db, _span(fine.base * _US, None, last_ids))

    def fill_from_rollups(self, db: sqlite3.Connection, raw_start_us: int) -> None:
        """Add the hours before the raw rows (``raw_start_us``) from the hourly rollups."""
        coarse = self.coarse
        assert coarse is not None
        metric, where, group_by = self._what()
        start_us = coarse.base * coarse.step_s * _US
        sql, params = hourly_rows(metric, where, group_by, coarse.step_s, start_us, raw_start_us)
        coarse.add(self._grid_rows(db.execute(sql, params)))

    def update(
        self, db: sqlite3.Connection, now_s: int, after: tuple[int, int], last: tuple[int, int]
    ) -> None:
        """Slide to ``now_s`` and add the rows committed after ``after`` up to ``last``."""
        self.fine.advance(now_s)
        if self.coarse is not None:
            self.coarse.advance(now_s // self.coarse.step_s)
        ranges = _between(after, last)
        rows = self._aggregate(db, 1, ranges)
        self.fine.add(rows)
        if self.coarse is not None:
            self.coarse.add(_per_step(rows, self.coarse.step_s))
        if self.values is not None:
            self.values.trim(self.fine.base)
            self._load_values(db, ranges)

    def cover(self, start_us: int, end_us: int) -> Cover | None:
        """Aggregates of the whole seconds ``[first, end)`` inside ``[start_us, end_us)``
        the grids hold, with ``first`` and ``end``; None when they do not reach back."""
        first, end = -(-start_us // _US), end_us // _US
        if self.fine.covers(first):
            return Cover(self.fine.totals(first, end), first, end) if first < end else None
        coarse = self.coarse
        if coarse is None:
            return None
        step = coarse.step_s
        first_step, end_step = -(-first // step), end // step
        if not coarse.covers(first_step) or first_step >= end_step:
            return None
        totals = coarse.totals(first_step, end_step)
        if not self.fine.covers(end_step * step):
            return Cover(totals, first_step * step, end_step * step)
        tail = self.fine.totals(end_step * step, end)
        return Cover(combine(totals, tail), first_step * step, end)

    def _aggregate(
        self, db: sqlite3.Connection, step_s: int, ranges: tuple[Range, Range]
    ) -> np.ndarray:
        """``(step, column, requests, values, sum, min, max)`` rows of the ranges' events."""
        source, params = metric_rows(*self._what(), *ranges)
        dims = "".join(f", d{i}" for i in range(len(self.key.group_by)))
        sql = (
            f"SELECT ts_us / {step_s * _US}{dims}, count(*), count(v), total(v), min(v), max(v)"
            f" FROM ({source}) GROUP BY 1{dims}"
        )
        return self._grid_rows(db.execute(sql, params))

    def _grid_rows(self, rows: Iterable[tuple[Any, ...]]) -> np.ndarray:
        """``(step, dims.., events, values, sum, min, max)`` rows with group columns."""
        width = len(self.key.group_by)
        converted = [
            (
                row[0],
                self._column(row[1 : 1 + width]),
                *row[1 + width : 4 + width],
                math.inf if row[-2] is None else row[-2],
                -math.inf if row[-1] is None else row[-1],
            )
            for row in rows
        ]
        self._grow()
        return np.array(converted, dtype=float).reshape(-1, 7)

    def _load_values(self, db: sqlite3.Connection, ranges: tuple[Range, Range]) -> None:
        assert self.values is not None
        source, params = metric_rows(*self._what(), *ranges)
        dims = "".join(f", d{i}" for i in range(len(self.key.group_by)))
        sql = f"SELECT ts_us / {_US}{dims}, v FROM ({source}) WHERE v IS NOT NULL"
        width = len(self.key.group_by)
        rows = [
            (row[0], self._column(row[1 : 1 + width]), row[-1]) for row in db.execute(sql, params)
        ]
        self.values.add(np.array(rows, dtype=float).reshape(-1, 3))

    def _what(self) -> tuple[str, dict[str, str], tuple[str, ...]]:
        return self.key.metric, dict(self.key.where), self.key.group_by

    def _column(self, group: tuple[Any, ...]) -> int:
        return self.columns.setdefault(group, len(self.columns))

    def _grow(self) -> None:
        self.fine.ensure_columns(len(self.columns))
        if self.coarse is not None:
            self.coarse.ensure_columns(len(self.columns))


def _span(start_us: int, end_us: int | None, last: tuple[int, int]) -> tuple[Range, Range]:
    """Rows in ``[start_us, end_us)`` up to the last ids; through the time index."""
    clause = "ts_us >= ?" + ("" if end_us is None else " AND ts_us < ?") + " AND +id <= ?"
    bounds = [start_us] if end_us is None else [start_us, end_us]
    return (clause, [*bounds, last[0]]), (clause, [*bounds, last[1]])


def _per_step(seconds: np.ndarray, step_s: int) -> np.ndarray:
    """Per-second grid rows as rows of ``step_s`` steps (several per step: the grid adds)."""
    steps = seconds.copy()
    steps[:, 0] //= step_s
    return steps


def _between(after: tuple[int, int], last: tuple[int, int]) -> tuple[Range, Range]:
    """Rows committed after the ``after`` ids up to the ``last`` ones; through the row ids."""
    return (
        ("id > ? AND id <= ?", [after[0], last[0]]),
        ("id > ? AND id <= ?", [after[1], last[1]]),
    )


class AlertCache:
    """A `MetricsReader`: windows from the series' grids, refreshed at the start of each pass."""

    def __init__(self, db: sqlite3.Connection, tier_dimensions: Sequence[str] = ()) -> None:
        self.db = db
        self.tier_dimensions = tuple(tier_dimensions)
        self.raw = LedgerReader(db)
        self.needs: dict[SeriesKey, Need] = {}
        self.series: dict[SeriesKey, Series] = {}
        self.last_ids: tuple[int, int] | None = None
        self.now_us: int | None = None

    def refresh(self, now_us: int, rules: Sequence[Rule]) -> None:
        """Read what was committed since the last pass; windows then end at ``now_us``.

        New rules (a reload) load their spans afresh. Everything is read from one snapshot of
        the ledger, so rows deleted meanwhile (retention) cannot count twice. On any error
        the cache is emptied and this pass reads the raw rows, which report a database error
        rule by rule.
        """
        self.now_us = None  # until the refresh completes, every window is read raw
        needs = series_needs(rules)
        if needs != self.needs:
            self.needs, self.last_ids = needs, None
        try:
            self.db.execute("BEGIN")
            try:
                self._read(now_us)
            finally:
                self.db.execute("COMMIT")
        except Exception:
            log.exception("reading new rows for the alert windows failed")
            self.last_ids, self.now_us = None, None

    def _read(self, now_us: int) -> None:
        now_s = now_us // _US
        last = self._last_ids()
        if self.last_ids is None or last[0] < self.last_ids[0] or last[1] < self.last_ids[1]:
            self.series = {key: Series(key, need) for key, need in self.needs.items()}
            for series in self.series.values():
                series.fill(self.db, now_s, last)
            self._fill_from_rollups()
        else:
            for series in self.series.values():
                series.update(self.db, now_s, self.last_ids, last)
        self.last_ids, self.now_us = last, now_us

    def _fill_from_rollups(self) -> None:
        """Spans reaching past the oldest raw row take those hours from the rollups."""
        start = raw_start(self.db)
        for key, series in self.series.items():
            coarse = series.coarse
            if start is None or coarse is None or coarse.base * coarse.step_s * _US >= start:
                continue
            if readable(key.metric, [*dict(key.where), *key.group_by], self.tier_dimensions):
                series.fill_from_rollups(self.db, start)
            else:
                log.warning(
                    "alert windows on %s by %s start at the oldest raw row: the rollups do"
                    " not keep %s (add it to dimensions)",
                    key.metric,
                    ", ".join(key.group_by) or "nothing",
                    ", ".join(sorted(set(dict(key.where)) | set(key.group_by))),
                )

    def _last_ids(self) -> tuple[int, int]:
        return events.last_id(self.db, "calls"), events.last_id(self.db, "scores")

    def window(
        self,
        metric: str,
        aggregate: str,
        start_us: int,
        end_us: int,
        where: Mapping[str, str],
        group_by: Sequence[str],
    ) -> dict[Group, Sample]:
        series = self.series.get(SeriesKey.of(metric, where, group_by))
        cover = self._cover(series, start_us, end_us)
        percentile = PERCENTILES.get(aggregate)
        if series is None or cover is None or (percentile and not series.holds_values(cover)):
            return self.raw.window(metric, aggregate, start_us, end_us, where, group_by)
        groups = _groups(series, cover)
        for edge in _edges(start_us, end_us, cover):
            self._add_edge(groups, series.key, edge, percentile is not None)
        seconds = (end_us - start_us) / _US
        return {
            key: Sample(
                group.percentile(percentile)
                if percentile is not None
                else group.value(metric, aggregate, seconds),
                int(group.requests),
            )
            for key, group in groups.items()
            if group.requests
        }

    def events(self, start_us: int, end_us: int, where: Mapping[str, str]) -> int:
        series = self.series.get(SeriesKey.of("events", where, ()))
        cover = self._cover(series, start_us, end_us)
        if series is None or cover is None:
            return self.raw.events(start_us, end_us, where)
        groups: dict[Group, _Group] = {(): _Group(float(cover.totals.requests.sum()))}
        for edge in _edges(start_us, end_us, cover):
            self._add_edge(groups, series.key, edge, percentile=False)
        return int(groups[()].requests)

    def _cover(self, series: Series | None, start_us: int, end_us: int) -> Cover | None:
        if series is None or self.now_us is None or end_us > self.now_us:
            return None
        return series.cover(start_us, end_us)

    def _add_edge(
        self,
        groups: dict[Group, _Group],
        key: SeriesKey,
        edge: tuple[int, int],
        percentile: bool,
    ) -> None:
        """Adds the raw rows of a part of the window finer than the grids' steps, up to the
        row ids the grids hold."""
        assert self.last_ids is not None
        ranges = _span(edge[0], edge[1], self.last_ids)
        source, params = metric_rows(key.metric, dict(key.where), key.group_by, *ranges)
        dims = "".join(f"d{i}, " for i in range(len(key.group_by)))
        grouping = f" GROUP BY {dims[:-2]}" if dims else ""
        sql = f"SELECT {dims}count(*), count(v), total(v), min(v), max(v) FROM ({source})"
        width = len(key.group_by)
        for row in self.db.execute(sql + grouping, params):
            groups.setdefault(tuple(row[:width]), _Group()).add(*row[width:])
        if percentile:
            sql = f"SELECT {dims}v FROM ({source}) WHERE v IS NOT NULL"
            for row in self.db.execute(sql, params):
                group = tuple(row[:width])
                groups.setdefault(group, _Group()).samples.append(np.array([row[-1]]))


@dataclass
class _Group:
    """One group's aggregates over a window, gathered from the grids and the edges."""

    requests: float = 0.0
    values: float = 0.0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    samples: list[np.ndarray] = field(default_factory=list)

    def add(
        self, requests: float, values: float, total: float, low: float | None, high: float | None
    ) -> None:
        self.requests += requests
        self.values += values
        self.total += total
        self.low = min(self.low, math.inf if low is None else low)
        self.high = max(self.high, -math.inf if high is None else high)

    def value(self, metric: str, aggregate: str, seconds: float) -> float | None:
        """The aggregate, with SQL's answers for groups without values (as `LedgerReader`)."""
        if aggregate == "rate_per_s":
            return self.total / seconds
        if aggregate == "count":
            return self.total if metric in COUNTED else self.values
        if not self.values:
            return None
        return {
            "sum": self.total,
            "mean": self.total / self.values,
            "min": self.low,
            "max": self.high,
        }[aggregate]

    def percentile(self, q: int) -> float | None:
        """Linear interpolation between closest ranks, as `collector.tiers.raw_summary` does."""
        if not self.samples:
            return None
        values = np.concatenate(self.samples)
        return float(np.percentile(values, q, method="linear")) if len(values) else None


def _groups(series: Series, cover: Cover) -> dict[Group, _Group]:
    totals, first, end = cover
    groups: dict[Group, _Group] = {}
    for key, column in series.columns.items():
        if column < len(totals.requests) and totals.requests[column]:
            group = groups[key] = _Group()
            group.add(
                *(
                    float(part[column])
                    for part in (
                        totals.requests,
                        totals.values,
                        totals.sums,
                        totals.minima,
                        totals.maxima,
                    )
                )
            )
            if series.values is not None:
                group.samples.append(series.values.between(first, end, column))
    return groups


def _edges(start_us: int, end_us: int, cover: Cover) -> list[tuple[int, int]]:
    """The parts of ``[start_us, end_us)`` outside the covered whole seconds."""
    _, first, end = cover
    edges = [(start_us, first * _US), (end * _US, end_us)]
    return [(low, high) for low, high in edges if low < high]
