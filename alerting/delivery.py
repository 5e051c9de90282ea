"""Draining the notification outbox: one message per due group, marked sent once acknowledged.

Each receiver sends in a lane of its own, so a hung receiver (a Slack timeout) holds up only
its own messages. Right before a send the silences are checked again: a silence added while
a message waited out ``group_wait`` stops it (marked silenced, not sent), as in Alertmanager.
A receiver that fails keeps its rows, retried ``retry_interval`` after the failure; rows are
marked sent (with the time the receiver acknowledged them) only after it did, so a crash in
between re-sends once (at least once), and a restart never re-sends what was marked. A lane
that breaks (the ledger refusing a write) logs one line and its receiver waits, the wait
doubling from a second up to ``retry_interval``. A blocking sender (Slack) runs on a thread
of the receiver's own, never on the loop's shared pool that reading the traces needs.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from alerting import store
from alerting.alert import AlertPayload
from alerting.clock import wall_clock_us
from alerting.message import Notification
from alerting.notifiers import BlockingNotifier, Notifier, NotifyError
from alerting.notifiers.console import ConsoleNotifier
from alerting.notifiers.email import EmailNotifier
from alerting.notifiers.slack import SlackNotifier
from alerting.silences import Silences
from schemas.alerting import AlertingConfig

log = logging.getLogger("alerting.delivery")
_T = TypeVar("_T")

EXPECTED = (NotifyError, OSError, sqlite3.Error)
"""Failures of a receiver, the disk or the ledger: logged in one line, no traceback."""
FIRST_PAUSE_US = 1_000_000
"""The wait after a lane first breaks; it doubles at each break, up to ``retry_interval``."""


@dataclass
class DeliveryReport:
    """What one lane did: groups sent and groups a silence stopped; the error if one failed."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    silenced: dict[str, int] = field(default_factory=dict)


@dataclass
class _Batch:
    """The unsent rows of one group: their ids and the latest payload, per alert."""

    receiver: str
    group_key: str
    rows: dict[str, list[int]] = field(default_factory=dict)
    alerts: dict[str, AlertPayload] = field(default_factory=dict)

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
        self.failing: dict[str, str] = {}
        """The error of each receiver whose latest lane failed a send or broke."""
        self._db_lock = threading.Lock()  # one query at a time; close waits for it
        self._closed = False
        self._lanes: dict[str, asyncio.Task[DeliveryReport]] = {}
        self._pauses: dict[str, tuple[int, int]] = {}  # receiver: (wait, until) after a break
        self._threads: dict[str, ThreadPoolExecutor] = {}  # blocking receivers: a thread each
        self._dispatching = False
        self._running = 0  # dispatches and lanes in progress (on the event loop)
        self._idle = threading.Event()
        self._idle.set()

    def close(self, wait: float = 2.0) -> None:
        """Close the connection after the sends in progress (up to ``wait`` seconds) and the
        query in progress; a notification sent after that is not marked sent and goes out
        again after a restart (closing under a running query would crash SQLite). A send
        still blocked then keeps its thread until its timeout; nothing waits for it."""
        with self._db_lock:
            self._closed = True
        if not self._idle.wait(wait):
            log.warning("a notification was still being sent at exit; it may be sent again")
        with self._db_lock:
            self.db.close()
        for thread in list(self._threads.values()):
            thread.shutdown(wait=False, cancel_futures=True)

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
            busy |= {name for name, (_, until) in self._pauses.items() if until > now_us}
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
        lane.add_done_callback(partial(self._lane_done, receiver))
        self._lanes[receiver] = lane
        return lane

    def _lane_done(self, receiver: str, lane: asyncio.Task[DeliveryReport]) -> None:
        """Note how the lane ended; one that broke pauses its receiver."""
        self._leave()
        if lane.cancelled():
            return
        error = lane.exception()
        if error is None:
            self._pauses.pop(receiver, None)
            self._note(receiver, lane.result().failed.get(receiver))
            return
        problem = f"{type(error).__name__}: {error}"
        self._note(receiver, problem)
        wait = self._pause(receiver) / 1e6
        if isinstance(error, EXPECTED):
            log.error("delivery to %s failed: %s; retrying in %.3g s", receiver, problem, wait)
        else:
            log.error("delivery to %s failed; retrying in %.3g s", receiver, wait, exc_info=error)

    def _note(self, receiver: str, error: str | None) -> None:
        if error is None:
            self.failing.pop(receiver, None)
        else:
            self.failing[receiver] = error

    def _pause(self, receiver: str) -> int:
        """Hold ``receiver`` back, twice as long as after its previous break; the wait in us."""
        previous = self._pauses.get(receiver, (0, 0))[0]
        wait = min(previous * 2 or FIRST_PAUSE_US, max(self.retry_interval_us, FIRST_PAUSE_US))
        self._pauses[receiver] = (wait, self.clock() + wait)
        return wait

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
            await self._notify(receiver, notification)
        except NotifyError as error:
            failed_us = self.clock()  # the retry waits from the failure, not the dispatch
            log.warning("notification to %s failed: %s", receiver, error)
            report.failed[receiver] = str(error)
            await asyncio.to_thread(self._query, self._failed, batch, str(error), failed_us)
            return
        acked_us = self.clock()  # before any await: the time of this acknowledgement
        await asyncio.to_thread(self._query, self._sent, batch, now_us, acked_us)
        report.sent[receiver] = report.sent.get(receiver, 0) + 1

    async def _notify(self, receiver: str, notification: Notification) -> None:
        notifier = self.notifiers.get(receiver)
        if notifier is None:
            raise NotifyError(f"receiver {receiver} is not configured")
        if isinstance(notifier, BlockingNotifier):
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                self._thread_of(receiver), notifier.send_blocking, notification
            )
        else:
            await notifier.send(notification)

    def _thread_of(self, receiver: str) -> ThreadPoolExecutor:
        """The one thread of ``receiver``'s blocking sends (its lanes run one at a time)."""
        thread = self._threads.get(receiver)
        if thread is None:
            thread = ThreadPoolExecutor(1, thread_name_prefix=f"notify-{receiver}")
            self._threads[receiver] = thread
        return thread

    def _query(self, job: Callable[..., _T], *args: object) -> _T | None:
        """``job(*args)`` on the connection, unless it is closed (then None)."""
        with self._db_lock:
            return None if self._closed else job(*args)

    def _due(self, now_us: int, busy: set[str]) -> dict[str, list[_Batch]]:
        """The due groups of each receiver not in ``busy``, oldest first."""
        batches: dict[tuple[str, str], _Batch] = {}
        for notice in store.due_notices(self.db, now_us):
            if notice.receiver in busy:
                continue
            key = (notice.receiver, notice.group_key)
            batch = batches.setdefault(key, _Batch(notice.receiver, notice.group_key))
            batch.rows.setdefault(notice.alert_key, []).append(notice.id)
            batch.alerts[notice.alert_key] = notice.payload
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
        store.mark_silenced(
            self.db, [row_id for key in muted for row_id in batch.rows[key]], now_us
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
        store.mark_sent(self.db, batch.ids, acked_us, batch.receiver, batch.group_key, now_us)

    def _failed(self, batch: _Batch, error: str, failed_us: int) -> None:
        """Rows kept, due again ``retry_interval`` after the failure at ``failed_us``."""
        store.mark_failed(self.db, batch.ids, error, failed_us + self.retry_interval_us)
