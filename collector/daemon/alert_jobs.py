"""Wiring the alert engine into the daemon: evaluation and delivery jobs on their own
ledger connections, each run in a thread (SQLite) or on the loop (notifiers)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from alerting.clock import us
from alerting.delivery import Delivery, build_notifiers
from alerting.engine import Engine, PassResult
from alerting.outbox import Outbox
from alerting.rules import load_rules
from collector.clock import wall_clock_us
from collector.daemon.health import JobFailing
from collector.ledger.connection import Ledger
from collector.ledger.worker import LedgerWorker
from collector.readers.alerts.cache import AlertCache
from schemas.config import CollectorConfig

log = logging.getLogger("collector.alerts")


class AlertJobs(LedgerWorker):
    """The evaluation pass (on the worker's connection) and the outbox drain (on one of its
    own)."""

    def __init__(self, config: CollectorConfig) -> None:
        alerting = config.alerting
        assert alerting.rules_file is not None
        rules = load_rules(alerting.rules_file)
        super().__init__(
            config.ledger.path,
            log=log,
            still_running="an alert evaluation pass was still running at exit",
        )
        self._send_ledger = Ledger(config.ledger.path)
        outbox = Outbox(alerting.route, alerting.silences)
        self.engine = Engine(
            rules.rules,
            self.ledger.db,
            AlertCache(self.ledger.db, config.dimensions),
            outbox,
            ZoneInfo(config.timezone),
        )
        self.delivery = Delivery(
            self._send_ledger.db,
            build_notifiers(alerting),
            us(alerting.retry_interval),
            alerting.external_url,
            outbox.silences,
            clock=wall_clock_us,
        )
        self.last_pass: PassResult | None = None
        self.ready: Callable[[], bool] = lambda: True
        """False while passes must wait (the daemon: until the start-up backlog is read)."""

    async def evaluate(self) -> None:
        self.last_pass = await asyncio.to_thread(self._evaluate)
        if self.last_pass is not None and self.last_pass.errors:
            log.error("rules failed to evaluate: %s", self.last_pass.errors)

    def _evaluate(self) -> PassResult | None:
        return self.run_now(self._pass)

    def _pass(self) -> PassResult | None:
        return self.engine.evaluate(wall_clock_us()) if self.ready() else None

    async def deliver(self) -> JobFailing | None:
        """Start sending what is due, each receiver on its own; the job does not wait for
        the sends, so a receiver that hangs delays no other one. The receivers whose latest
        lane failed make the job's last error (/healthz, ``llm-collector status``)."""
        if not self.closed:
            await self.delivery.dispatch(wall_clock_us())
        failing = sorted(self.delivery.failing.items())
        return JobFailing("; ".join(f"{r}: {e}" for r, e in failing)) if failing else None

    def reload(self, config: CollectorConfig) -> int:
        """Swap in the rules file, receivers, route and silences of ``config`` between two
        evaluation passes; alert state stays in the ledger. Returns the number of rules.

        Raises RulesError (or OSError/ValueError from a receiver) before anything changes.
        """
        alerting = config.alerting
        assert alerting.rules_file is not None
        rules = load_rules(alerting.rules_file).rules
        notifiers = build_notifiers(alerting)
        outbox = Outbox(alerting.route, alerting.silences)
        with self._busy:  # between two passes
            self.engine.rules = list(rules)
            self.engine.outbox = outbox
            self.delivery.notifiers = notifiers
            self.delivery.silences = outbox.silences
            self.delivery.retry_interval_us = us(alerting.retry_interval)
            self.delivery.external_url = alerting.external_url
        return len(rules)

    def close(self, wait: float = 2.0) -> None:
        """Close the evaluation's connection after the pass in progress and the delivery's
        after its run, waiting ``wait`` seconds in all. A pass still running then (a first
        pass loading a big span) keeps its connection: it commits all or nothing."""
        deadline = time.monotonic() + wait
        super().close(wait)
        self.delivery.close(max(0.0, deadline - time.monotonic()))
