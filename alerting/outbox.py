"""The notification outbox in the ledger: what each receiver is to be told, and when.

Rows are written in the evaluation's transaction. A firing alert is queued when it starts
firing and again every ``repeat_interval``; resolved only if the receiver was told it fired.
Rows of one group wait ``group_wait`` (a new group) or ``group_interval`` (after a send).
Silences are checked here and again right before sending (`alerting.delivery`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from alerting.routing import Target, targets
from alerting.silences import Silences
from schemas.alerting import RootRoute, Silence

if TYPE_CHECKING:
    from alerting.engine import Alert


@dataclass(frozen=True)
class _Last:
    status: str
    created_us: int


class Outbox:
    """Queues notices for alerts according to the route tree and the silences."""

    def __init__(self, route: RootRoute, silences: Sequence[Silence] = ()) -> None:
        self.route = route
        self.silences = Silences(silences)

    def firing(self, db: sqlite3.Connection, alert: Alert, now_us: int) -> None:
        """Queue a firing notice per receiver not told within its repeat interval."""
        if self.silenced(db, alert.labels, now_us):
            return
        for target in targets(self.route, alert.labels):
            last = _last(db, alert.key, target.receiver)
            if (
                last is None
                or last.status == "resolved"
                or now_us - last.created_us >= target.repeat_interval_us
            ):
                self._queue(db, target, alert, "firing", now_us)

    def resolved(self, db: sqlite3.Connection, alert: Alert, now_us: int) -> None:
        """Queue a resolved notice for receivers that were told it fired (if they want it)."""
        for target in targets(self.route, alert.labels):
            last = _last(db, alert.key, target.receiver)
            if target.send_resolved and last is not None and last.status == "firing":
                self._queue(db, target, alert, "resolved", now_us)

    def silenced(self, db: sqlite3.Connection, labels: dict[str, str], now_us: int) -> bool:
        """Whether a configured or stored silence covers these labels now."""
        return self.silences.cover(db, labels, now_us)

    def _queue(
        self, db: sqlite3.Connection, target: Target, alert: Alert, status: str, now_us: int
    ) -> None:
        group = target.group_key(alert.labels)
        payload = {
            "status": status,
            "labels": alert.labels,
            "value": alert.value,
            "threshold": alert.threshold,
            "summary": alert.summary,
            "starts_us": alert.fired_us,
            "ends_us": now_us if status == "resolved" else None,
        }
        db.execute(
            "INSERT INTO notifications (receiver, group_key, alert_key, status, payload,"
            " created_us, due_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                target.receiver,
                group,
                alert.key,
                status,
                orjson.dumps(payload).decode(),
                now_us,
                _due(db, target, group, now_us),
            ),
        )


def _last(db: sqlite3.Connection, alert_key: str, receiver: str) -> _Last | None:
    """The latest notice queued for the receiver; one a silence stopped at send time does not
    count (the receiver was not told)."""
    row = db.execute(
        "SELECT status, created_us FROM notifications WHERE alert_key = ? AND receiver = ?"
        " AND silenced_us IS NULL ORDER BY id DESC LIMIT 1",
        (alert_key, receiver),
    ).fetchone()
    return _Last(*row) if row else None


def _due(db: sqlite3.Connection, target: Target, group: str, now_us: int) -> int:
    """Join the group's waiting batch; else wait group_interval after its last send, or
    group_wait when the group is new."""
    waiting = db.execute(
        "SELECT min(due_us) FROM notifications WHERE receiver = ? AND group_key = ?"
        " AND sent_us IS NULL AND silenced_us IS NULL",
        (target.receiver, group),
    ).fetchone()[0]
    if waiting is not None:
        return int(waiting)
    last = db.execute(
        "SELECT last_sent_us FROM notify_groups WHERE receiver = ? AND group_key = ?",
        (target.receiver, group),
    ).fetchone()
    if last is None:
        return now_us + target.group_wait_us
    return max(now_us, last[0] + target.group_interval_us)
