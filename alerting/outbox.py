"""The notification outbox in the ledger: what each receiver is to be told, and when.

Rows are written in the evaluation's transaction. A firing alert is queued when it starts
firing and again every ``repeat_interval``; resolved only if the receiver was told it fired.
Rows of one group wait ``group_wait`` (a new group) or ``group_interval`` (after a send).
Silences are checked here and again right before sending (`alerting.delivery`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from alerting import store
from alerting.alert import Alert, payload
from alerting.lifecycle import Notice
from alerting.routing import Target, targets
from alerting.silences import Silences
from schemas.alerting import RootRoute, Silence


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
            last = store.last_notice(db, alert.key, target.receiver)
            if (
                last is None
                or last.status == Notice.RESOLVED
                or now_us - last.created_us >= target.repeat_interval_us
            ):
                self._queue(db, target, alert, Notice.FIRING, now_us)

    def resolved(self, db: sqlite3.Connection, alert: Alert, now_us: int) -> None:
        """Queue a resolved notice for receivers that were told it fired (if they want it)."""
        for target in targets(self.route, alert.labels):
            last = store.last_notice(db, alert.key, target.receiver)
            if target.send_resolved and last is not None and last.status == Notice.FIRING:
                self._queue(db, target, alert, Notice.RESOLVED, now_us)

    def silenced(self, db: sqlite3.Connection, labels: dict[str, str], now_us: int) -> bool:
        """Whether a configured or stored silence covers these labels now."""
        return self.silences.cover(db, labels, now_us)

    def _queue(
        self, db: sqlite3.Connection, target: Target, alert: Alert, status: Notice, now_us: int
    ) -> None:
        group = target.group_key(alert.labels)
        store.queue_notice(
            db,
            target.receiver,
            group,
            alert.key,
            payload(alert, status, now_us),
            now_us,
            _due(db, target, group, now_us),
        )


def _due(db: sqlite3.Connection, target: Target, group: str, now_us: int) -> int:
    """Join the group's waiting batch; else wait group_interval after its last send, or
    group_wait when the group is new."""
    waiting = store.group_waiting_until(db, target.receiver, group)
    if waiting is not None:
        return waiting
    last = store.group_last_sent(db, target.receiver, group)
    if last is None:
        return now_us + target.group_wait_us
    return max(now_us, last + target.group_interval_us)
