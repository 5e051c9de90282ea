"""What a report says, independent of how it is shown: figures, tables, movers, series."""

from __future__ import annotations

from dataclasses import dataclass, field

from alerting.history import AlertEpisode
from reports.periods import Period
from reports.reader import Figures

ADDITIVE = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cost_usd")
"""Figures that add up over time: their trailing average is the trailing sum per period."""
TOTALS = (
    ("requests", "Requests"),
    ("input_tokens", "Input tokens"),
    ("output_tokens", "Output tokens"),
    ("cache_read_tokens", "Cached tokens"),
    ("cost_usd", "Cost (USD)"),
    ("error_rate", "Error rate"),
    ("latency_ms_mean", "Latency mean (ms)"),
    ("latency_ms_p50", "Latency p50 (ms)"),
    ("latency_ms_p95", "Latency p95 (ms)"),
    ("latency_ms_p99", "Latency p99 (ms)"),
    ("quality_mean", "Quality mean"),
)
TABLE_DIMENSIONS = (
    ("task_type", "Task type"),
    ("model", "Model"),
    ("provider", "Provider"),
    ("tenant_id", "Tenant"),
)
OTHER = "(other)"
TRAILING_LABEL = {"daily": "7-day", "weekly": "4-week", "monthly": "3-month"}


@dataclass(frozen=True)
class Total:
    """One headline figure with the previous period's and the trailing average's."""

    key: str
    label: str
    value: float | None
    previous: float | None
    trailing: float | None


@dataclass(frozen=True)
class GroupRow:
    """One line of a table: a dimension value (or `OTHER`) and its figures."""

    name: str
    metrics: Figures


@dataclass(frozen=True)
class Mover:
    """A dimension value whose cost changed most against the previous period."""

    dimension: str
    name: str
    previous: float
    current: float


@dataclass(frozen=True)
class Series:
    """Per bucket (hour or day): its start, label, cost, p95 latency, requests by model."""

    starts_us: list[int]
    labels: list[str]
    cost: list[float]
    p95: list[float | None]
    requests_by_model: dict[str, list[int]]


@dataclass
class Report:
    period: Period
    totals: list[Total]
    tables: dict[str, list[GroupRow]]
    drivers: list[GroupRow]
    movers: list[Mover]
    unpriced: dict[str, int]
    unpriced_requests: int
    alerts: list[AlertEpisode]
    series: Series
    trailing_periods: int
    """Periods of the trailing span that had any call: additive averages are over these."""
    partial_until_us: int | None = None
    """Set when the period is not over: the figures stop here."""
    notes: list[str] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return any(t.value for t in self.totals if t.key in ("requests", "quality_mean"))

    def total(self, key: str) -> Total:
        return next(t for t in self.totals if t.key == key)
