"""``llm-collector run``: an asyncio process whose APScheduler hosts the collector's jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from collector.ledger import Ledger
from collector.pipeline import build_tailer, configured_sources
from collector.shipping import Shipper
from collector.tailing import Tailer
from collector.tier_jobs import RETENTION_EVERY, ROLLUP_EVERY, Clock, TierJobs
from schemas.config import CollectorConfig

if TYPE_CHECKING:
    from collector.alert_jobs import AlertJobs

log = logging.getLogger("collector.daemon")


class Daemon:
    """Tails the sources into the ledger; stops cleanly on SIGTERM or SIGINT."""

    def __init__(self, config: CollectorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or _utc_now
        self._stop = asyncio.Event()
        self._tail_lock = threading.Lock()
        self._last_scan = float("-inf")
        self._last_status = (time.monotonic(), 0)
        self.ledger: Ledger | None = None
        self.tailer: Tailer | None = None
        self.shipper: Shipper | None = None
        self.tiers: TierJobs | None = None
        self.alerts: AlertJobs | None = None  # only when alerting.rules_file is set

    def run(self) -> None:
        asyncio.run(self.main())

    async def main(self) -> None:
        self.ledger = Ledger(self.config.ledger.path)
        self.tailer = build_tailer(self.config, self.ledger, configured_sources(self.config))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        scheduler = AsyncIOScheduler(timezone=self.config.timezone)
        ingest = self.config.ingest
        scheduler.add_job(self._tail_loop, id="tail", next_run_time=_now(scheduler))
        if self.config.influx is not None:
            self.shipper = Shipper(self.config)
            scheduler.add_job(
                self.shipper.run, args=(self._stop,), id="influx", next_run_time=_now(scheduler)
            )
        self._add_alert_jobs(scheduler)
        self._add_tier_jobs(scheduler)
        self._add_report_jobs(scheduler)
        scheduler.add_job(
            self._status,
            "interval",
            id="status",
            seconds=ingest.status_interval.total_seconds(),
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        log.info(
            "collector started: %d source(s), ledger %s",
            len(self.config.sources),
            self.config.ledger.path,
        )
        try:
            await self._stop.wait()
            await self._finish()
        finally:
            scheduler.shutdown(wait=False)

    def _add_alert_jobs(self, scheduler: AsyncIOScheduler) -> None:
        """Evaluation every ``evaluation_interval``, delivery every ``delivery_interval``."""
        alerting = self.config.alerting
        if alerting.rules_file is None:
            return
        from alerting.rules import RulesError
        from collector.alert_jobs import AlertJobs  # slack-sdk, aiosmtplib: only when used

        try:
            self.alerts = AlertJobs(self.config)
        except RulesError as error:
            log.error("%s", error)
            raise SystemExit(2) from None
        _every(scheduler, self.alerts.evaluate, alerting.evaluation_interval)
        _every(scheduler, self.alerts.deliver, alerting.delivery_interval)

    def _add_tier_jobs(self, scheduler: AsyncIOScheduler) -> None:
        """Rollup and retention, both first at start-up to catch up on missed windows."""
        self.tiers = TierJobs(self.config, self.clock)
        _every(scheduler, self.tiers.rollup, ROLLUP_EVERY)
        _every(scheduler, self.tiers.expire, RETENTION_EVERY)

    def _add_report_jobs(self, scheduler: AsyncIOScheduler) -> None:
        """Scheduled reports: cron jobs, and a catch-up / retry pass (first at start-up)."""
        if self.config.reports.schedules():
            from collector.report_jobs import ReportJobs

            ReportJobs(self.config, self.clock).schedule(scheduler)

    def request_stop(self) -> None:
        """Stop reading after the batch in hand; it is committed before exit."""
        if self.tailer is not None:
            self.tailer.stop_requested = True
        self._stop.set()

    async def _finish(self) -> None:
        tailer, ledger = self.tailer, self.ledger
        assert tailer is not None and ledger is not None
        # A cancelled job does not stop its thread: wait until the batch in hand is committed.
        await asyncio.to_thread(self._tail_lock.acquire)
        tailer.close()
        ledger.close()
        self._status()
        if self.shipper is not None:
            await asyncio.to_thread(self.shipper.close)
        if self.tiers is not None:
            await asyncio.to_thread(self.tiers.close)
        if self.alerts is not None:
            await asyncio.to_thread(self.alerts.close)
        log.info("collector stopped")

    async def _tail_loop(self) -> None:
        """Read, then wait ``poll_interval`` (or less, when asked to stop), until stopped."""
        interval = self.config.ingest.poll_interval.total_seconds()
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self._tail_once)
            except Exception:
                log.exception("tailing failed; retrying in %.1f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)

    def _tail_once(self) -> None:
        with self._tail_lock:
            if not self._stop.is_set():
                self._read_sources()

    def _read_sources(self) -> None:
        tailer = self.tailer
        assert tailer is not None
        now = time.monotonic()
        if now - self._last_scan >= self.config.ingest.rescan_interval.total_seconds():
            tailer.scan()
            self._last_scan = now
        if self.shipper is None or not self.shipper.reading_paused():
            tailer.poll()

    def _status(self) -> None:
        tailer = self.tailer
        assert tailer is not None
        counts = tailer.counts
        then, lines_then = self._last_status
        now = time.monotonic()
        rate = (counts.lines - lines_then) / max(now - then, 1e-9)
        self._last_status = (now, counts.lines)
        lag = tailer.lag_bytes()
        log.info(
            "status: files=%d lag_bytes=%d lines=%d events=%d quarantined=%d skipped=%d "
            "lines_per_s=%.0f",
            len(lag),
            sum(lag.values()),
            counts.lines,
            counts.events,
            counts.quarantined,
            counts.skipped,
            rate,
        )
        if self.shipper is not None:
            log.info("influx: %s", self.shipper.status())


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _every(
    scheduler: AsyncIOScheduler, job: Callable[[], Awaitable[object]], every: timedelta
) -> None:
    """Run ``job`` now and then every ``every``; a run still going is not started twice."""
    scheduler.add_job(
        job,
        "interval",
        seconds=every.total_seconds(),
        next_run_time=_now(scheduler),
        max_instances=1,
        coalesce=True,
    )


def _now(scheduler: AsyncIOScheduler) -> datetime:
    return datetime.now(scheduler.timezone)
