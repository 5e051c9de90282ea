"""The alerting tables behind their store functions, on a real ledger: alert state, rule
evaluations, the notification outbox and log, silences."""

import pytest

from alerting import store
from alerting.alert import Alert, AlertPayload
from alerting.db import TransactionMisuse, transaction
from alerting.lifecycle import AlertState, Notice, Timers
from collector.ledger.connection import Ledger
from tests.alerting.alert_harness import MINUTE, T0


@pytest.fixture
def db(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    yield ledger.db
    ledger.close()


def alert(rule: str, state: AlertState, fired_us: int | None = None, **labels) -> Alert:
    timers = Timers(state, T0, T0 + MINUTE, fired_us)
    return Alert(rule, {"alertname": rule, **labels}, timers, 2.5, 2.0, f"{rule} is up")


def notice(status: Notice, model: str = "m1") -> AlertPayload:
    return {
        "status": status,
        "labels": {"alertname": "Errors", "model": model},
        "value": 3.0,
        "threshold": 0.0,
        "summary": "",
        "starts_us": T0,
        "ends_us": T0 + MINUTE if status == Notice.RESOLVED else None,
    }


def test_alert_state_round_trips_with_its_state_as_the_enum(db):
    stored = [
        alert("B", AlertState.PENDING, model="m2"),
        alert("A", AlertState.FIRING, T0 + 2 * MINUTE),
        alert("B", AlertState.FIRING, T0 + MINUTE, model="m1"),
    ]
    with transaction(db):
        for each in stored:
            store.save_alert(db, each)
    loaded = store.load_alerts(db)
    assert loaded == {
        "A": {stored[1].key: stored[1]},
        "B": {stored[2].key: stored[2], stored[0].key: stored[0]},
    }
    assert type(loaded["A"][stored[1].key].state) is AlertState
    assert db.execute("SELECT DISTINCT state FROM alert_state ORDER BY 1").fetchall() == [
        ("firing",),
        ("pending",),
    ]
    assert store.list_alerts(db) == [stored[1], stored[2], stored[0]]  # firing first, by rule
    assert store.firing_alerts(db) == [stored[2], stored[1]]  # longest firing first
    with transaction(db):
        store.delete_alert(db, stored[2])
    assert store.firing_alerts(db) == [stored[1]]


def test_saving_an_alert_again_replaces_it(db):
    fired = alert("A", AlertState.FIRING, T0 + MINUTE)
    with transaction(db):
        store.save_alert(db, alert("A", AlertState.PENDING))
        store.save_alert(db, fired)
    assert store.list_alerts(db) == [fired]


def test_rule_errors_are_those_of_the_latest_evaluation(db):
    with transaction(db):
        store.record_evaluation(db, "A", T0, "RuntimeError: disk on fire")
        store.record_evaluation(db, "B", T0, "ValueError: no")
        store.record_evaluation(db, "A", T0 + MINUTE, None)
    assert store.rule_errors(db) == {"B": "ValueError: no"}


def test_outbox_queue_due_sent_failed_and_the_log(db):
    with transaction(db):
        store.queue_notice(db, "oncall", "g", "k1", notice(Notice.FIRING), T0, T0 + 30_000_000)
        store.queue_notice(db, "oncall", "g", "k2", notice(Notice.FIRING, "m2"), T0, T0 + MINUTE)
    assert store.group_waiting_until(db, "oncall", "g") == T0 + 30_000_000
    assert store.group_last_sent(db, "oncall", "g") is None
    assert [q.alert_key for q in store.due_notices(db, T0 + 30_000_000)] == ["k1"]
    [first, second] = store.due_notices(db, T0 + MINUTE)
    assert first.payload == notice(Notice.FIRING) and first.receiver == "oncall"
    assert type(first.payload["status"]) is Notice

    store.mark_failed(db, [first.id], "receiver down", T0 + 2 * MINUTE)
    store.mark_sent(db, [second.id], T0 + MINUTE + 1, "oncall", "g", T0 + MINUTE)
    assert store.due_notices(db, T0 + MINUTE) == []
    assert [q.id for q in store.due_notices(db, T0 + 2 * MINUTE)] == [first.id]
    assert store.group_last_sent(db, "oncall", "g") == T0 + MINUTE
    assert store.group_waiting_until(db, "oncall", "g") == T0 + 2 * MINUTE

    newest, oldest = store.notification_log(db, 10)
    assert (newest.id, newest.sent_us, newest.attempts, newest.last_error) == (
        second.id,
        T0 + MINUTE + 1,
        1,
        None,
    )
    assert (oldest.sent_us, oldest.attempts, oldest.last_error, oldest.due_us) == (
        None,
        1,
        "receiver down",
        T0 + 2 * MINUTE,
    )
    assert store.notification_log(db, 1) == [newest]


def test_last_notice_skips_one_a_silence_stopped(db):
    with transaction(db):
        store.queue_notice(db, "oncall", "g", "k", notice(Notice.FIRING), T0, T0)
        resolved = notice(Notice.RESOLVED)
        store.queue_notice(db, "oncall", "g", "k", resolved, T0 + MINUTE, T0 + MINUTE)
    assert store.last_notice(db, "k", "oncall") == store.LastNotice(Notice.RESOLVED, T0 + MINUTE)
    [_, resolved] = store.due_notices(db, T0 + MINUTE)
    store.mark_silenced(db, [resolved.id], T0 + MINUTE)
    assert store.last_notice(db, "k", "oncall") == store.LastNotice(Notice.FIRING, T0)
    assert store.last_notice(db, "k", "team") is None
    assert store.group_waiting_until(db, "oncall", "g") == T0
    assert store.notification_log(db, 1)[0].silenced_us == T0 + MINUTE


def test_notices_created_in_a_span(db):
    with transaction(db):
        for minute in range(3):
            at = T0 + minute * MINUTE
            store.queue_notice(db, "oncall", "g", f"k{minute}", notice(Notice.FIRING), at, at)
    found = store.notices_created(db, T0 + MINUTE, T0 + 2 * MINUTE)
    assert [q.alert_key for q in found] == ["k1"]


def test_silences_add_list_active_expire(db):
    now = T0
    current = store.add_silence(db, {"model": "m1"}, now - MINUTE, now + MINUTE, "deploy")
    later = store.add_silence(db, {"model": "m2"}, now + MINUTE, now + 2 * MINUTE, "")
    ended = store.add_silence(db, {"model": "m3"}, now - 2 * MINUTE, now - MINUTE, "old")
    assert [s.id for s in store.list_silences(db)] == [current, later, ended]
    assert [s.id for s in store.list_silences(db, now)] == [current, later]
    [active] = store.active_silences(db, now)
    assert active == store.StoredSilence(
        current, {"model": "m1"}, now - MINUTE, now + MINUTE, "deploy"
    )
    assert store.expire_silence(db, current, now)
    assert not store.expire_silence(db, current, now)  # no longer in force
    assert not store.expire_silence(db, 999, now)
    assert store.active_silences(db, now) == []
    assert [s.id for s in store.list_silences(db, now)] == [later]


def _written(db) -> dict[str, int]:
    tables = ("alert_state", "alert_rules", "notifications", "notify_groups", "silences")
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


JOINING = {
    "save_alert": lambda db: store.save_alert(db, alert("A", AlertState.PENDING)),
    "delete_alert": lambda db: store.delete_alert(db, alert("A", AlertState.PENDING)),
    "record_evaluation": lambda db: store.record_evaluation(db, "A", T0, None),
    "queue_notice": lambda db: store.queue_notice(
        db, "oncall", "g", "k", notice(Notice.FIRING), T0, T0
    ),
}
COMMITTING = {
    "mark_silenced": lambda db: store.mark_silenced(db, [1], T0),
    "mark_sent": lambda db: store.mark_sent(db, [1], T0, "oncall", "g", T0),
    "mark_failed": lambda db: store.mark_failed(db, [1], "down", T0),
    "add_silence": lambda db: store.add_silence(db, {"model": "m"}, T0, T0 + MINUTE, ""),
    "expire_silence": lambda db: store.expire_silence(db, 1, T0),
}


@pytest.mark.parametrize("write", JOINING.values(), ids=JOINING.keys())
def test_an_evaluation_write_outside_a_transaction_is_refused_and_writes_nothing(db, write):
    with pytest.raises(TransactionMisuse, match="joins the caller's transaction"):
        write(db)
    assert set(_written(db).values()) == {0}


@pytest.mark.parametrize("write", COMMITTING.values(), ids=COMMITTING.keys())
def test_a_write_that_commits_on_its_own_is_refused_inside_a_transaction(db, write):
    """It would commit the caller's half-done work; the caller's transaction rolls back."""
    with pytest.raises(TransactionMisuse, match="commits on its own"), transaction(db):
        store.save_alert(db, alert("A", AlertState.PENDING))
        write(db)
    assert not db.in_transaction
    assert set(_written(db).values()) == {0}
