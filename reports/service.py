"""Building, archiving and delivering scheduled reports, with the sent-log as the source of truth.

`open_due` queues a report once when its schedule fell due no longer than ``grace`` ago (so a
report missed while the daemon was down goes out after it starts, and never twice); `deliver`
sends whatever is queued and due, retrying failed channels after ``retry_interval``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from alerting.notifiers import NotifyError
from reports import archive, sentlog
from reports.charts import draw
from reports.digest import Digest
from reports.gather import gather
from reports.periods import Period
from reports.reader import ReportReader
from reports.schedule import last_due, trigger
from reports.sentlog import Channel
from schemas.alerting import AlertingConfig
from schemas.reports import ReportsConfig

log = logging.getLogger("reports")


@dataclass
class Outcome:
    """What one delivery pass did: (kind, period, channel) sent, and errors by the same key."""

    sent: list[tuple[str, str, Channel]] = field(default_factory=list)
    failed: dict[tuple[str, str, Channel], str] = field(default_factory=dict)


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


class ReportService:
    """Reports over ``reader``; the sent-log on ``db`` (a connection of its own)."""

    def __init__(
        self,
        reader: ReportReader,
        db: sqlite3.Connection,
        config: ReportsConfig,
        alerting: AlertingConfig,
        zone: ZoneInfo,
    ) -> None:
        self.reader = reader
        self.db = db
        self.config = config
        self.alerting = alerting
        self.zone = zone

    def render(self, period: Period) -> archive.Rendered:
        """Gather the figures and draw the charts (SQLite and matplotlib: run in a thread)."""
        report = gather(self.reader, period, self.config.top_n)
        return archive.Rendered(report, draw(report))

    def channels(self, kind: str) -> list[Channel]:
        """Where a report of ``kind`` goes: its files, then email and Slack when configured."""
        schedule = self.config.schedules().get(kind)
        if schedule is None:
            return []
        return [
            Channel.FILES,
            *([Channel.EMAIL] if schedule.to else []),
            *([Channel.SLACK] if schedule.slack else []),
        ]

    def open_due(self, now: datetime) -> list[sentlog.Key]:
        """Queue every report whose schedule fell due within the grace and was never queued."""
        opened = []
        for kind, schedule in self.config.schedules().items():
            due = last_due(trigger(schedule, self.zone), now)
            if due is None or now - due > self.config.grace:
                continue
            period = Period.last_complete(kind, due, self.zone)
            if sentlog.open_once(self.db, kind, period.label, self.channels(kind), to_us(now)):
                log.info("%s report for %s is due (since %s)", kind, period.label, due)
                opened.append((kind, period.label))
        return opened

    async def deliver(self, now: datetime) -> Outcome:
        """Send every queued channel that is due; a failure is retried after retry_interval."""
        outcome = Outcome()
        now_us = to_us(now)
        retry_us = now_us + int(self.config.retry_interval.total_seconds() * 1_000_000)
        for key, queued in (await asyncio.to_thread(sentlog.due, self.db, now_us)).items():
            kind, label = key
            channels = [c for c in queued if c in self.channels(kind)]
            if not channels:  # no longer configured: left queued, as it was
                continue
            try:
                period = Period.from_label(kind, label, self.zone)
                rendered = await asyncio.to_thread(self.render, period)
            except Exception as error:
                log.exception("%s report for %s could not be built", kind, label)
                for channel in channels:
                    reason = f"report not built: {type(error).__name__}: {error}"
                    await self._failed(outcome, key, channel, reason, retry_us)
                continue
            for channel in channels:
                try:
                    await self.send(rendered, channel)
                except NotifyError as error:
                    await self._failed(outcome, key, channel, str(error), retry_us)
                    continue
                await asyncio.to_thread(sentlog.mark_sent, self.db, key, channel, now_us)
                outcome.sent.append((kind, label, channel))
        return outcome

    async def _failed(
        self, outcome: Outcome, key: sentlog.Key, channel: Channel, error: str, retry_us: int
    ) -> None:
        log.warning("%s report %s to %s failed: %s", *key, channel, error)
        outcome.failed[(*key, channel)] = error
        await asyncio.to_thread(sentlog.mark_failed, self.db, key, channel, error, retry_us)

    async def send(self, rendered: archive.Rendered, channel: Channel) -> None:
        """Deliver to one channel: files, email or slack; `NotifyError` (retryable) if not
        taken."""
        kind = rendered.report.period.kind
        schedule = self.config.schedules()[kind]
        if channel == Channel.FILES:
            try:
                await asyncio.to_thread(archive.write, rendered, self.config.output_dir)
            except OSError as error:
                raise NotifyError(f"cannot write under {self.config.output_dir}: {error}") from None
        elif channel == Channel.EMAIL:
            await self.email(rendered, schedule.to)
        else:
            assert schedule.slack is not None
            await self.slack(rendered, schedule.slack)

    async def email(self, rendered: archive.Rendered, to: list[str]) -> None:
        from alerting.notifiers.email import smtp_send
        from reports.mail import message

        assert self.config.email_receiver is not None
        server = self.alerting.receiver(self.config.email_receiver).email
        assert server is not None
        await smtp_send(server, message(rendered, server.sender, to))

    async def slack(self, rendered: archive.Rendered, receiver: str) -> None:
        from alerting.notifiers.slack import SlackNotifier

        config = self.alerting.receiver(receiver).slack
        assert config is not None
        await SlackNotifier(config).send(Digest(rendered.report))
