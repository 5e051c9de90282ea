"""A report's figures from the tiers: one pass over the rows of each span it compares.

The period is read in its chart buckets (1h rows for a day, 1d rows for a week or month); the
previous period and the trailing span in whole days (months for a monthly report). Additive
figures compare against the trailing sum per period; rates, means and percentiles against the
figure over the whole trailing span (the request-weighted average).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from reports.model import (
    ADDITIVE,
    OTHER,
    TABLE_DIMENSIONS,
    TOTALS,
    GroupRow,
    Mover,
    Report,
    Series,
    Total,
)
from reports.periods import Period
from reports.reader import Cell, Figures, ReportReader

DRIVER_DIMENSIONS = ("model", "task_type")
MOVERS = 5


class Fold:
    """The rows of one span merged into a total, groups per dimension, buckets and drivers."""

    def __init__(self, reader: ReportReader, dims: Sequence[str], starts: Sequence[int]) -> None:
        self.reader = reader
        self.dims = list(dims)
        self.total = reader.empty()
        self.groups: dict[str, dict[Any, Cell]] = {d: {} for d in dims}
        self.starts = list(starts)
        self.buckets = [reader.empty() for _ in starts]
        self.models: dict[str, list[int]] = {}
        self.drivers: dict[tuple[Any, ...], Cell] = {}

    def read(self, start_us: int, end_us: int, tier: str) -> Fold:
        """Merge each row twice (into its bucket and into its combination of dimension values);
        the total, groups and drivers come from the few combinations (sketch merges cost)."""
        combinations: dict[tuple[Any, ...], Cell] = {}
        for window_us, values, cell in self.reader.rows(start_us, end_us, tier, self.dims):
            self._into(combinations, values, cell)
            if self.starts:
                self._bucket(window_us, values, cell)
        driver_at = [self.dims.index(d) for d in DRIVER_DIMENSIONS if d in self.dims]
        for values, cell in combinations.items():
            self.total.merge(cell)
            for name, value in zip(self.dims, values, strict=True):
                self._into(self.groups[name], value, cell)
            if driver_at:
                self._into(self.drivers, tuple(values[i] for i in driver_at), cell)
        return self

    def _into(self, cells: dict[Any, Cell], key: Any, cell: Cell) -> None:
        if key not in cells:
            cells[key] = self.reader.empty()
        cells[key].merge(cell)

    def _bucket(self, window_us: int, values: tuple[Any, ...], cell: Cell) -> None:
        index = bisect_right(self.starts, window_us) - 1
        self.buckets[index].merge(cell)
        if "model" in self.dims:
            model = str(values[self.dims.index("model")])
            counts = self.models.setdefault(model, [0] * len(self.starts))
            counts[index] += cell.requests

    def metrics(self, cell: Cell) -> Figures:
        return self.reader.metrics(cell)


def gather(reader: ReportReader, period: Period, top_n: int, now_us: int | None = None) -> Report:
    """Everything a report shows for ``period`` (as of ``now_us``, default now: a period not
    over yet is marked partial)."""
    if now_us is None:
        now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    dims = [name for name, _ in TABLE_DIMENSIONS if name in reader.dimensions]
    span_tier = "1mo" if period.kind == "monthly" else "1d"
    now = Fold(reader, dims, period.buckets())
    now.read(period.start_us, period.end_us, period.bucket_tier())
    before = period.previous()
    previous = Fold(reader, dims, []).read(before.start_us, before.end_us, span_tier)
    starts = period.trailing()
    trailing = Fold(reader, [], starts).read(starts[0], period.start_us, span_tier)
    active = sum(1 for bucket in trailing.buckets if bucket.requests)
    current_m = now.metrics(now.total)
    return Report(
        period=period,
        totals=_totals(current_m, previous.metrics(previous.total), trailing, active),
        trailing_periods=active,
        partial_until_us=now_us if now_us < period.end_us else None,
        tables={name: _table(now, name, top_n) for name in dims},
        drivers=_drivers(now, min(top_n, MOVERS)),
        movers=_movers(now, previous),
        unpriced=_unpriced(now),
        unpriced_requests=current_m["unpriced_requests"],
        alerts=reader.alerts(period.start_us, period.end_us),
        series=_series(now, period),
        notes=[
            f"no {label.lower()} table: add {name} to dimensions to group the tiers by it"
            for name, label in TABLE_DIMENSIONS
            if name not in dims
        ],
    )


def _totals(current: Figures, previous: Figures, trailing: Fold, count: int) -> list[Total]:
    trail = trailing.metrics(trailing.total)
    totals = []
    for key, label in TOTALS:
        base = trail[key]
        if key in ADDITIVE and base is not None:
            base = base / count if count else None
        totals.append(Total(key, label, current[key], previous[key], base))
    return totals


def _order(item: tuple[Any, Figures]) -> tuple[float, int, str]:
    """Most expensive first, then most requests, then by name."""
    name, m = item
    return (-(m["cost_usd"] or 0.0), -m["requests"], str(name))


def _table(fold: Fold, name: str, top_n: int) -> list[GroupRow]:
    """The top ``top_n`` values of a dimension and one `OTHER` row summing the rest."""
    cells = fold.groups[name]
    ranked = sorted(((value, fold.metrics(cell)) for value, cell in cells.items()), key=_order)
    rows = [GroupRow(_name(value), m) for value, m in ranked[:top_n]]
    if len(ranked) > top_n:
        rest = fold.reader.empty()
        for value, _ in ranked[top_n:]:
            rest.merge(cells[value])
        rows.append(GroupRow(OTHER, fold.metrics(rest)))
    return rows


def _drivers(fold: Fold, count: int) -> list[GroupRow]:
    """The (model, task type) pairs that cost most."""
    ranked = sorted(((key, fold.metrics(cell)) for key, cell in fold.drivers.items()), key=_order)
    priced = [(key, m) for key, m in ranked if m["cost_usd"]]
    return [GroupRow(" / ".join(_name(v) for v in key), m) for key, m in priced[:count]]


def _movers(now: Fold, previous: Fold) -> list[Mover]:
    """Dimension values whose cost moved most (in USD) against the previous period."""
    found = []
    for name in now.dims:
        values = set(now.groups[name]) | set(previous.groups[name])
        for value in values:
            current = _cost(now.groups[name].get(value))
            before = _cost(previous.groups[name].get(value))
            if current != before:
                found.append(Mover(name, _name(value), before, current))
    found.sort(key=lambda m: (-abs(m.current - m.previous), m.dimension, m.name))
    return found[:MOVERS]


def _cost(cell: Cell | None) -> float:
    return 0.0 if cell is None else float(cell.cost_usd)


def _unpriced(fold: Fold) -> dict[str, int]:
    """Models with calls that could not be priced, and how many."""
    found = {}
    for value, cell in fold.groups.get("model", {}).items():
        count = fold.metrics(cell)["unpriced_requests"]
        if count:
            found[_name(value)] = count
    return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))


def _series(fold: Fold, period: Period) -> Series:
    per_bucket = [fold.metrics(cell) for cell in fold.buckets]
    return Series(
        starts_us=fold.starts,
        labels=[_bucket_label(start, period) for start in fold.starts],
        cost=[m["cost_usd"] or 0.0 for m in per_bucket],
        p95=[m["latency_ms_p95"] for m in per_bucket],
        requests_by_model=dict(sorted(fold.models.items(), key=lambda kv: -sum(kv[1]))),
    )


def _bucket_label(start_us: int, period: Period) -> str:
    local = datetime.fromtimestamp(start_us / 1e6, UTC).astimezone(period.zone)
    return f"{local:%H:%M}" if period.kind == "daily" else f"{local:%a %d}"


def _name(value: Any) -> str:
    return "(none)" if value is None else str(value)
