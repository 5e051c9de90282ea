"""One evaluation pass: observe every rule, advance each alert's lifecycle, queue notices.

Prometheus semantics per rule and label set (`alerting.lifecycle.transition`): inactive ->
pending (``for``) -> firing -> resolved after ``keep_firing_for`` without the condition. The
new states and the notices they cause commit in one transaction, so a restart neither forgets
a timer nor sends twice.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from alerting import store
from alerting.alert import Alert, labels_key
from alerting.clock import us
from alerting.db import transaction
from alerting.kinds import Observation, observe
from alerting.lifecycle import AlertState, Notice, Step, transition
from alerting.outbox import Outbox
from alerting.reader import MetricsReader
from schemas.rules import Rule

log = logging.getLogger("alerting.engine")
_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass
class PassResult:
    """What one evaluation pass saw: alerts by state after it, and rules that failed."""

    pending: list[Alert] = field(default_factory=list)
    firing: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


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
            stored = store.load_alerts(self.db)
            for rule in self.rules:
                self._advance(rule, seen[rule.name], stored.pop(rule.name, {}), now_us, result)
            for alerts in stored.values():  # rules no longer in the file: resolved now
                for alert in alerts.values():
                    self._inactive(alert, 0, now_us, result)
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
            store.record_evaluation(self.db, rule.name, now_us, seen)
            result.errors[rule.name] = seen
            for alert in alerts.values():  # an error neither resolves nor advances an alert
                held = result.firing if alert.state == AlertState.FIRING else result.pending
                held.append(alert)
            return
        store.record_evaluation(self.db, rule.name, now_us, None)
        for obs in seen:
            if obs.active:
                labels = {"alertname": rule.name, "severity": rule.severity} | rule.labels
                labels |= obs.labels
                stored = alerts.pop(labels_key(labels), None)
                self._active(rule, stored, labels, obs, now_us, result)
        for alert in alerts.values():
            self._inactive(alert, us(rule.keep_firing_for), now_us, result)

    def _active(
        self,
        rule: Rule,
        alert: Alert | None,
        labels: dict[str, str],
        obs: Observation,
        now_us: int,
        result: PassResult,
    ) -> None:
        """The condition holds: the alert's timers move on and its value is the new one."""
        before = alert.timers if alert is not None else None
        step = transition(before, True, now_us, us(rule.for_), us(rule.keep_firing_for))
        assert step.after is not None
        summary = render(rule.summary, labels, obs) if rule.summary else ""
        current = Alert(rule.name, labels, step.after, obs.value, obs.threshold, summary)
        store.save_alert(self.db, current)
        self._follow(current, step, now_us, result)

    def _inactive(
        self, alert: Alert, keep_firing_for_us: int, now_us: int, result: PassResult
    ) -> None:
        """The condition does not hold (or the rule is gone): kept firing, resolved or dropped."""
        step = transition(alert.timers, False, now_us, 0, keep_firing_for_us)
        if step.after is None:
            store.delete_alert(self.db, alert)
        # else kept firing: its timers and last value stay as stored
        self._follow(alert, step, now_us, result)

    def _follow(self, alert: Alert, step: Step, now_us: int, result: PassResult) -> None:
        """Queue the step's notice and file the alert in the pass's result."""
        if step.notice == Notice.FIRING:
            self.outbox.firing(self.db, alert, now_us)
            result.firing.append(alert)
        elif step.notice == Notice.RESOLVED:
            self.outbox.resolved(self.db, alert, now_us)
            result.resolved.append(alert)
        elif step.after is not None:
            result.pending.append(alert)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
