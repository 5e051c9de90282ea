"""Each receiver sends in a lane of its own (a hung Slack holds up no email, nor the threads
the daemon reads with) and each message is stamped when its receiver acknowledged it; a
failed send waits from the failure; a lane the ledger breaks logs one line and waits longer
each time; closing during a run closes the connection only between queries."""

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller

from alerting.delivery import build_notifiers
from alerting.notifiers import NotifyError
from collector.ledger.connection import Ledger
from schemas.alerting import AlertingConfig
from tests.alerting.alert_harness import (
    SECOND,
    T0,
    Clock,
    Recorder,
    add_calls,
    delivery_for,
    engine_for,
    rules_of,
    run_lanes,
)
from tests.alerting.fake_slack import FakeSlack
from tests.alerting.test_email import Inbox, free_port
from tests.alerting.test_notify import ERRORS, config


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
        run = asyncio.create_task(run_lanes(delivery, T0 + SECOND))
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
    report = asyncio.run(run_lanes(delivery, T0 + SECOND))
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
                run = asyncio.create_task(run_lanes(delivery, T0 + SECOND))
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


def slack_receivers(url: str, names: list[str]) -> AlertingConfig:
    """Every alert to each of ``names``, all Slack webhooks at ``url`` (timeout 30 s)."""
    return AlertingConfig.model_validate(
        {
            "receivers": [
                {"name": name, "slack": {"webhook_url": f"{url}/hook/{name}", "timeout": "30s"}}
                for name in names
            ],
            "route": {
                "receiver": names[0],
                "group_wait": "0s",
                "routes": [{"match": {}, "receiver": name, "continue": True} for name in names],
            },
        }
    )


def test_hung_slack_receivers_leave_the_loops_thread_pool_to_the_rest(tmp_path):
    """Eight Slacks that answer nothing, the loop's default pool four threads (the daemon
    reads the traces on it): all eight sends hang at once, and the pool still runs work."""
    names = [f"chat{i}" for i in range(8)]
    with FakeSlack() as slack:
        alerting = slack_receivers(slack.url, names)
        engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), alerting)
        add_calls(ledger, T0 - SECOND, 1, status="error", model="a")
        engine.evaluate(T0)
        delivery = delivery_for(ledger, build_notifiers(alerting))
        waiting = ThreadPoolExecutor(1)  # the test's own thread, outside the loop's pool

        async def scenario():
            loop = asyncio.get_running_loop()
            loop.set_default_executor(ThreadPoolExecutor(4))
            slack.hold()
            lanes = await asyncio.wait_for(delivery.dispatch(T0 + SECOND), 10)
            try:
                all_hung = await loop.run_in_executor(waiting, slack.wait_for_requests, 8, 10)
                other_work = await asyncio.wait_for(asyncio.to_thread(lambda: "done"), 10)
            finally:
                slack.release()
            return all_hung, other_work, await asyncio.wait_for(asyncio.gather(*lanes), 10)

        all_hung, other_work, reports = asyncio.run(scenario())
        delivery.close()
        waiting.shutdown()
    assert (all_hung, other_work) == (True, "done")
    assert sorted(name for report in reports for name in report.sent) == names
    assert sorted(path for _, path, _ in slack.requests) == [f"/hook/{n}" for n in names]


class TimesOut:
    """A receiver that fails after its timeout: the clock moves on ``takes_us`` meanwhile."""

    def __init__(self, clock: Clock, takes_us: int) -> None:
        self.clock = clock
        self.takes_us = takes_us

    async def send(self, notification) -> None:
        self.clock.now_us += self.takes_us
        raise NotifyError("slack webhook: The read operation timed out")


def test_a_failed_send_is_retried_retry_interval_after_the_failure_not_the_dispatch(tmp_path):
    ledger = _firing(tmp_path)
    clock = Clock(T0 + SECOND)
    delivery = delivery_for(
        ledger, {"oncall": TimesOut(clock, 30 * SECOND)}, retry_us=30 * SECOND, clock=clock
    )
    assert asyncio.run(run_lanes(delivery, T0 + SECOND)).failed == {
        "oncall": "slack webhook: The read operation timed out"
    }  # failed at T0 + 31 s
    [(due_us,)] = ledger.db.execute("SELECT due_us FROM notifications").fetchall()
    oncall = Recorder()
    delivery.notifiers = {"oncall": oncall}
    early = asyncio.run(run_lanes(delivery, T0 + 31 * SECOND)).sent  # dispatch + 30 s
    clock.now_us = T0 + 61 * SECOND
    due = asyncio.run(run_lanes(delivery, T0 + 61 * SECOND)).sent  # failure + 30 s
    delivery.close()
    assert due_us == T0 + 61 * SECOND
    assert (early, due) == ({}, {"oncall": 1})
    assert len(oncall.got) == 1


def test_a_lane_the_ledger_breaks_logs_one_line_and_its_receiver_waits_doubling(tmp_path, caplog):
    ledger = _firing(tmp_path)
    ledger.db.execute("PRAGMA busy_timeout = 0")  # "database is locked" at once
    clock = Clock(T0 + SECOND)
    oncall = Recorder()
    delivery = delivery_for(ledger, {"oncall": oncall}, retry_us=30 * SECOND, clock=clock)
    writer = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer: the lane cannot mark what it sent

    async def at(now_us: int) -> list:
        clock.now_us = now_us
        lanes = await delivery.dispatch(now_us)
        if lanes:
            await asyncio.wait(lanes)
        return [lane.exception() is None for lane in lanes]

    async def scenario():
        runs = [await at(T0 + SECOND), await at(T0 + SECOND + SECOND // 2)]  # broke; waits 1 s
        runs += [await at(T0 + 2 * SECOND), await at(T0 + 3 * SECOND)]  # broke; waits 2 s
        failing = dict(delivery.failing)
        writer.execute("ROLLBACK")
        runs.append(await at(T0 + 4 * SECOND))
        return runs, failing

    with caplog.at_level(logging.ERROR, logger="alerting.delivery"):
        runs, failing = asyncio.run(scenario())
    delivery.close()
    writer.close()
    assert runs == [[False], [], [False], [], [True]]
    assert failing == {"oncall": "OperationalError: database is locked"}
    assert delivery.failing == {}
    assert [(r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("delivery to oncall failed: OperationalError: database is locked; retrying in 1 s", None),
        ("delivery to oncall failed: OperationalError: database is locked; retrying in 2 s", None),
    ]
    assert len(oncall.got) == 3  # at least once: each broken lane had sent before it broke
    assert _unsent(tmp_path / "l.db") == 0
