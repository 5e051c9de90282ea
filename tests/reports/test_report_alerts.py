"""Alerts in a report: every episode firing at some time in the period (from the notification
log and the alerts still firing), none that resolved before it or fired after it."""

from datetime import date

from alerting import store
from alerting.alert import Alert, labels_key
from alerting.db import transaction
from alerting.lifecycle import AlertState, Timers
from reports import markdown
from reports.gather import gather
from reports.periods import Period
from tests.reports.report_harness import BERLIN, ledger_with, local_us, make_events, reader_of

HOUR = 3600 * 10**6


def notice(db, name, status, fired_us, created_us, ends_us=None, **labels):
    labels = {"alertname": name, "severity": "warning", **labels}
    payload = {"status": status, "labels": labels, "value": 2.5, "threshold": 2.0,
               "summary": "", "starts_us": fired_us, "ends_us": ends_us}  # fmt: skip
    with transaction(db):
        store.queue_notice(db, "console", "g", labels_key(labels), payload, created_us, created_us)


def test_alerts_that_fired_in_the_period(tmp_path):
    calls, scores = make_events(local_us(2026, 11, 20), local_us(2026, 11, 21))
    tiers = ledger_with(tmp_path, calls, scores)
    day = local_us(2026, 11, 20)
    db = tiers.db
    # resolved the day before: out
    notice(db, "Old", "firing", day - 5 * HOUR, day - 5 * HOUR)
    notice(db, "Old", "resolved", day - 5 * HOUR, day - 2 * HOUR, ends_us=day - 2 * HOUR)
    # fired the day before, resolved during the day: in
    notice(db, "HighP95Latency", "firing", day - HOUR, day - HOUR, model="m-big")
    notice(db, "HighP95Latency", "resolved", day - HOUR, day + 3 * HOUR, day + 3 * HOUR,
           model="m-big")  # fmt: skip
    # fired during the day, repeated, still firing: in once
    notice(db, "ErrorRate", "firing", day + 10 * HOUR, day + 10 * HOUR)
    notice(db, "ErrorRate", "firing", day + 10 * HOUR, day + 14 * HOUR)
    # firing now, silenced (no notice), since during the day: in
    timers = Timers(AlertState.FIRING, day + 20 * HOUR, day + 30 * HOUR, day + 20 * HOUR)
    labels = {"alertname": "Budget", "severity": "critical"}
    with transaction(db):
        store.save_alert(db, Alert("Budget", labels, timers, 120, 100, "over"))
    # fired the next day: out
    notice(db, "Later", "firing", day + 25 * HOUR, day + 25 * HOUR)
    report = gather(reader_of(tiers), Period.containing("daily", date(2026, 11, 20), BERLIN), 5)
    tiers.close()
    found = [(a["alertname"], a["fired_us"], a["resolved_us"]) for a in report.alerts]
    assert found == [
        ("HighP95Latency", day - HOUR, day + 3 * HOUR),
        ("ErrorRate", day + 10 * HOUR, None),
        ("Budget", day + 20 * HOUR, None),
    ]
    text = markdown.render(report)
    assert "## Alerts (3)" in text
    assert (
        "| HighP95Latency | warning | model=m-big | 2026-11-19 23:00 | 2026-11-20 03:00 |" in text
    )
    assert "| Budget | critical | - | 2026-11-20 20:00 | still firing |" in text
