"""The daemon's InfluxDB side: bucket set-up, the outbox drain loop, and back-pressure.

It owns a second ledger connection (a `LedgerWorker`'s: WAL lets it read and move cursors while
the tail loop writes), so a slow or absent server never holds up reading the trace files, until
the outbox reaches ``influx.max_pending``: then reading pauses instead of growing the ledger
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from collector.ledger.worker import LedgerWorker
from collector.retrying import Backoff, FailureLog
from collector.sinks.influx.build import build_outbox
from collector.sinks.influx.outbox import Outbox
from schemas.config import CollectorConfig, InfluxConfig

if TYPE_CHECKING:
    from collector.sinks.influx.writer import InfluxWriter

log = logging.getLogger("collector.influx")

SETUP_RETRY_SECONDS = 60.0
WARN_FRACTION = 0.8


class Shipper(LedgerWorker):
    """Drains the outbox to InfluxDB until stopped; tells the tail loop when to pause."""

    def __init__(self, config: CollectorConfig) -> None:
        assert config.influx is not None
        super().__init__(
            config.ledger.path,
            log=log,
            still_running="an InfluxDB write was still in flight at exit; it will be sent again",
        )
        self.config = config
        self.influx: InfluxConfig = config.influx
        outbox = build_outbox(config, self.ledger)
        assert outbox is not None
        self.outbox: Outbox = outbox
        self._pending = 0
        self._warned_level = 0

    @property
    def writer(self) -> InfluxWriter:
        return self.outbox.writer

    async def run(self, stop: asyncio.Event) -> None:
        """Set up buckets (retrying), then send whatever is pending, waiting when idle."""
        idle = self.config.ingest.poll_interval.total_seconds()
        buckets_ready = not self.influx.create_buckets
        next_setup = 0.0
        # e.g. the ledger locked past its timeout, or a full disk: retry, never stop
        failures = FailureLog(
            log,
            "draining the InfluxDB outbox",
            Backoff(idle, self.influx.max_backoff.total_seconds()),
            self.config.ledger.path,
        )
        while not stop.is_set():
            if not buckets_ready and time.monotonic() >= next_setup:
                buckets_ready = await asyncio.to_thread(self._setup_buckets)
                next_setup = time.monotonic() + SETUP_RETRY_SECONDS
            wait = idle
            try:
                sent = await asyncio.to_thread(self._drain_some)
                failures.succeeded()
            except Exception as error:
                sent, wait = 0, failures.failed(error)
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)

    def _setup_buckets(self) -> bool:
        return bool(self.run_now(self._try_setup))

    def _try_setup(self) -> bool:
        try:
            plans = self.writer.plan_buckets(self.config.tiers.retention)
            self.writer.apply_buckets(plans, apply_retention=False)
        except Exception as error:  # unreachable, token refused: keep running, try again
            log.error(
                "cannot set up InfluxDB buckets at %s (%s); retrying in %.0f s",
                self.influx.url,
                _short(error),
                SETUP_RETRY_SECONDS,
            )
            return False
        for plan in plans:
            if plan.action == "retention differs":
                log.warning(
                    "bucket %s exists with another retention than tiers.retention.%s (%s);"
                    " left alone: run `llm-collector influx setup --apply-retention` to change it",
                    plan.bucket,
                    plan.tier,
                    plan.retention,
                )
        return True

    def _drain_some(self) -> int:
        return self.run_now(self._drain_batches) or 0

    def _drain_batches(self) -> int:
        sent = 0
        for _ in range(20):
            batch = self.outbox.drain_once()
            if not batch:
                break
            sent += batch
        self._pending = sum(self.outbox.pending().values())
        return sent

    def reading_paused(self) -> bool:
        """True while the outbox is full; warns once as it passes 80%, once as it fills."""
        limit, pending = self.influx.max_pending, self._pending
        level = 2 if pending >= limit else 1 if pending >= WARN_FRACTION * limit else 0
        if level > self._warned_level:
            if level == 2:
                log.warning(
                    "outbox full (%d points pending); reading paused until it drains", pending
                )
            else:
                log.warning(
                    "outbox %d%% full (%d of %d points); is InfluxDB reachable?",
                    100 * pending // limit,
                    pending,
                    limit,
                )
        self._warned_level = level
        return level == 2

    def status(self) -> str:
        stats = self.outbox.stats
        now = self.outbox.clock()
        error = f" last_error={stats.last_error!r}" if stats.last_error else ""
        return (
            f"outbox_pending={self._pending} sent_points={stats.sent_points}"
            f" points_per_s={stats.rate(now):.0f} failed_attempts={stats.failed_attempts}"
            f" dead_letters={stats.dead_letters} skipped_expired={stats.skipped_expired}"
            f" skipped_out_of_range={stats.skipped_out_of_range}{error}{self._capped_wait()}"
        )

    def _capped_wait(self) -> str:
        """Says when the server asked to wait longer than the backoff maximum allows."""
        asked = self.outbox.stats.capped_retry_after
        if asked is None:
            return ""
        cap = self.outbox.backoff.cap
        return (
            f" retry_after_capped='server asked to wait {asked:.0f} s;"
            f" waiting {cap:g} s (influx.max_backoff)'"
        )

    def _release(self) -> None:
        """Closed once the request in flight is answered; past the wait it is let go: its
        points stay pending (the cursor moves only on an acknowledgement) and go out after
        restart."""
        self.writer.close()
        super()._release()


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__
