"""Closing the delivery while a run is on: the connection closes only between queries."""

import asyncio
import sqlite3

from alert_harness import SECOND, T0, add_calls, delivery_for, engine_for, rules_of
from test_notify import ERRORS, config

from collector.ledger import Ledger


class Blocked:
    """A receiver whose send waits until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, notification) -> None:
        self.entered.set()
        await self.release.wait()


def _firing(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), config(group_wait="0s"))
    add_calls(ledger, T0 - SECOND, 1, status="error", model="a")
    engine.evaluate(T0)
    return ledger


def _unsent(path) -> int:
    ledger = Ledger(path)
    try:
        return ledger.db.execute(
            "SELECT count(*) FROM notifications WHERE sent_us IS NULL"
        ).fetchone()[0]
    finally:
        ledger.close()


def test_a_close_during_a_send_waits_then_leaves_the_notification_for_the_restart(tmp_path):
    ledger = _firing(tmp_path)
    receiver = Blocked()
    delivery = delivery_for(ledger, {"oncall": receiver})

    async def scenario():
        run = asyncio.create_task(delivery.run_once(T0 + SECOND))
        await receiver.entered.wait()
        await asyncio.to_thread(delivery.close, 0.05)  # gives up waiting: the send hangs
        receiver.release.set()
        return await run  # marks nothing on the closed connection, raises nothing

    report = asyncio.run(scenario())
    assert report.sent == {"oncall": 1}
    try:
        ledger.db.execute("SELECT 1")
        raise AssertionError("the connection is still open")
    except sqlite3.ProgrammingError:
        pass
    assert _unsent(tmp_path / "l.db") == 1  # goes out again after the restart


def test_a_close_between_runs_is_immediate_and_later_runs_do_nothing(tmp_path):
    ledger = _firing(tmp_path)
    receiver = Blocked()
    delivery = delivery_for(ledger, {"oncall": receiver})
    delivery.close()
    report = asyncio.run(delivery.run_once(T0 + SECOND))
    assert (report.sent, report.failed, receiver.entered.is_set()) == ({}, {}, False)
    assert _unsent(tmp_path / "l.db") == 1
