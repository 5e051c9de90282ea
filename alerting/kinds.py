"""What each kind of rule sees at one instant: per label set, a value and whether it is active."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from alerting.clock import from_us, to_us, us
from alerting.reader import Group, MetricsReader, Sample
from schemas.rules import AbsenceRule, BudgetRule, ChangeRule, Rule, ThresholdRule

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


PROJECTION_AFTER = 0.1
"""Spend is projected only once a tenth of the period is gone: earlier it is mostly noise."""


@dataclass(frozen=True)
class Observation:
    """One label set of one rule at one evaluation: its value, threshold and condition."""

    labels: dict[str, str]
    value: float | None
    threshold: float | None
    active: bool


def observe(rule: Rule, reader: MetricsReader, now_us: int, tz: ZoneInfo) -> list[Observation]:
    """Observations for every label set the rule sees now (inactive ones included)."""
    if isinstance(rule, ThresholdRule):
        return _threshold(rule, reader, now_us)
    if isinstance(rule, ChangeRule):
        return _change(rule, reader, now_us)
    if isinstance(rule, BudgetRule):
        return _budget(rule, reader, now_us, tz)
    return _absence(rule, reader, now_us)


def _group_labels(group_by: list[str], key: Group) -> dict[str, str]:
    return {
        name: "" if value is None else str(value) for name, value in zip(group_by, key, strict=True)
    }


def _threshold(rule: ThresholdRule, reader: MetricsReader, now_us: int) -> list[Observation]:
    assert rule.aggregate is not None
    samples = reader.window(
        rule.metric, rule.aggregate, now_us - us(rule.window), now_us, rule.where, rule.group_by
    )
    compare = _OPS[rule.op]
    return [
        Observation(
            _group_labels(rule.group_by, key),
            sample.value,
            rule.threshold,
            sample.value is not None
            and sample.requests >= rule.min_requests
            and compare(sample.value, rule.threshold),
        )
        for key, sample in samples.items()
    ]


def _change(rule: ChangeRule, reader: MetricsReader, now_us: int) -> list[Observation]:
    """Value = current / baseline; active past ``ratio`` (above it, or below it when < 1)."""
    assert rule.aggregate is not None
    window = us(rule.window)
    current = reader.window(
        rule.metric, rule.aggregate, now_us - window, now_us, rule.where, rule.group_by
    )
    baseline = _baseline(rule, reader, now_us)
    result = []
    for key, sample in current.items():
        base = baseline.get(key)
        ratio = None
        if base is not None and base.value and sample.value is not None:
            ratio = sample.value / base.value
        active = (
            ratio is not None
            and sample.requests >= rule.min_requests
            and (ratio >= rule.ratio if rule.ratio > 1 else ratio <= rule.ratio)
        )
        result.append(Observation(_group_labels(rule.group_by, key), ratio, rule.ratio, active))
    return result


def _baseline(rule: ChangeRule, reader: MetricsReader, now_us: int) -> dict[Group, Sample]:
    """Per group: the offset window when it has enough traffic, else the scaled trailing one."""
    assert rule.aggregate is not None
    window, floor = us(rule.window), rule.baseline.min_requests
    found: dict[Group, Sample] = {}
    if rule.baseline.offset is not None:
        end = now_us - us(rule.baseline.offset)
        found = {
            key: sample
            for key, sample in reader.window(
                rule.metric, rule.aggregate, end - window, end, rule.where, rule.group_by
            ).items()
            if sample.requests >= floor
        }
    if rule.baseline.trailing is not None:
        trailing = us(rule.baseline.trailing)
        end = now_us - window
        scale = window / trailing if rule.aggregate in ("count", "sum") else 1.0
        for key, sample in reader.window(
            rule.metric, rule.aggregate, end - trailing, end, rule.where, rule.group_by
        ).items():
            if key not in found and sample.requests * scale >= floor and sample.value is not None:
                found[key] = Sample(sample.value * scale, sample.requests)
    return found


def period_bounds(now_us: int, period: str, tz: ZoneInfo) -> tuple[int, int]:
    """The calendar day or month containing ``now_us`` in ``tz``, as epoch microseconds."""
    local = from_us(now_us).astimezone(tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        end = start + timedelta(days=1)
    return to_us(start), to_us(end)


def _budget(
    rule: BudgetRule, reader: MetricsReader, now_us: int, tz: ZoneInfo
) -> list[Observation]:
    """One label set per group and warn level (``level``), plus ``basis: projected`` at 100%."""
    start, end = period_bounds(now_us, rule.period, tz)
    spent = reader.window(rule.metric, "sum", start, now_us, rule.where, rule.group_by)
    elapsed = max(now_us - start, 1) / (end - start)
    result = []
    for key, sample in spent.items():
        value = sample.value or 0.0
        labels = _group_labels(rule.group_by, key)
        for level in rule.warn_at:
            limit = rule.budget * level
            result.append(
                Observation(
                    labels | {"level": f"{level:g}", "basis": "actual"},
                    value,
                    limit,
                    value >= limit,
                )
            )
        if rule.projected:
            projection = value / elapsed if elapsed >= PROJECTION_AFTER else value
            result.append(
                Observation(
                    labels | {"level": "1", "basis": "projected"},
                    projection,
                    rule.budget,
                    projection >= rule.budget,
                )
            )
    return result


def _absence(rule: AbsenceRule, reader: MetricsReader, now_us: int) -> list[Observation]:
    count = reader.events(now_us - us(rule.window), now_us, rule.where)
    return [Observation({}, float(count), 0.0, count == 0)]
