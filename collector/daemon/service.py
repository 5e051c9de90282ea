"""``llm-collector run``: an asyncio process whose APScheduler hosts the collector's jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.events import (
    EVENT_JOB_ADDED,
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from collector.configfile import ConfigError, load_config
from collector.daemon.health import (
    TAIL_STALE_MIN,
    Health,
    JobFailing,
    JobRegistry,
    TailState,
    trigger_interval,
)
from collector.daemon.http import HttpServer
from collector.daemon.metrics import DaemonMetrics, LlmCounters
from collector.daemon.tier_jobs import RETENTION_EVERY, ROLLUP_EVERY, Clock, TierJobs
from collector.ingest.pipeline import build_tailer, configured_sources, open_for_writing
from collector.ingest.tailing import Tailer
from collector.ledger.connection import Batch, Ledger
from collector.logs import add_config_secrets, redactor
from collector.retrying import Backoff, FailureLog
from collector.sinks.influx.shipping import Shipper
from schemas.config import CollectorConfig

if TYPE_CHECKING:
    from collector.daemon.alert_jobs import AlertJobs
    from collector.daemon.report_jobs import ReportJobs
    from collector.receivers.otlp.receiver import Receiver
    from collector.receivers.otlp.server import OtlpServer

log = logging.getLogger("collector.daemon")

CATCH_UP_LIMIT_SECONDS = 300
"""Alert rules wait at most this long for the start-up backlog to be read."""
EXIT_GRACE_SECONDS = 0.5
"""How long the exit waits for worker threads once everything is committed and closed."""


class Daemon:
    """Tails the sources into the ledger; stops cleanly on SIGTERM or SIGINT, reloads the
    alerting section on SIGHUP, serves /healthz and /metrics."""

    def __init__(
        self,
        config: CollectorConfig,
        clock: Clock | None = None,
        *,
        config_path: Path | None = None,
        wall_clock: Callable[[], float] = time.time,
        early_stop: list[int] | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self._early_stop = early_stop if early_stop is not None else []
        self.clock = clock or _utc_now
        self.jobs = JobRegistry(clock=wall_clock, started=wall_clock())
        self.counters = LlmCounters(config.dimensions, config.server.metrics_max_label_values)
        self.tail_state = TailState(
            lag=self._lag,
            stale_after=max(TAIL_STALE_MIN, 20 * config.ingest.poll_interval.total_seconds()),
        )
        self.http: HttpServer | None = None
        self.health: Health | None = None
        self._reloads: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._tail_lock = threading.Lock()
        self._last_scan = float("-inf")
        self._started = time.monotonic()
        self._caught_up_at: float | None = None
        self._last_status = (time.monotonic(), 0)
        self.ledger: Ledger | None = None
        self.tailer: Tailer | None = None
        self.shipper: Shipper | None = None
        self.tiers: TierJobs | None = None
        self.alerts: AlertJobs | None = None  # only when alerting.rules_file is set
        self.reports: ReportJobs | None = None  # only when a report is scheduled
        self.receiver: Receiver | None = None  # only with a receivers.otlp section
        self.otlp: OtlpServer | None = None

    def run(self) -> None:
        """Run until stopped. Everything is committed and closed when `main` returns; a worker
        thread still blocked then (a request InfluxDB never answers) is left behind instead of
        holding the exit up to its network timeout."""
        loop = asyncio.new_event_loop()
        executor = ThreadPoolExecutor(thread_name_prefix="collector")
        loop.set_default_executor(executor)
        try:
            loop.run_until_complete(self.main())
        finally:
            _cancel_remaining(loop)
            loop.close()
        executor.shutdown(wait=False, cancel_futures=True)
        if not _threads_done(EXIT_GRACE_SECONDS):
            log.warning("a network request was still blocked at exit; it is left behind")
            logging.shutdown()
            os._exit(0)

    async def main(self) -> None:
        self.ledger = open_for_writing(self.config, "llm-collector run")
        self.tailer = build_tailer(
            self.config, self.ledger, configured_sources(self.config), on_commit=self._committed
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested)
        if self._early_stop:  # asked to stop while starting: start, then stop at once
            self.request_stop()
        scheduler = AsyncIOScheduler(timezone=self.config.timezone)
        scheduler.add_listener(
            self._job_event, EVENT_JOB_ADDED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        )
        self._scheduler = scheduler
        ingest = self.config.ingest
        # No misfire grace: on a loaded machine start-up can take longer than APScheduler's
        # default second, and a missed one-off job would never read (or drain) at all.
        scheduler.add_job(
            self._tail_loop, id="tail", next_run_time=_now(scheduler), misfire_grace_time=None
        )
        if self.config.influx is not None:
            self.shipper = Shipper(self.config)
            scheduler.add_job(
                self.shipper.run,
                args=(self._stop,),
                id="influx",
                next_run_time=_now(scheduler),
                misfire_grace_time=None,
            )
        self._add_alert_jobs(scheduler)
        self._add_tier_jobs(scheduler)
        self._add_report_jobs(scheduler)
        await self._start_receiver(scheduler)
        scheduler.add_job(
            self._status,
            "interval",
            id="status",
            seconds=ingest.status_interval.total_seconds(),
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        await self._serve_http()
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
        from collector.daemon.alert_jobs import AlertJobs  # slack-sdk, aiosmtplib: only when used

        try:
            self.alerts = AlertJobs(self.config)
        except RulesError as error:
            log.error("%s", error)
            raise SystemExit(2) from None
        self.alerts.ready = self._caught_up
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
            from collector.daemon.report_jobs import ReportJobs

            self.reports = ReportJobs(self.config, self.clock)
            self.reports.schedule(scheduler)

    async def _start_receiver(self, scheduler: AsyncIOScheduler) -> None:
        """The OTLP receiver, when configured, and its job that forgets old span keys; a port
        in use or an unreadable token file stops the daemon at start with what to do."""
        otlp = self.config.receivers.otlp
        if otlp is None:
            return
        from collector.receivers.otlp.receiver import Receiver  # aiohttp, protobuf: when used
        from collector.receivers.otlp.server import OtlpServer

        tailer = self.tailer
        assert tailer is not None
        self.receiver = Receiver(self.config, otlp, tailer.quarantine, on_commit=self._received)
        self.otlp = OtlpServer(
            self.receiver, otlp, paused=self._outbox_full, stopping=self._stop.is_set
        )
        await self.otlp.start()
        _every(scheduler, self.otlp.expire_keys, RETENTION_EVERY)

    def _outbox_full(self) -> bool:
        return self.shipper is not None and self.shipper.reading_paused()

    def _received(self, batch: Batch) -> None:
        """The receiver's commit hook: count the batch for /metrics (when served)."""
        if self.config.server.enabled:
            self.counters.observe(batch)

    def request_stop(self) -> None:
        """Stop reading after the batch in hand; it is committed before exit."""
        if self.tailer is not None:
            self.tailer.stop_requested = True
        self._stop.set()

    async def _finish(self) -> None:
        """Close everything side by side: each part waits only for its own work in progress
        (the batch in hand, a write in flight, a roll, an evaluation pass), so the slowest
        sets the time to exit, not their sum."""
        if self.http is not None:
            await self.http.close()
        if self.otlp is not None:
            await self.otlp.close()  # answers what it has read: 503 to new requests
        parts = (self.shipper, self.tiers, self.alerts, self.reports, self.receiver)
        jobs = [part.close for part in parts if part is not None]
        await asyncio.gather(*(asyncio.to_thread(close) for close in [self._close_reading, *jobs]))
        log.info("collector stopped")

    def _close_reading(self) -> None:
        tailer, ledger = self.tailer, self.ledger
        assert tailer is not None and ledger is not None
        # A cancelled job does not stop its thread: wait until the batch in hand is committed.
        self._tail_lock.acquire()
        if self.health is not None:
            self.health.close()
        self._status()
        tailer.close()
        ledger.close()

    async def _tail_loop(self) -> None:
        """Read, then wait ``poll_interval`` (or less, when asked to stop), until stopped.

        An error (a full disk, an unwritable quarantine) rolls the batch back and is logged in
        one line per retry, the wait doubling up to ``retry_max_interval``: nothing is lost,
        and the log is not flooded."""
        ingest = self.config.ingest
        interval = ingest.poll_interval.total_seconds()
        backoff = Backoff(interval, ingest.retry_max_interval.total_seconds())
        failures = FailureLog(log, "reading", backoff, self.config.ledger.path)
        while not self._stop.is_set():
            wait = interval
            try:
                await asyncio.to_thread(self._tail_once)
                failures.succeeded()
            except Exception as error:
                wait = failures.failed(error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)

    def _tail_once(self) -> None:
        with self._tail_lock:
            if not self._stop.is_set():
                self._read_sources()
                self.tail_state.last_progress = self.jobs.clock()
                if self._caught_up_at is None and not any(self._lag().values()):
                    self._caught_up_at = time.monotonic()

    def _caught_up(self) -> bool:
        """Whether the backlog found at start-up is read (or reading it took too long): until
        then every alert window looks empty, and "no events for 15 minutes" would fire."""
        if self._caught_up_at is not None:
            return True
        if time.monotonic() - self._started < CATCH_UP_LIMIT_SECONDS:
            return False
        log.warning(
            "the backlog is still being read after %d s; evaluating alert rules anyway",
            CATCH_UP_LIMIT_SECONDS,
        )
        self._caught_up_at = time.monotonic()
        return True

    def _read_sources(self) -> None:
        tailer = self.tailer
        assert tailer is not None
        now = time.monotonic()
        if now - self._last_scan >= self.config.ingest.rescan_interval.total_seconds():
            tailer.scan()
            self._last_scan = now
        if self.shipper is None or not self.shipper.reading_paused():
            tailer.poll()

    def _committed(self, batch: Batch) -> None:
        """The tailer's commit hook: count the batch for /metrics (when served), note the
        progress."""
        if self.config.server.enabled:
            self.counters.observe(batch)
        self.tail_state.last_progress = self.jobs.clock()

    def _lag(self) -> dict[str, int]:
        return self.tailer.lag_bytes() if self.tailer is not None else {}

    def _job_event(self, event: JobEvent) -> None:
        """Every interval or cron job is watched by /healthz: a new one needs no change here."""
        job = self._scheduler.get_job(event.job_id)
        name = _job_name(job) if job is not None else event.job_id
        if event.code == EVENT_JOB_ADDED:
            if job is not None:
                interval = trigger_interval(job.trigger, datetime.now(self._scheduler.timezone))
                if interval is not None:
                    self.jobs.register(name, interval)
            return
        assert isinstance(event, JobExecutionEvent)
        error = None
        if event.exception is not None:
            error = f"{type(event.exception).__name__}: {event.exception}"
        elif isinstance(event.retval, JobFailing):
            error = event.retval.error
        if error is not None:
            error = redactor.mask(error)  # /healthz shows it
        next_run = job.next_run_time.timestamp() if job is not None and job.next_run_time else None
        self.jobs.ran(name, error, next_run)

    async def _serve_http(self) -> None:
        """Start /healthz and /metrics; a port in use is logged, and reading goes on."""
        server = self.config.server
        if not server.enabled:
            return
        otlp = self.otlp
        receivers = {"otlp": otlp.state} if otlp is not None else {}
        self.health = Health(self.config, self.tail_state, self.jobs, receivers=receivers)
        tailer = self.tailer
        assert tailer is not None
        metrics = DaemonMetrics(self.counters, lambda: tailer.counts, self.health.state, self.jobs)
        http = HttpServer(self.health, metrics)
        try:
            await http.start(*server.address())
        except OSError as error:
            log.error(
                "cannot serve /healthz and /metrics on %s: %s; set server.listen to a free"
                " host:port (or server.enabled: false). Reading goes on without them.",
                server.listen,
                error.strerror or error,
            )
            return
        self.http = http

    def _reload_requested(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> None:
        """SIGHUP: read the configuration again and swap in its rules file, receivers, route
        and silences; alert state stays in the ledger. A bad file keeps the old ones."""
        from alerting.rules import RulesError

        try:
            config = load_config(self.config_path)
        except ConfigError as error:
            log.error("reload failed, still running the previous configuration: %s", error)
            return
        add_config_secrets(config)
        if self.alerts is None or config.alerting.rules_file is None:
            log.error(
                "reload: alerting.rules_file was %s and is %s; turning alerting on or off"
                " needs a restart. Nothing reloaded.",
                self.config.alerting.rules_file,
                config.alerting.rules_file,
            )
            return
        try:
            rules = await asyncio.to_thread(self.alerts.reload, config)
        except (RulesError, OSError, ValueError) as error:
            log.error("reload failed, the previous rules and receivers stay in force: %s", error)
            return
        log.info(
            "reloaded %d rule(s) from %s and %d receiver(s); other changed settings apply at"
            " the next restart",
            rules,
            config.alerting.rules_file,
            len(config.alerting.receivers),
        )
        if self.reports is not None:  # reports send through the same receivers
            self.reports.service.alerting = config.alerting
        self.config = self.config.model_copy(update={"alerting": config.alerting})

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
        if self.otlp is not None:
            log.info("otlp: %s", self.otlp.status())


def _job_name(job: Job) -> str:
    """The id a job was given, else (a generated uuid) the name of its function."""
    return job.name if re.fullmatch("[0-9a-f]{32}", job.id) else job.id


def hold_stop_signals() -> list[int]:
    """Until the daemon installs its own handlers, SIGTERM and SIGINT are noted in the list
    returned (for `Daemon`'s ``early_stop``) instead of killing a process still starting."""
    received: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: received.append(number))
    return received


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending (jobs the scheduler left running) and let them unwind;
    APScheduler would log each cancelled job as a failure."""
    logging.getLogger("apscheduler.executors.default").setLevel(logging.CRITICAL)
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()

    async def unwind() -> None:
        await asyncio.gather(*tasks, return_exceptions=True)

    loop.run_until_complete(unwind())


def _threads_done(grace: float) -> bool:
    """Wait up to ``grace`` seconds for the other non-daemon threads; True if all ended."""
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    return all(
        not t.is_alive() or t.daemon or t is threading.current_thread()
        for t in threading.enumerate()
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _every(
    scheduler: AsyncIOScheduler, job: Callable[[], Awaitable[object]], every: timedelta
) -> None:
    """Run ``job`` now and then every ``every``; a run still going is not started twice."""
    scheduler.add_job(
        job,
        "interval",
        id=getattr(job, "__name__", None),
        seconds=every.total_seconds(),
        next_run_time=_now(scheduler),
        misfire_grace_time=None,  # the first run catches up: it must not be skipped as late
        max_instances=1,
        coalesce=True,
    )


def _now(scheduler: AsyncIOScheduler) -> datetime:
    return datetime.now(scheduler.timezone)
