"""Draining the notification outbox: one message per due group, marked sent once acknowledged.

Each receiver sends in a lane of its own, so a hung receiver (a Slack timeout) holds up only
its own messages. Right before a send the silences are checked again: a silence added while
a message waited out ``group_wait`` stops it (marked silenced, not sent), as in Alertmanager.
A receiver that fails keeps its rows, retried after ``retry_interval``; rows are marked sent
(with the time the receiver acknowledged them) only after it did, so a crash in between
re-sends once (at least once), and a restart never re-sends what was marked.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from alerting.db import transaction
from alerting.message import Notification
from alerting.notifiers import Notifier, NotifyError
from alerting.notifiers.console import ConsoleNotifier
from alerting.notifiers.email import EmailNotifier
from alerting.notifiers.slack import SlackNotifier
from alerting.silences import Silences
from schemas.alerting import AlertingConfig

log = logging.getLogger("alerting.delivery")
_T = TypeVar("_T")


def wall_clock_us() -> int:
    return time.time_ns() // 1000


@dataclass
class DeliveryReport:
    """Groups sent and groups a silence stopped, per receiver; the error of each that failed."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    silenced: dict[str, int] = field(default_factory=dict)

    def add(self, other: DeliveryReport) -> None:
        self.sent.update(other.sent)
        self.failed.update(other.failed)
        self.silenced.update(other.silenced)


@dataclass
class _Batch:
    """The unsent rows of one group: their ids and the latest payload, per alert."""

    receiver: str
    group_key: str
    rows: dict[str, list[int]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ids(self) -> list[int]:
        return [row_id for ids in self.rows.values() for row_id in ids]


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
    """Sends what is due from the outbox in ``db`` (a connection of its own); ``clock`` gives
    the time a receiver acknowledged a message and the time silences are checked at."""

    def __init__(
        self,
        db: sqlite3.Connection,
        notifiers: Mapping[str, Notifier],
        retry_interval_us: int,
        external_url: str | None = None,
        silences: Silences | None = None,
        clock: Callable[[], int] = wall_clock_us,
    ) -> None:
        self.db = db
        self.notifiers = notifiers
        self.retry_interval_us = retry_interval_us
        self.external_url = external_url
        self.silences = silences or Silences()
        self.clock = clock
        self._db_lock = threading.Lock()  # one query at a time; close waits for it
        self._closed = False
        self._lanes: dict[str, asyncio.Task[DeliveryReport]] = {}
        self._dispatching = False
        self._running = 0  # dispatches and lanes in progress (on the event loop)
        self._idle = threading.Event()
        self._idle.set()

    def close(self, wait: float = 2.0) -> None:
        """Close the connection after the sends in progress (up to ``wait`` seconds) and the
        query in progress; a notification sent after that is not marked sent and goes out
        again after a restart (closing under a running query would crash SQLite)."""
        with self._db_lock:
            self._closed = True
        if not self._idle.wait(wait):
            log.warning("a notification was still being sent at exit; it may be sent again")
        with self._db_lock:
            self.db.close()

    async def run_once(self, now_us: int) -> DeliveryReport:
        """Send what is due at ``now_us``; return once the sends this run started are done."""
        report = DeliveryReport()
        for lane in await asyncio.gather(*await self.dispatch(now_us)):
            report.add(lane)
        return report

    async def dispatch(self, now_us: int) -> list[asyncio.Task[DeliveryReport]]:
        """Start a lane for each receiver with messages due and no lane still running, and
        return without waiting for them (the daemon's job: a hung receiver holds up only
        itself). A dispatch while another one reads the outbox starts nothing."""
        if self._dispatching:
            return []
        self._dispatching = True
        self._enter()
        try:
            busy = {name for name, lane in self._lanes.items() if not lane.done()}
            due = await asyncio.to_thread(self._query, self._due, now_us, busy) or {}
            lanes = [self._start(receiver, batches, now_us) for receiver, batches in due.items()]
        finally:
            self._dispatching = False
            self._leave()
        return lanes

    def _start(
        self, receiver: str, batches: list[_Batch], now_us: int
    ) -> asyncio.Task[DeliveryReport]:
        self._enter()
        lane = asyncio.create_task(self._lane(receiver, batches, now_us))
        lane.add_done_callback(self._lane_done)
        self._lanes[receiver] = lane
        return lane

    def _lane_done(self, lane: asyncio.Task[DeliveryReport]) -> None:
        self._leave()
        if not lane.cancelled() and lane.exception() is not None:
            log.error("a delivery lane failed", exc_info=lane.exception())

    def _enter(self) -> None:
        self._running += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._running -= 1
        if self._running == 0:
            self._idle.set()

    async def _lane(self, receiver: str, batches: list[_Batch], now_us: int) -> DeliveryReport:
        """One receiver's due groups, one after the other, each checked against the silences
        right before it goes."""
        report = DeliveryReport()
        for due in batches:
            batch = await asyncio.to_thread(self._query, self._unsilenced, due, self.clock())
            if batch is None:  # closed
                break
            if len(batch.rows) < len(due.rows):
                report.silenced[receiver] = report.silenced.get(receiver, 0) + 1
            if batch.rows:
                await self._send(batch, now_us, report)
        return report

    async def _send(self, batch: _Batch, now_us: int, report: DeliveryReport) -> None:
        receiver = batch.receiver
        notification = Notification(
            receiver, batch.group_key, list(batch.alerts.values()), self.external_url
        )
        try:
            notifier = self.notifiers.get(receiver)
            if notifier is None:
                raise NotifyError(f"receiver {receiver} is not configured")
            await notifier.send(notification)
        except NotifyError as error:
            log.warning("notification to %s failed: %s", receiver, error)
            report.failed[receiver] = str(error)
            await asyncio.to_thread(self._query, self._failed, batch, str(error), now_us)
            return
        acked_us = self.clock()  # before any await: the time of this acknowledgement
        await asyncio.to_thread(self._query, self._sent, batch, now_us, acked_us)
        report.sent[receiver] = report.sent.get(receiver, 0) + 1

    def _query(self, job: Callable[..., _T], *args: object) -> _T | None:
        """``job(*args)`` on the connection, unless it is closed (then None)."""
        with self._db_lock:
            return None if self._closed else job(*args)

    def _due(self, now_us: int, busy: set[str]) -> dict[str, list[_Batch]]:
        """The due groups of each receiver not in ``busy``, oldest first."""
        rows = self.db.execute(
            "SELECT id, receiver, group_key, alert_key, payload FROM notifications"
            " WHERE sent_us IS NULL AND silenced_us IS NULL AND due_us <= ? ORDER BY id",
            (now_us,),
        )
        batches: dict[tuple[str, str], _Batch] = {}
        for row_id, receiver, group_key, alert_key, payload in rows:
            if receiver in busy:
                continue
            batch = batches.setdefault((receiver, group_key), _Batch(receiver, group_key))
            batch.rows.setdefault(alert_key, []).append(row_id)
            batch.alerts[alert_key] = orjson.loads(payload)
        by_receiver: dict[str, list[_Batch]] = {}
        for (receiver, _), batch in batches.items():
            by_receiver.setdefault(receiver, []).append(batch)
        return by_receiver

    def _unsilenced(self, batch: _Batch, now_us: int) -> _Batch:
        """``batch`` without the alerts a silence covers at ``now_us``; their rows are marked
        silenced (a resolved notice too: Alertmanager mutes by labels, whatever the status)."""
        covered = self.silences.at(self.db, now_us)
        muted = [key for key, alert in batch.alerts.items() if covered(alert["labels"])]
        if not muted:
            return batch
        ids = [row_id for key in muted for row_id in batch.rows[key]]
        with transaction(self.db):
            self.db.execute(
                f"UPDATE notifications SET silenced_us = ? WHERE id IN ({_marks(ids)})",
                (now_us, *ids),
            )
        kept = [key for key in batch.rows if key not in muted]
        return _Batch(
            batch.receiver,
            batch.group_key,
            {key: batch.rows[key] for key in kept},
            {key: batch.alerts[key] for key in kept},
        )

    def _sent(self, batch: _Batch, now_us: int, acked_us: int) -> None:
        """Rows sent, stamped with the acknowledgement; the group's timer from the pass."""
        ids = batch.ids
        with transaction(self.db):
            self.db.execute(
                "UPDATE notifications SET sent_us = ?, attempts = attempts + 1, last_error = NULL"
                f" WHERE id IN ({_marks(ids)})",
                (acked_us, *ids),
            )
            self.db.execute(
                "INSERT INTO notify_groups (receiver, group_key, last_sent_us) VALUES (?, ?, ?)"
                " ON CONFLICT (receiver, group_key) DO UPDATE SET"
                " last_sent_us = excluded.last_sent_us",
                (batch.receiver, batch.group_key, now_us),
            )

    def _failed(self, batch: _Batch, error: str, now_us: int) -> None:
        ids = batch.ids
        with transaction(self.db):
            self.db.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?, due_us = ?"
                f" WHERE id IN ({_marks(ids)})",
                (error, now_us + self.retry_interval_us, *ids),
            )


def _marks(ids: list[int]) -> str:
    return ", ".join("?" * len(ids))
