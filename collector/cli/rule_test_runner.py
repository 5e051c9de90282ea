"""``llm-collector rules test``: promtool-style unit tests for alert rules.

A test file names rules files and lists tests: input events at offsets from ``start``, and the
alerts expected pending, firing or resolved at given offsets. Each test runs on a fresh ledger
in a temp dir, evaluated every ``evaluation_interval`` on an injected clock.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field

from alerting.engine import Engine, PassResult
from alerting.outbox import Outbox
from alerting.rules import load_rules
from collector.ledger import events
from collector.ledger.connection import Ledger
from collector.readers.alerts.cache import AlertCache
from schemas.alerting import RootRoute
from schemas.durations import Duration, format_duration
from schemas.rules import Rule

_CALL_FIELDS = frozenset(events.CALL_COLUMNS) - {"ts_us", "stream_id"}
_SCORE_FIELDS = frozenset(events.SCORE_COLUMNS) - {"ts_us", "stream_id"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class EventSeries(_Strict):
    """``count`` events at ``at``, repeated ``every`` until ``until`` (exclusive) if given."""

    at: Duration
    every: Duration | None = None
    until: Duration | None = None
    count: int = Field(1, ge=1)
    type: str = "llm_call"
    event: dict[str, Any] = {}


class Expectation(_Strict):
    """The alerts (exact label sets) in each state at the evaluation at ``at``."""

    at: Duration
    pending: list[dict[str, str]] = []
    firing: list[dict[str, str]] = []
    resolved: list[dict[str, str]] = []


class RuleTest(_Strict):
    name: str
    events: list[EventSeries] = []
    alerts: list[Expectation] = []


class RuleTestFile(_Strict):
    rule_files: list[Path]
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    timezone: str = "UTC"
    evaluation_interval: Duration = Field(timedelta(minutes=1))
    tests: list[RuleTest]


def _us(value: timedelta) -> int:
    return int(value.total_seconds() * 1_000_000)


def run_file(path: Path) -> list[str]:
    """Failures, one line each (``test name: at offset: ...``); empty when all pass."""
    spec = RuleTestFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    rules: list[Rule] = []
    for rules_file in spec.rule_files:
        rules += load_rules(path.parent / rules_file).rules
    failures: list[str] = []
    for test in spec.tests:
        with tempfile.TemporaryDirectory() as directory:
            failures += _run_test(spec, test, rules, Path(directory) / "ledger.db")
    return failures


def _run_test(spec: RuleTestFile, test: RuleTest, rules: list[Rule], db_path: Path) -> list[str]:
    start = int(spec.start.timestamp() * 1_000_000)
    ledger = Ledger(db_path)
    try:
        _write_events(ledger, start, test.events)
        engine = Engine(
            rules,
            ledger.db,
            AlertCache(ledger.db),
            Outbox(RootRoute()),
            ZoneInfo(spec.timezone),
        )
        step = _us(spec.evaluation_interval)
        checks = {_us(e.at): e for e in test.alerts}
        failures = []
        end = max(checks, default=0)
        for offset in range(0, end + 1, step):
            result = engine.evaluate(start + offset)
            if offset in checks:
                failures += _compare(test.name, checks.pop(offset), result)
        failures += [
            f"{test.name}: at {format_duration(e.at)}: not an evaluation time (a multiple of "
            f"{format_duration(spec.evaluation_interval)})"
            for e in checks.values()
        ]
        return failures
    finally:
        ledger.close()


def _write_events(ledger: Ledger, start: int, series: list[EventSeries]) -> None:
    with ledger.transaction() as db:
        for item in series:
            table: events.Table
            table, allowed = (
                ("scores", _SCORE_FIELDS) if item.type == "score" else ("calls", _CALL_FIELDS)
            )
            row = {"model": "m", "status": "ok", "price_source": 1} if table == "calls" else {}
            row |= item.event
            unknown = set(row) - allowed
            if unknown:
                raise ValueError(f"unknown event field(s) {', '.join(sorted(unknown))}")
            for ts in _times(start, item):
                values = dict.fromkeys(events.COLUMNS[table]) | row | {"ts_us": ts, "stream_id": 0}
                events.insert(db, table, [tuple(values.values())] * item.count)


def _times(start: int, item: EventSeries) -> list[int]:
    first = start + _us(item.at)
    if item.every is None or item.until is None:
        return [first]
    return list(range(first, start + _us(item.until), _us(item.every)))


def _compare(name: str, expected: Expectation, result: PassResult) -> list[str]:
    failures = []
    for state in ("pending", "firing", "resolved"):
        want = sorted(sorted(labels.items()) for labels in getattr(expected, state))
        got = sorted(sorted(alert.labels.items()) for alert in getattr(result, state))
        if want != got:
            at = format_duration(expected.at)
            failures.append(f"{name}: at {at}: {state}: expected {_show(want)}, got {_show(got)}")
    return failures


def _show(alerts: list[list[tuple[str, str]]]) -> str:
    return "[" + "; ".join("{" + ", ".join(f"{k}={v}" for k, v in a) + "}" for a in alerts) + "]"
