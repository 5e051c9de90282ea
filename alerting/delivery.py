"""Draining the notification outbox: one message per due group, marked sent once acknowledged.

A receiver that fails keeps its rows, retried after ``retry_interval``; rows are marked sent only
after the receiver acknowledged, so a crash in between re-sends once (at least once), and a
restart never re-sends what was marked.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import orjson

from alerting.db import transaction
from alerting.message import Notification
from alerting.notifiers import Notifier, NotifyError
from alerting.notifiers.console import ConsoleNotifier
from alerting.notifiers.email import EmailNotifier
from alerting.notifiers.slack import SlackNotifier
from schemas.alerting import AlertingConfig

log = logging.getLogger("alerting.delivery")
_T = TypeVar("_T")


@dataclass
class DeliveryReport:
    """Groups sent per receiver, and the error of each receiver that failed."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _Batch:
    receiver: str
    group_key: str
    ids: list[int]
    alerts: list[dict]


def build_notifiers(config: AlertingConfig) -> dict[str, Notifier]:
    """A notifier per configured receiver, plus ``console``."""
    notifiers: dict[str, Notifier] = {"console": ConsoleNotifier()}
    for receiver in config.receivers:
        if receiver.slack is not None:
            notifiers[receiver.name] = SlackNotifier(receiver.slack)
        elif receiver.email is not None:
            notifiers[receiver.name] = EmailNotifier(receiver.email)
        else:
            notifiers[receiver.name] = ConsoleNotifier()
    return notifiers


class Delivery:
    """Sends what is due from the outbox in ``db`` (a connection of its own)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        notifiers: Mapping[str, Notifier],
        retry_interval_us: int,
        external_url: str | None = None,
    ) -> None:
        self.db = db
        self.notifiers = notifiers
        self.retry_interval_us = retry_interval_us
        self.external_url = external_url
        self._db_lock = threading.Lock()  # one query at a time; close waits for it
        self._closed = False
        self._idle = threading.Event()
        self._idle.set()

    def close(self, wait: float = 2.0) -> None:
        """Close the connection after the run in progress (up to ``wait`` seconds) and the
        query in progress; a notification sent after that is not marked sent and goes out
        again after a restart (closing under a running query would crash SQLite)."""
        with self._db_lock:
            self._closed = True
        if not self._idle.wait(wait):
            log.warning("a notification was still being sent at exit; it may be sent again")
        with self._db_lock:
            self.db.close()

    async def run_once(self, now_us: int) -> DeliveryReport:
        self._idle.clear()
        try:
            return await self._run(now_us)
        finally:
            self._idle.set()

    async def _run(self, now_us: int) -> DeliveryReport:
        report = DeliveryReport()
        for batch in await asyncio.to_thread(self._query, self._due, now_us) or []:
            notification = Notification(
                batch.receiver, batch.group_key, batch.alerts, self.external_url
            )
            try:
                notifier = self.notifiers.get(batch.receiver)
                if notifier is None:
                    raise NotifyError(f"receiver {batch.receiver} is not configured")
                await notifier.send(notification)
            except NotifyError as error:
                log.warning("notification to %s failed: %s", batch.receiver, error)
                report.failed[batch.receiver] = str(error)
                await asyncio.to_thread(self._query, self._failed, batch, str(error), now_us)
                continue
            await asyncio.to_thread(self._query, self._sent, batch, now_us)
            report.sent[batch.receiver] = report.sent.get(batch.receiver, 0) + 1
        return report

    def _query(self, job: Callable[..., _T], *args: object) -> _T | None:
        """``job(*args)`` on the connection, unless it is closed (then None)."""
        with self._db_lock:
            return None if self._closed else job(*args)

    def _due(self, now_us: int) -> list[_Batch]:
        rows = self.db.execute(
            "SELECT id, receiver, group_key, alert_key, payload FROM notifications"
            " WHERE sent_us IS NULL AND due_us <= ? ORDER BY id",
            (now_us,),
        )
        batches: dict[tuple[str, str], _Batch] = {}
        latest: dict[tuple[str, str], dict[str, dict]] = {}
        for row_id, receiver, group_key, alert_key, payload in rows:
            key = (receiver, group_key)
            batches.setdefault(key, _Batch(receiver, group_key, [], [])).ids.append(row_id)
            latest.setdefault(key, {})[alert_key] = orjson.loads(payload)
        for key, batch in batches.items():
            batch.alerts = list(latest[key].values())
        return list(batches.values())

    def _sent(self, batch: _Batch, now_us: int) -> None:
        marks = ", ".join("?" * len(batch.ids))
        with transaction(self.db):
            self.db.execute(
                "UPDATE notifications SET sent_us = ?, attempts = attempts + 1, last_error = NULL"
                f" WHERE id IN ({marks})",
                (now_us, *batch.ids),
            )
            self.db.execute(
                "INSERT INTO notify_groups (receiver, group_key, last_sent_us) VALUES (?, ?, ?)"
                " ON CONFLICT (receiver, group_key) DO UPDATE SET"
                " last_sent_us = excluded.last_sent_us",
                (batch.receiver, batch.group_key, now_us),
            )

    def _failed(self, batch: _Batch, error: str, now_us: int) -> None:
        marks = ", ".join("?" * len(batch.ids))
        with transaction(self.db):
            self.db.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?, due_us = ?"
                f" WHERE id IN ({marks})",
                (error, now_us + self.retry_interval_us, *batch.ids),
            )
