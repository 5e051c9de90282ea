"""An alert (one rule and label set, pending or firing) and the notice payload it leaves in the
notification outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import orjson

from alerting.lifecycle import AlertState, Notice, Timers


def labels_key(labels: dict[str, str]) -> str:
    """The canonical text of a label set (sorted JSON), the identity of an alert."""
    return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True)
class Alert:
    """One rule and label set that is pending or firing, with its last observation."""

    rule: str
    labels: dict[str, str]
    timers: Timers
    value: float | None = None
    threshold: float | None = None
    summary: str = ""

    @property
    def key(self) -> str:
        return labels_key(self.labels)

    @property
    def state(self) -> AlertState:
        return self.timers.state

    @property
    def active_since_us(self) -> int:
        return self.timers.active_since_us

    @property
    def fired_us(self) -> int | None:
        return self.timers.fired_us


class AlertPayload(TypedDict):
    """One alert as a notice tells it (``notifications.payload``, JSON): what messages show."""

    status: Notice
    labels: dict[str, str]
    value: float | None
    threshold: float | None
    summary: str
    starts_us: int | None
    """When it started firing."""
    ends_us: int | None
    """When it resolved; None in a firing notice."""


def payload(alert: Alert, status: Notice, now_us: int) -> AlertPayload:
    """The notice of ``alert`` at ``now_us``."""
    return {
        "status": status,
        "labels": alert.labels,
        "value": alert.value,
        "threshold": alert.threshold,
        "summary": alert.summary,
        "starts_us": alert.fired_us,
        "ends_us": now_us if status == Notice.RESOLVED else None,
    }
