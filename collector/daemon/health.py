"""Whether the daemon is healthy: tailing alive, ledger writable, every scheduled job on time.

Jobs are generic: the daemon records every scheduler job with its interval (from its trigger)
and each run in a `JobRegistry`, so a new job is watched without any change here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from collector.ledger.worker import UNTIL_DONE, LedgerWorker
from collector.sinks.influx.build import build_feeds
from collector.sinks.influx.outbox import dead_letter_count, pending_where_followed
from schemas.config import CollectorConfig

LATE_FACTOR = 3
"""A job is late when its last run is older than this many intervals (and a minute more)."""
LATE_SLACK = 60.0
TAIL_STALE_MIN = 30.0
"""Reading is stale when no poll finished (and no batch committed) for this long, at least."""

WallClock = Callable[[], float]


def trigger_interval(trigger: BaseTrigger, now: datetime) -> float | None:
    """Seconds between two runs of an interval or cron trigger; None for a one-off job."""
    if isinstance(trigger, IntervalTrigger):
        return trigger.interval.total_seconds()
    if isinstance(trigger, CronTrigger):
        first = trigger.get_next_fire_time(None, now)
        if first is None:
            return None
        second = trigger.get_next_fire_time(first, first + timedelta(microseconds=1))
        return None if second is None else (second - first).total_seconds()
    return None


@dataclass(frozen=True)
class JobFailing:
    """What a job returns when it ran but part of its work fails (a receiver refusing every
    message): recorded as the job's last error, without the traceback a raise logs each run."""

    error: str


@dataclass
class JobRecord:
    name: str
    interval_s: float
    last_run: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    next_run: float | None = None


@dataclass
class JobRegistry:
    """Scheduled jobs by name: interval, last run (ok or not) and next run, wall-clock seconds."""

    clock: WallClock = time.time
    started: float = field(default_factory=time.time)
    jobs: dict[str, JobRecord] = field(default_factory=dict)

    def register(self, name: str, interval_s: float) -> None:
        self.jobs.setdefault(name, JobRecord(name, interval_s)).interval_s = interval_s

    def ran(self, name: str, error: str | None = None, next_run: float | None = None) -> None:
        record = self.jobs.get(name)
        if record is None:
            return  # a one-off job (the tail loop, the InfluxDB drain): watched otherwise
        record.last_run = self.clock()
        record.next_run = next_run
        record.last_error = error
        if error is None:
            record.last_success = record.last_run

    def late(self) -> list[str]:
        """A reason per job whose last run (or start-up, before its first) is too old."""
        now, reasons = self.clock(), []
        for record in self.jobs.values():
            since = record.last_run if record.last_run is not None else self.started
            allowed = max(LATE_FACTOR * record.interval_s, record.interval_s + LATE_SLACK)
            if now - since > allowed:
                what = "last ran" if record.last_run is not None else "has not run since start-up"
                reasons.append(
                    f"job {record.name} {what} {now - since:.0f} s ago"
                    f" (every {record.interval_s:g} s)"
                )
        return reasons

    def as_json(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "interval_s": r.interval_s,
                "last_run": _iso(r.last_run),
                "last_success": _iso(r.last_success),
                "last_error": r.last_error,
                "next_run": _iso(r.next_run),
            }
            for name, r in self.jobs.items()
        }


@dataclass
class TailState:
    """What the tail loop reports: what it lags, and when it last made progress."""

    lag: Callable[[], dict[str, int]]
    stale_after: float
    last_progress: float | None = None


class Health(LedgerWorker):
    """Answers /healthz and feeds the health metrics, on a ledger connection of its own: one
    check at a time (each is short); closing waits for the one in progress."""

    def __init__(
        self,
        config: CollectorConfig,
        tail: TailState,
        jobs: JobRegistry,
        *,
        receivers: dict[str, Callable[[], dict[str, Any]]] | None = None,
        write_timeout: float = 2.0,
    ) -> None:
        """``receivers``: each receiver's name and what it tells of itself (its counts)."""
        super().__init__(config.ledger.path)
        self.config = config
        self.tail = tail
        self.jobs = jobs
        self.receivers = receivers or {}
        self.ledger.db.execute(f"PRAGMA busy_timeout = {int(write_timeout * 1000)}")
        self.feeds = build_feeds(config)

    def close(self, wait: float = UNTIL_DONE) -> None:
        """Close after the check in progress."""
        super().close(wait)

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, the /healthz body). Runs SQLite statements: call it in a thread."""
        with self._busy:
            body = self._state()
            reasons = self._tail_reasons(body["outbox_pending"])
            reasons += self._ledger_reasons() + self.jobs.late()
        body = {"status": "ok" if not reasons else "unhealthy", "reasons": reasons, **body}
        return not reasons, body

    def state(self) -> dict[str, Any]:
        """Lag, outbox and jobs; what /healthz and /metrics show besides the verdict."""
        with self._busy:
            return self._state()

    def _state(self) -> dict[str, Any]:
        jobs = self.jobs.as_json()
        return {
            "ledger": str(self.config.ledger.path.resolve()),
            "lag_bytes": self.tail.lag(),
            "last_poll": _iso(self.tail.last_progress),
            "outbox_pending": self.outbox_pending(),
            "dead_letters": dead_letter_count(self.ledger),
            "last_rollup": jobs.get("rollup", {}).get("last_run"),
            "last_evaluation": jobs.get("evaluate", {}).get("last_run"),
            "last_report": _latest(r["last_run"] for n, r in jobs.items() if "report" in n),
            "jobs": jobs,
            "receivers": {name: state() for name, state in self.receivers.items()},
        }

    def outbox_pending(self) -> dict[str, int] | None:
        """Points waiting for InfluxDB per feed; None without an ``influx`` section."""
        if not self.feeds:
            return None
        return pending_where_followed(self.ledger, self.feeds)

    def _tail_reasons(self, outbox: dict[str, int] | None) -> list[str]:
        influx = self.config.influx
        if influx is not None and outbox and sum(outbox.values()) >= influx.max_pending:
            return [
                f"reading paused: {sum(outbox.values())} points wait for InfluxDB"
                f" (influx.max_pending {influx.max_pending}); is InfluxDB reachable?"
            ]
        last, now = self.tail.last_progress, self.jobs.clock()
        since = last if last is not None else self.jobs.started
        if now - since > self.tail.stale_after:
            return [f"tailing: no read finished for {now - since:.0f} s"]
        return []

    def _ledger_reasons(self) -> list[str]:
        """A write lock taken and released: the ledger accepts writes right now."""
        try:
            self.ledger.db.execute("BEGIN IMMEDIATE")
            self.ledger.db.execute("ROLLBACK")
        except sqlite3.Error as error:
            return [f"ledger {self.config.ledger.path} not writable: {error}"]
        return []


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _latest(values: Iterable[str | None]) -> str | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
