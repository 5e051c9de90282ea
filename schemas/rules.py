"""The alert rules file: threshold, change, budget and absence rules, validated up front.

A typo or an impossible combination (a percentile of a count, a budget on latency) is an error
at load time, never a rule that silently never fires.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.config import ALLOWED_DIMENSIONS
from schemas.durations import Duration


def _positive_window(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("the window must be longer than zero")
    return value


Window = Annotated[Duration, AfterValidator(_positive_window)]
"""A rule's window: a duration longer than zero."""

Metric = Literal[
    "requests",
    "errors",
    "error_rate",
    "success_rate",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "tokens_per_second",
    "latency_ms",
    "quality_score",
    "unpriced_requests",
]
Aggregate = Literal["count", "sum", "rate_per_s", "mean", "min", "max", "p50", "p90", "p95", "p99"]
_DISTRIBUTION = ("mean", "min", "max", "p50", "p90", "p95", "p99")
AGGREGATES_OF: dict[str, tuple[str, ...]] = {
    "requests": ("count", "rate_per_s"),
    "errors": ("count", "rate_per_s"),
    "unpriced_requests": ("count", "rate_per_s"),
    "error_rate": ("mean",),
    "success_rate": ("mean",),
    "cost_usd": ("sum", "rate_per_s", *_DISTRIBUTION),
    "input_tokens": ("sum", "rate_per_s", *_DISTRIBUTION),
    "output_tokens": ("sum", "rate_per_s", *_DISTRIBUTION),
    "total_tokens": ("sum", "rate_per_s", *_DISTRIBUTION),
    "tokens_per_second": _DISTRIBUTION,
    "latency_ms": _DISTRIBUTION,
    "quality_score": ("count", *_DISTRIBUTION),
}
"""Which aggregates make sense for each metric; the first is the default."""
WHERE_KEYS = frozenset(ALLOWED_DIMENSIONS)
BUDGET_METRICS = ("cost_usd", "input_tokens", "output_tokens", "total_tokens")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _check_dimensions(names: list[str], what: str) -> list[str]:
    unknown = [name for name in names if name not in WHERE_KEYS]
    if unknown:
        raise ValueError(
            f"cannot {what} {', '.join(unknown)}; choose from {', '.join(ALLOWED_DIMENSIONS)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"a dimension is listed twice in {what}")
    return names


GroupBy = Annotated[list[str], AfterValidator(lambda names: _check_dimensions(names, "group by"))]


class _RuleBase(_Strict):
    """What every rule has: identity, lifecycle timers, severity and presentation."""

    name: str
    for_: Duration = Field(timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    severity: Literal["critical", "warning", "info"] = "warning"
    labels: dict[str, str] = {}
    summary: str = ""
    where: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a rule name is letters, digits and _, not starting with a digit")
        return value

    @field_validator("where")
    @classmethod
    def _where_keys(cls, value: dict[str, str]) -> dict[str, str]:
        _check_dimensions(list(value), "filter on")
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = {"alertname", "severity"} & set(value)
        if reserved:
            raise ValueError(f"{', '.join(sorted(reserved))} is set by the rule itself")
        return value


class _Windowed(_RuleBase):
    """A rule over one metric aggregated over a trailing window, per group."""

    metric: Metric
    aggregate: Aggregate | None = None
    window: Window = timedelta(minutes=5)
    group_by: GroupBy = []
    min_requests: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _aggregate_fits_metric(self) -> _Windowed:
        allowed = AGGREGATES_OF[self.metric]
        if self.aggregate is None:
            self.aggregate = allowed[0]  # type: ignore[assignment]
        elif self.aggregate not in allowed:
            raise ValueError(
                f"aggregate: {self.aggregate} does not apply to {self.metric}; "
                f"use one of {', '.join(allowed)}"
            )
        return self


class ThresholdRule(_Windowed):
    """Fires while ``aggregate(metric)`` over the window compares true against ``threshold``."""

    kind: Literal["threshold"]
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    threshold: float


class Baseline(_Strict):
    """The same window ``offset`` ago; when that has too little traffic, the trailing period."""

    offset: Duration | None = timedelta(days=1)
    trailing: Duration | None = None
    min_requests: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> Baseline:
        if self.offset is None and self.trailing is None:
            raise ValueError("give offset, trailing, or both")
        for value in (self.offset, self.trailing):
            if value is not None and value <= timedelta(0):
                raise ValueError("offset and trailing must be longer than zero")
        return self


class ChangeRule(_Windowed):
    """Fires when the window's value is ``ratio`` times the baseline (ratio < 1: a drop)."""

    kind: Literal["change"]
    baseline: Baseline = Baseline()
    ratio: float = Field(gt=0)

    @model_validator(mode="after")
    def _not_one(self) -> ChangeRule:
        if self.ratio == 1:
            raise ValueError("ratio: 1 fires on no change; use > 1 for a spike, < 1 for a drop")
        return self


class BudgetRule(_RuleBase):
    """Spend (or tokens) per calendar day or month against a budget, per group."""

    kind: Literal["budget"]
    metric: Literal["cost_usd", "input_tokens", "output_tokens", "total_tokens"] = "cost_usd"
    period: Literal["day", "month"] = "day"
    group_by: GroupBy = []
    budget: float = Field(gt=0)
    warn_at: list[float] = [1.0]
    projected: bool = False

    @field_validator("warn_at")
    @classmethod
    def _levels(cls, value: list[float]) -> list[float]:
        if not value or any(level <= 0 for level in value):
            raise ValueError(
                "warn_at is a non-empty list of fractions of the budget, e.g. [0.8, 1]"
            )
        if len(set(value)) != len(value):
            raise ValueError("a warn_at level is listed twice")
        return sorted(value)


class AbsenceRule(_RuleBase):
    """Fires when no event (call or score) matching ``where`` arrived within the window."""

    kind: Literal["absence"]
    window: Window = timedelta(minutes=15)


Rule = Annotated[ThresholdRule | ChangeRule | BudgetRule | AbsenceRule, Field(discriminator="kind")]


class RulesFile(_Strict):
    """The whole rules file: a list of uniquely named rules."""

    rules: list[Rule] = []

    @model_validator(mode="after")
    def _unique_names(self) -> RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name}")
            seen.add(rule.name)
        return self
