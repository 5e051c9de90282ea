"""One evaluation pass: observe every rule, advance each alert's lifecycle, queue notices.

Prometheus semantics per rule and label set: inactive -> pending (``for``) -> firing ->
resolved after ``keep_firing_for`` without the condition. The new states and the notices they
cause commit in one transaction, so a restart neither forgets a timer nor sends twice.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import orjson

from alerting.clock import us
from alerting.db import transaction
from alerting.kinds import Observation, observe
from alerting.outbox import Outbox
from alerting.reader import MetricsReader
from schemas.rules import Rule

log = logging.getLogger("alerting.engine")
_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass
class Alert:
    """One rule and label set that is pending or firing."""

    rule: str
    labels: dict[str, str]
    state: str
    active_since_us: int
    last_active_us: int
    fired_us: int | None = None
    value: float | None = None
    threshold: float | None = None
    summary: str = ""

    @property
    def key(self) -> str:
        return labels_key(self.labels)


@dataclass
class PassResult:
    """What one evaluation pass saw: alerts by state after it, and rules that failed."""

    pending: list[Alert] = field(default_factory=list)
    firing: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def labels_key(labels: dict[str, str]) -> str:
    """The canonical text of a label set (sorted JSON), the identity of an alert."""
    return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()


def format_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"


def render(template: str, labels: dict[str, str], obs: Observation) -> str:
    """``{{ value }}``, ``{{ threshold }}`` and ``{{ <label> }}`` substituted; unknown: kept."""
    values = labels | {"value": format_value(obs.value), "threshold": format_value(obs.threshold)}
    return _TEMPLATE.sub(lambda m: values.get(m[1], m[0]), template)


class Engine:
    """Evaluates rules against a reader and keeps their state in the ledger connection ``db``."""

    def __init__(
        self,
        rules: Sequence[Rule],
        db: sqlite3.Connection,
        reader: MetricsReader,
        outbox: Outbox,
        tz: ZoneInfo,
    ) -> None:
        self.rules = list(rules)
        self.db = db
        self.reader = reader
        self.outbox = outbox
        self.tz = tz

    def evaluate(self, now_us: int) -> PassResult:
        """Observe (reads only), then commit states and notices in one write transaction."""
        seen = self._observe(now_us)
        result = PassResult()
        with transaction(self.db):
            stored = load_alerts(self.db)
            for rule in self.rules:
                self._advance(rule, seen[rule.name], stored.pop(rule.name, {}), now_us, result)
            for alerts in stored.values():  # rules no longer in the file
                for alert in alerts.values():
                    self._drop(alert, now_us, result)
        return result

    def _observe(self, now_us: int) -> dict[str, list[Observation] | str]:
        """Each rule's observations, or the error that stopped it (every rule's, when the
        reader could not prepare the pass)."""
        try:
            self.reader.refresh(now_us, self.rules)
        except Exception as error:
            log.exception("the metrics reader failed to prepare the pass")
            return dict.fromkeys((rule.name for rule in self.rules), _describe(error))
        seen: dict[str, list[Observation] | str] = {}
        for rule in self.rules:
            try:
                seen[rule.name] = observe(rule, self.reader, now_us, self.tz)
            except Exception as error:
                log.exception("rule %s failed to evaluate", rule.name)
                seen[rule.name] = _describe(error)
        return seen

    def _advance(
        self,
        rule: Rule,
        seen: list[Observation] | str,
        alerts: dict[str, Alert],
        now_us: int,
        result: PassResult,
    ) -> None:
        if isinstance(seen, str):
            self._record(rule.name, now_us, seen)
            result.errors[rule.name] = seen
            for alert in alerts.values():  # an error neither resolves nor advances an alert
                (result.firing if alert.state == "firing" else result.pending).append(alert)
            return
        self._record(rule.name, now_us, None)
        for obs in seen:
            if obs.active:
                labels = {"alertname": rule.name, "severity": rule.severity} | rule.labels
                labels |= obs.labels
                alert = alerts.pop(labels_key(labels), None)
                self._active(rule, alert, labels, obs, now_us, result)
        for alert in alerts.values():
            self._inactive(rule, alert, now_us, result)

    def _active(
        self,
        rule: Rule,
        alert: Alert | None,
        labels: dict[str, str],
        obs: Observation,
        now_us: int,
        result: PassResult,
    ) -> None:
        if alert is None:
            alert = Alert(rule.name, labels, "pending", now_us, now_us)
        alert.last_active_us = now_us
        alert.value, alert.threshold = obs.value, obs.threshold
        alert.summary = render(rule.summary, labels, obs) if rule.summary else ""
        if alert.state == "pending" and now_us - alert.active_since_us >= us(rule.for_):
            alert.state, alert.fired_us = "firing", now_us
        save_alert(self.db, alert)
        if alert.state == "firing":
            self.outbox.firing(self.db, alert, now_us)
            result.firing.append(alert)
        else:
            result.pending.append(alert)

    def _inactive(self, rule: Rule, alert: Alert, now_us: int, result: PassResult) -> None:
        if alert.state == "firing" and now_us - alert.last_active_us < us(rule.keep_firing_for):
            self.outbox.firing(self.db, alert, now_us)
            result.firing.append(alert)
            return
        self._drop(alert, now_us, result)

    def _drop(self, alert: Alert, now_us: int, result: PassResult) -> None:
        self.db.execute(
            "DELETE FROM alert_state WHERE rule = ? AND labels = ?", (alert.rule, alert.key)
        )
        if alert.state == "firing":
            self.outbox.resolved(self.db, alert, now_us)
            result.resolved.append(alert)

    def _record(self, rule: str, now_us: int, error: str | None) -> None:
        self.db.execute(
            "INSERT INTO alert_rules (rule, evaluated_us, error) VALUES (?, ?, ?)"
            " ON CONFLICT (rule) DO UPDATE SET evaluated_us = excluded.evaluated_us,"
            " error = excluded.error",
            (rule, now_us, error),
        )


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def load_alerts(db: sqlite3.Connection) -> dict[str, dict[str, Alert]]:
    """Stored pending and firing alerts, by rule name and label key."""
    alerts: dict[str, dict[str, Alert]] = {}
    rows = db.execute(
        "SELECT rule, labels, state, active_since_us, last_active_us, fired_us, value,"
        " threshold, summary FROM alert_state ORDER BY rule, labels"
    )
    for rule, labels, *rest in rows:
        alerts.setdefault(rule, {})[labels] = Alert(rule, orjson.loads(labels), *rest)
    return alerts


def save_alert(db: sqlite3.Connection, alert: Alert) -> None:
    db.execute(
        "INSERT OR REPLACE INTO alert_state (rule, labels, state, active_since_us,"
        " last_active_us, fired_us, value, threshold, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert.rule,
            alert.key,
            alert.state,
            alert.active_since_us,
            alert.last_active_us,
            alert.fired_us,
            alert.value,
            alert.threshold,
            alert.summary,
        ),
    )
