"""A ledger in a temp dir, events written at chosen times, and an engine on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from alerting.engine import Engine
from alerting.outbox import Outbox
from collector.ledger.connection import Ledger
from collector.readers.alerts.cache import AlertCache
from schemas.alerting import AlertingConfig
from schemas.rules import RulesFile

T0 = int(datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp() * 1_000_000)
SECOND = 1_000_000
MINUTE = 60 * SECOND


def add_calls(ledger: Ledger, ts_us: int, count: int = 1, **fields) -> None:
    """``count`` calls at ``ts_us`` (model m1, status ok unless given)."""
    row = {"model": "m1", "status": "ok", "stream_id": 0, "price_source": 1} | fields
    names = ["ts_us", *row]
    sql = f"INSERT INTO calls ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    with ledger.transaction() as db:
        db.executemany(sql, [(ts_us, *row.values())] * count)


def rules_of(yaml_text: str) -> RulesFile:
    import yaml

    return RulesFile.model_validate(yaml.safe_load(yaml_text))


def engine_for(
    path: Path, rules: RulesFile, alerting: AlertingConfig | None = None, tz: str = "UTC"
) -> tuple[Engine, Ledger]:
    """A fresh connection and engine on the ledger at ``path``: what a restart builds."""
    ledger = Ledger(path)
    config = alerting or AlertingConfig()
    outbox = Outbox(config.route, config.silences)
    engine = Engine(rules.rules, ledger.db, AlertCache(ledger.db), outbox, ZoneInfo(tz))
    return engine, ledger


class Recorder:
    """A receiver that records what it got; while ``down`` it refuses everything."""

    def __init__(self) -> None:
        self.got: list = []
        self.down = False

    async def send(self, notification) -> None:
        from alerting.notifiers import NotifyError

        if self.down:
            raise NotifyError("receiver down")
        self.got.append(
            (
                notification.receiver,
                notification.status,
                sorted(
                    (a["labels"]["alertname"], a["labels"].get("model", ""), a["status"])
                    for a in notification.alerts
                ),
            )
        )


class Clock:
    """The delivery's injected clock: acknowledgements and silence checks happen at ``now_us``."""

    def __init__(self, now_us: int = T0) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


def delivery_for(
    ledger: Ledger, notifiers: dict, retry_us: int = 30 * SECOND, alerting=None, clock=None
):
    from alerting.delivery import Delivery
    from alerting.silences import Silences

    silences = Silences(alerting.silences if alerting is not None else ())
    url = "http://grafana.example/d/llm"
    return Delivery(ledger.db, notifiers, retry_us, url, silences, clock or Clock())


async def run_lanes(delivery, now_us: int):
    """The daemon's job at ``now_us``, then the lanes it started awaited: their reports merged."""
    import asyncio

    from alerting.delivery import DeliveryReport

    report = DeliveryReport()
    for lane in await asyncio.gather(*await delivery.dispatch(now_us)):
        report.sent.update(lane.sent)
        report.failed.update(lane.failed)
        report.silenced.update(lane.silenced)
    return report


def deliver(delivery, now_us: int):
    """One run at ``now_us``, the receivers answering at once (the clock stands at it)."""
    import asyncio

    delivery.clock.now_us = now_us
    return asyncio.run(run_lanes(delivery, now_us))
