"""The daemon's report jobs: a cron trigger per schedule in the reporting zone, plus a pass at
start-up and every ``reports.retry_interval`` that catches up on reports missed while the
daemon was down (within ``reports.grace``) and retries failed deliveries. Time comes from an
injected clock."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler

from collector.daemon.tier_jobs import Clock
from collector.ledger.worker import LedgerWorker
from collector.readers.reports import LedgerReportReader
from reports.schedule import trigger
from reports.service import Outcome, ReportService
from schemas.config import CollectorConfig

log = logging.getLogger("collector.reports")


class ReportJobs(LedgerWorker):
    """One pass at a time over a ledger connection of its own."""

    def __init__(self, config: CollectorConfig, clock: Clock) -> None:
        super().__init__(
            config.ledger.path,
            log=log,
            still_running="a report was still being built or sent at exit; it resumes at restart",
        )
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        reader = LedgerReportReader(self.ledger.db, self.zone, config.dimensions)
        self.service = ReportService(
            reader, self.ledger.db, config.reports, config.alerting, self.zone
        )
        self.clock = clock

    async def run(self) -> Outcome | None:
        """Queue what fell due, then deliver what is queued; None when a pass is already on
        or the jobs are closed."""
        with self.turn() as mine:
            if not mine:
                return None
            now = self.clock()
            await asyncio.to_thread(self.service.open_due, now)  # may wait for the writer
            return await self.service.deliver(now)

    def schedule(self, scheduler: BaseScheduler) -> None:
        """Add the cron jobs and the catch-up / retry pass (first run now)."""
        every = self.config.reports.retry_interval.total_seconds()
        for kind, schedule in self.config.reports.schedules().items():
            scheduler.add_job(
                self.run,
                trigger(schedule, self.zone),
                id=f"report-{kind}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,  # a busy loop at the due time delays it, never skips it
            )
        scheduler.add_job(
            self.run,
            "interval",
            id="report-catch-up",
            seconds=every,
            next_run_time=datetime.now(self.zone),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
