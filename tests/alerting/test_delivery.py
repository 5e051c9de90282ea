"""Each receiver sends in a lane of its own (a hung Slack holds up no email) and each message
is stamped when its receiver acknowledged it; closing during a run closes the connection only
between queries."""

import asyncio
import sqlite3

from aiosmtpd.controller import Controller
from alert_harness import (
    SECOND,
    T0,
    Clock,
    Recorder,
    add_calls,
    delivery_for,
    engine_for,
    rules_of,
)
from fake_slack import FakeSlack
from test_email import Inbox, free_port
from test_notify import ERRORS, config

from alerting.delivery import build_notifiers
from collector.ledger import Ledger
from schemas.alerting import AlertingConfig


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


class Acked:
    """A real notifier, and an event set the moment its receiver acknowledged a message."""

    def __init__(self, notifier) -> None:
        self.notifier = notifier
        self.acked = asyncio.Event()

    async def send(self, notification) -> None:
        await self.notifier.send(notification)
        self.acked.set()


class Held(Recorder):
    """Records what it got, each send waiting for ``release``; ``entered`` at the first."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, notification) -> None:
        self.entered.set()
        await self.release.wait()
        await super().send(notification)


def slack_and_mail(slack_url: str, smtp_port: int) -> AlertingConfig:
    """Every alert to Slack (first) and to email, at once (group_wait 0s)."""
    return AlertingConfig.model_validate(
        {
            "receivers": [
                {
                    "name": "chat",
                    "slack": {"webhook_url": f"{slack_url}/services/T/B/X", "timeout": "30s"},
                },
                {
                    "name": "mail",
                    "email": {
                        "host": "127.0.0.1",
                        "port": smtp_port,
                        "starttls": False,
                        "sender": "alerts@example.com",
                        "to": ["team@example.com"],
                        "timeout": "5s",
                    },
                },
            ],
            "route": {
                "receiver": "chat",
                "group_wait": "0s",
                "routes": [
                    {"match": {}, "receiver": "chat", "continue": True},
                    {"match": {}, "receiver": "mail"},
                ],
            },
        }
    )


def test_a_hung_slack_holds_up_no_email_and_each_message_is_stamped_at_its_ack(tmp_path):
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with FakeSlack() as slack:
            alerting = slack_and_mail(slack.url, smtp.port)
            engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), alerting)
            add_calls(ledger, T0 - SECOND, 1, status="error", model="a")
            engine.evaluate(T0)
            notifiers = build_notifiers(alerting)
            clock = Clock(T0 + SECOND)

            async def scenario():
                mail = Acked(notifiers["mail"])
                delivery = delivery_for(
                    ledger, {"chat": notifiers["chat"], "mail": mail}, clock=clock
                )
                slack.hold()  # Slack takes the request and answers nothing until released
                run = asyncio.create_task(delivery.run_once(T0 + SECOND))
                try:
                    assert await asyncio.to_thread(slack.arrived.wait, 10)
                    # Acknowledged while Slack holds its request (its timeout is 30 s).
                    await asyncio.wait_for(mail.acked.wait(), 10)
                finally:
                    clock.now_us = T0 + 7 * SECOND
                    slack.release()
                return await run

            report = asyncio.run(scenario())
    finally:
        smtp.stop()
    assert report.sent == {"chat": 1, "mail": 1}
    assert (len(slack.requests), len(inbox.envelopes)) == (1, 1)
    rows = ledger.db.execute("SELECT receiver, sent_us FROM notifications ORDER BY id").fetchall()
    assert rows == [("chat", T0 + 7 * SECOND), ("mail", T0 + SECOND)]


def test_a_receiver_still_sending_is_skipped_by_later_runs_while_the_others_go_on(tmp_path):
    path = tmp_path / "l.db"
    alerting = config(
        group_wait="0s",
        group_by=["alertname", "model"],
        routes=[
            {"match": {}, "receiver": "team", "continue": True},
            {"match": {}, "receiver": "oncall"},
        ],
    )
    engine, ledger = engine_for(path, rules_of(ERRORS), alerting)
    slow, fast = Held(), Recorder()
    delivery = delivery_for(Ledger(path), {"team": slow, "oncall": fast})
    add_calls(ledger, T0 - SECOND, 1, status="error", model="a")
    engine.evaluate(T0)

    async def scenario():
        first = await asyncio.wait_for(delivery.dispatch(T0 + SECOND), 5)  # the daemon's job
        await asyncio.wait_for(slow.entered.wait(), 5)
        done, _ = await asyncio.wait(first, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert [lane.result().sent for lane in done] == [{"oncall": 1}]
        add_calls(ledger, T0 + SECOND, 1, status="error", model="b")
        engine.evaluate(T0 + 2 * SECOND)  # a new group for both receivers
        later = await asyncio.wait_for(delivery.dispatch(T0 + 3 * SECOND), 5)
        second = [lane.sent for lane in await asyncio.wait_for(asyncio.gather(*later), 5)]
        slow.release.set()
        finished = [lane.sent for lane in await asyncio.gather(*first)]
        third = [
            lane.sent for lane in await asyncio.gather(*await delivery.dispatch(T0 + 4 * SECOND))
        ]
        return second, finished, third

    second, finished, third = asyncio.run(scenario())
    delivery.close()
    assert second == [{"oncall": 1}]  # the busy lane is skipped
    assert sorted(finished, key=str) == [{"oncall": 1}, {"team": 1}]
    assert third == [{"team": 1}]
    firing = [("Errors", "a", "firing")], [("Errors", "b", "firing")]
    assert slow.got == [("team", "firing", firing[0]), ("team", "firing", firing[1])]
    assert fast.got == [("oncall", "firing", firing[0]), ("oncall", "firing", firing[1])]
    assert _unsent(path) == 0
