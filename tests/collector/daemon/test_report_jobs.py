"""The daemon's report jobs on an injected clock, a real ledger and a real SMTP server.

Missed schedule: down at 01:00, started at 03:00 -> sent once; restarted -> not again; started
after the grace -> not sent. SMTP down -> retried after retry_interval and delivered once.
"""

import asyncio
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from collector.daemon.report_jobs import ReportJobs
from schemas.config import CollectorConfig
from schemas.reports import ReportsConfig
from tests.alerting.fake_slack import FakeSlack
from tests.reports.report_harness import SmtpServer, ledger_with, local_us, make_events

BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 3, 0, tzinfo=BERLIN)

    def __call__(self) -> datetime:
        return self.now

    def at(self, *args) -> None:
        self.now = datetime(*args, tzinfo=BERLIN)


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ledger")
    calls, scores = make_events(local_us(2026, 11, 19), local_us(2026, 11, 21))
    ledger_with(path, calls, scores).close()
    return path


def config(tmp_path, ledger_dir, server, slack_url=None):
    receivers = [{"name": "team", "email": server.receiver()}]
    daily = {"at": "01:00", "to": ["lead@example.com"]}
    if slack_url:
        receivers.append({"name": "oncall", "slack": {"webhook_url": slack_url}})
        daily["slack"] = "oncall"
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes((ledger_dir / "ledger.db").read_bytes())
    return CollectorConfig(
        timezone="Europe/Berlin",
        ledger={"path": str(ledger)},
        dimensions=["model", "provider", "task_type", "status", "tenant_id"],
        alerting={"receivers": receivers},
        reports={
            "output_dir": str(tmp_path / "out"),
            "email_receiver": "team",
            "daily": daily,
            "grace": "6h",
            "retry_interval": "5m",
        },
    )


def run(config, clock):
    """One daemon life: start, the pass at start-up, stop."""
    jobs = ReportJobs(config, clock)
    try:
        return asyncio.run(jobs.run())
    finally:
        jobs.close()


@pytest.fixture
def server(tmp_path):
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


def test_missed_report_goes_out_once_after_start_and_never_again(server, tmp_path, ledger_dir):
    with FakeSlack() as slack:
        loaded = config(tmp_path, ledger_dir, server, f"{slack.url}/hook")
        clock = Clock()  # down at 01:00, started at 03:00
        outcome = run(loaded, clock)
        assert sorted(outcome.sent) == [
            ("daily", "2026-11-20", "email"),
            ("daily", "2026-11-20", "files"),
            ("daily", "2026-11-20", "slack"),
        ]
        clock.at(2026, 11, 21, 3, 5)  # restarted
        assert run(loaded, clock).sent == []
        clock.at(2026, 11, 22, 0, 59)  # before the next day's report is due
        assert run(loaded, clock).sent == []
    assert [e.rcpt_tos for e in server.inbox.envelopes] == [["lead@example.com"]]
    [(_, path, body)] = slack.requests
    assert path == "/hook" and "daily report: Friday 20 November 2026" in json.dumps(body)
    assert (tmp_path / "out" / "daily" / "2026-11-20.html").exists()


def test_a_report_later_than_the_grace_is_not_sent(server, tmp_path, ledger_dir):
    loaded = config(tmp_path, ledger_dir, server)
    clock = Clock()
    clock.at(2026, 11, 21, 7, 1)  # due at 01:00, grace 6h
    assert run(loaded, clock).sent == []
    assert server.inbox.envelopes == []
    assert not (tmp_path / "out").exists()


def test_smtp_down_is_retried_and_delivered_once(server, tmp_path, ledger_dir):
    loaded = config(tmp_path, ledger_dir, server)
    clock = Clock()
    clock.at(2026, 11, 21, 1, 0)
    server.stop()  # SMTP down when the report falls due
    outcome = run(loaded, clock)
    assert outcome.sent == [("daily", "2026-11-20", "files")]
    assert list(outcome.failed) == [("daily", "2026-11-20", "email")]
    assert "s3cret" not in next(iter(outcome.failed.values()))
    clock.at(2026, 11, 21, 1, 4)  # before retry_interval: not tried
    assert run(loaded, clock).failed == {}
    server.start()
    clock.at(2026, 11, 21, 1, 5)
    assert run(loaded, clock).sent == [("daily", "2026-11-20", "email")]
    clock.at(2026, 11, 21, 1, 30)
    assert run(loaded, clock).sent == []
    assert len(server.inbox.envelopes) == 1
    jobs = ReportJobs(loaded, clock)
    email = jobs.ledger.db.execute(
        "SELECT attempts, last_error FROM report_log WHERE channel = 'email'"
    ).fetchall()
    jobs.close()
    assert email == [(2, None)]


def test_cron_jobs_in_the_reporting_zone_and_a_catch_up_pass(tmp_path, ledger_dir):
    loaded = config(tmp_path, ledger_dir, SmtpServer(tmp_path))
    scheduler = AsyncIOScheduler(timezone=BERLIN)
    jobs = ReportJobs(loaded, Clock())
    jobs.schedule(scheduler)
    found = {job.id: job.trigger for job in scheduler.get_jobs()}
    assert {job.misfire_grace_time for job in scheduler.get_jobs()} == {None}
    jobs.close()
    assert set(found) == {"report-daily", "report-catch-up"}
    after = datetime(2026, 11, 21, 2, 0, tzinfo=BERLIN)
    due = found["report-daily"].get_next_fire_time(None, after)
    assert due == datetime(2026, 11, 22, 1, 0, tzinfo=BERLIN)
    assert found["report-catch-up"].interval.total_seconds() == 300


def test_the_daemon_adds_the_report_jobs_only_when_a_report_is_scheduled(tmp_path, ledger_dir):
    from collector.daemon.service import Daemon

    loaded = config(tmp_path, ledger_dir, SmtpServer(tmp_path))
    found = {}
    for name, reports in (("scheduled", loaded.reports), ("none", ReportsConfig())):
        scheduler = AsyncIOScheduler(timezone=BERLIN)
        daemon = Daemon(loaded.model_copy(update={"reports": reports}), Clock())
        daemon._add_report_jobs(scheduler)
        found[name] = {job.id for job in scheduler.get_jobs()}
    assert found == {"scheduled": {"report-daily", "report-catch-up"}, "none": set()}


def test_a_channel_no_longer_configured_is_left_alone(tmp_path, ledger_dir):
    server = SmtpServer(tmp_path)  # down
    loaded = config(tmp_path, ledger_dir, server)
    clock = Clock()
    assert list(run(loaded, clock).failed) == [("daily", "2026-11-20", "email")]
    loaded.reports.daily.to = []  # email taken out of the schedule while it waits for a retry
    clock.at(2026, 11, 21, 4, 0)
    outcome = run(loaded, clock)
    assert (outcome.sent, outcome.failed) == ([], {})
