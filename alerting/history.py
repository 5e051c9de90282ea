"""The alerts of a past period (for reports): every episode that was firing at some time in it,
from the notification log and the alerts still firing."""

from __future__ import annotations

import sqlite3
from typing import TypedDict

from alerting import store
from alerting.alert import AlertPayload, payload
from alerting.lifecycle import Notice

LOOKBACK_US = 35 * 24 * 3600 * 1_000_000
"""How far before a period a firing notice is looked for (repeats come every few hours)."""


class AlertEpisode(TypedDict):
    """One alert from the time it fired until it resolved."""

    alertname: str
    severity: str
    labels: dict[str, str]
    """The other labels."""
    fired_us: int
    resolved_us: int | None
    """None while it fires."""
    value: float | None
    summary: str


def episodes(db: sqlite3.Connection, start_us: int, end_us: int) -> list[AlertEpisode]:
    """Episodes firing at some time in ``[start_us, end_us)``, by the time they fired."""
    found: dict[tuple[str, int], AlertEpisode] = {}
    for notice in store.notices_created(db, start_us - LOOKBACK_US, end_us):
        starts_us = notice.payload["starts_us"]
        if starts_us is not None:
            episode = found.setdefault((notice.alert_key, starts_us), _episode(notice.payload))
            episode["value"] = notice.payload["value"]
            episode["resolved_us"] = notice.payload["ends_us"]
    for alert in store.firing_alerts(db):
        if alert.fired_us is not None and alert.fired_us < end_us:
            found[(alert.key, alert.fired_us)] = _episode(payload(alert, Notice.FIRING, end_us))
    within = [
        e
        for e in found.values()
        if e["fired_us"] < end_us and (e["resolved_us"] is None or e["resolved_us"] >= start_us)
    ]
    return sorted(within, key=lambda e: (e["fired_us"], e["alertname"]))


def _episode(notice: AlertPayload) -> AlertEpisode:
    labels = dict(notice["labels"])
    assert notice["starts_us"] is not None
    return {
        "alertname": labels.pop("alertname", ""),
        "severity": labels.pop("severity", ""),
        "labels": labels,
        "fired_us": notice["starts_us"],
        "resolved_us": notice["ends_us"],
        "value": notice.get("value"),
        "summary": notice.get("summary") or "",
    }
