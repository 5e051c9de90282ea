"""Routing, grouping timers, repeats, silences, outages and restarts, on an injected clock."""

from datetime import UTC, datetime

from alerting import store
from schemas.alerting import AlertingConfig
from tests.alerting.alert_harness import (
    MINUTE,
    SECOND,
    T0,
    Recorder,
    add_calls,
    deliver,
    delivery_for,
    engine_for,
    rules_of,
)

ERRORS = """
rules:
  - name: Errors
    kind: threshold
    metric: errors
    window: 5m
    group_by: [model]
    op: ">"
    threshold: 0
    severity: critical
"""
HOUR = 60 * MINUTE


def config(**route):
    return AlertingConfig.model_validate(
        {
            "receivers": [{"name": "oncall", "console": {}}, {"name": "team", "console": {}}],
            "route": {"receiver": "oncall", "group_by": ["alertname"]} | route,
        }
    )


def test_group_wait_then_one_message_for_the_group(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), config())
    oncall = Recorder()
    delivery = delivery_for(ledger, {"oncall": oncall})
    add_calls(ledger, T0 - SECOND, 1, status="error", model="a")
    add_calls(ledger, T0 - SECOND, 1, status="error", model="b")
    engine.evaluate(T0)
    assert deliver(delivery, T0 + 29 * SECOND).sent == {}
    assert deliver(delivery, T0 + 30 * SECOND).sent == {"oncall": 1}
    assert deliver(delivery, T0 + 31 * SECOND).sent == {}
    assert oncall.got == [
        ("oncall", "firing", [("Errors", "a", "firing"), ("Errors", "b", "firing")])
    ]


def test_repeat_interval_and_resolved_after_group_interval(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), config())
    oncall = Recorder()
    delivery = delivery_for(ledger, {"oncall": oncall})
    for minute in range(0, 4 * 60 + 1, 4):
        add_calls(ledger, T0 + minute * MINUTE - SECOND, 1, status="error")
        engine.evaluate(T0 + minute * MINUTE)
        deliver(delivery, T0 + minute * MINUTE + 30 * SECOND)
    # Fired at T0 (sent at +30 s), repeated once 4 h later.
    assert [status for _, status, _ in oncall.got] == ["firing", "firing"]
    end = T0 + 4 * HOUR + 5 * MINUTE
    engine.evaluate(end)
    assert deliver(delivery, end).sent == {}  # group_interval after the repeat at 4h+30s
    assert deliver(delivery, T0 + 4 * HOUR + 5 * MINUTE + 30 * SECOND).sent == {"oncall": 1}
    assert oncall.got[-1] == ("oncall", "resolved", [("Errors", "m1", "resolved")])


def test_child_route_with_continue_and_send_resolved_off(tmp_path):
    alerting = config(
        routes=[
            {"match": {"severity": "critical"}, "receiver": "team", "continue": True},
            {"match": {"model": "m1"}, "receiver": "oncall", "send_resolved": False},
        ]
    )
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), alerting)
    team, oncall = Recorder(), Recorder()
    delivery = delivery_for(ledger, {"team": team, "oncall": oncall})
    add_calls(ledger, T0 - SECOND, 1, status="error")
    engine.evaluate(T0)
    deliver(delivery, T0 + MINUTE)
    engine.evaluate(T0 + 10 * MINUTE)
    deliver(delivery, T0 + 20 * MINUTE)
    assert [s for _, s, _ in team.got] == ["firing", "resolved"]
    assert [s for _, s, _ in oncall.got] == ["firing"]


def test_silence_suppresses_until_it_ends(tmp_path):
    until = datetime.fromtimestamp((T0 + 10 * MINUTE) / 1e6, UTC)
    alerting = config()
    alerting = AlertingConfig.model_validate(
        alerting.model_dump() | {"silences": [{"matchers": {"model": "m1"}, "ends_at": until}]}
    )
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), alerting)
    oncall = Recorder()
    delivery = delivery_for(ledger, {"oncall": oncall})
    for minute in (0, 5, 10):
        add_calls(ledger, T0 + minute * MINUTE - SECOND, 1, status="error")
        engine.evaluate(T0 + minute * MINUTE)
        deliver(delivery, T0 + minute * MINUTE + 30 * SECOND)
    assert oncall.got == [("oncall", "firing", [("Errors", "m1", "firing")])]
    assert ledger.db.execute("SELECT min(created_us) FROM notifications").fetchone() == (
        T0 + 10 * MINUTE,
    )


def silence(ledger, matchers: dict, starts_us: int, ends_us: int) -> None:
    """A stored silence, as ``llm-collector silence add`` writes it."""
    store.add_silence(ledger.db, matchers, starts_us, ends_us, "")


def marks(ledger, model: str) -> list[tuple]:
    """(status, sent_us, silenced_us) of the notices of one model's alert, in order."""
    return ledger.db.execute(
        "SELECT status, sent_us, silenced_us FROM notifications WHERE alert_key LIKE ? ORDER BY id",
        (f'%"model":"{model}"%',),
    ).fetchall()


def test_a_silence_added_during_group_wait_stops_the_notice_at_send_time(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), config())
    oncall = Recorder()
    delivery = delivery_for(ledger, {"oncall": oncall})
    for model in ("a", "b"):
        add_calls(ledger, T0 - SECOND, 1, status="error", model=model)
    engine.evaluate(T0)  # one group, due after group_wait (30 s)
    silence(ledger, {"model": "a"}, T0 + 10 * SECOND, T0 + 10 * MINUTE)
    report = deliver(delivery, T0 + 30 * SECOND)
    assert (report.sent, report.silenced) == ({"oncall": 1}, {"oncall": 1})
    assert oncall.got == [("oncall", "firing", [("Errors", "b", "firing")])]
    assert marks(ledger, "a") == [("firing", None, T0 + 30 * SECOND)]
    for minute in (1, 4, 8, 11):  # both keep firing; a was never told, so once the silence
        now = T0 + minute * MINUTE  # ends it is sent (Alertmanager)
        for model in ("a", "b"):
            add_calls(ledger, now - SECOND, 1, status="error", model=model)
        engine.evaluate(now)
        deliver(delivery, now)
    assert oncall.got[1:] == [("oncall", "firing", [("Errors", "a", "firing")])]
    assert marks(ledger, "a")[1:] == [("firing", T0 + 11 * MINUTE, None)]


def test_a_resolved_notice_of_a_silenced_alert_is_not_sent(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), config())
    oncall = Recorder()
    delivery = delivery_for(ledger, {"oncall": oncall})
    add_calls(ledger, T0 - SECOND, 1, status="error")
    engine.evaluate(T0)
    assert deliver(delivery, T0 + 30 * SECOND).sent == {"oncall": 1}
    silence(ledger, {"model": "m1"}, T0 + MINUTE, T0 + HOUR)
    engine.evaluate(T0 + 6 * MINUTE)  # resolved: queued, the receiver was told it fired
    assert deliver(delivery, T0 + 6 * MINUTE).silenced == {"oncall": 1}
    assert oncall.got == [("oncall", "firing", [("Errors", "m1", "firing")])]
    assert marks(ledger, "m1") == [
        ("firing", T0 + 30 * SECOND, None),
        ("resolved", None, T0 + 6 * MINUTE),
    ]


def test_receiver_down_then_up_gets_it_once(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ERRORS), config())
    oncall = Recorder()
    oncall.down = True
    delivery = delivery_for(ledger, {"oncall": oncall})
    for minute in range(0, 5 * 60, 2):  # down for five hours, past the repeat interval
        add_calls(ledger, T0 + minute * MINUTE - SECOND, 1, status="error")
        engine.evaluate(T0 + minute * MINUTE)
        report = deliver(delivery, T0 + minute * MINUTE + 30 * SECOND)
    assert report.failed == {"oncall": "receiver down"}
    oncall.down = False
    assert deliver(delivery, T0 + 6 * HOUR).sent == {"oncall": 1}
    assert deliver(delivery, T0 + 7 * HOUR).sent == {}
    assert oncall.got == [("oncall", "firing", [("Errors", "m1", "firing")])]


SCENARIO = [  # (minute, add an error call first?)
    (0, True),
    (1, True),
    (2, False),
    (3, True),
    (9, False),
    (10, False),
    (20, True),
    (21, True),
    (40, False),
]


def _play(tmp_path, restart_every_step):
    rules = rules_of(ERRORS.replace("severity: critical", "for: 1m\n    keep_firing_for: 2m"))
    path = tmp_path / "l.db"
    oncall = Recorder()
    engine, ledger = engine_for(path, rules, config())
    for minute, error in SCENARIO:
        now = T0 + minute * MINUTE
        if restart_every_step:
            ledger.close()
            engine, ledger = engine_for(path, rules, config())
        if error:
            add_calls(ledger, now - SECOND, 1, status="error")
        engine.evaluate(now)
        if restart_every_step:
            ledger.close()
            engine, ledger = engine_for(path, rules, config())
        deliver(delivery_for(ledger, {"oncall": oncall}), now + 30 * SECOND)
    ledger.close()
    return oncall.got


def test_restart_in_every_state_neither_duplicates_nor_loses(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = _play(tmp_path / "a", restart_every_step=False)
    restarted = _play(tmp_path / "b", restart_every_step=True)
    assert straight == [
        ("oncall", "firing", [("Errors", "m1", "firing")]),
        ("oncall", "resolved", [("Errors", "m1", "resolved")]),
        ("oncall", "firing", [("Errors", "m1", "firing")]),
        ("oncall", "resolved", [("Errors", "m1", "resolved")]),
    ]
    assert restarted == straight


def test_receiver_down_across_a_restart_then_up_gets_it_once(tmp_path):
    path = tmp_path / "l.db"
    engine, ledger = engine_for(path, rules_of(ERRORS), config())
    oncall = Recorder()
    oncall.down = True
    add_calls(ledger, T0 - SECOND, 1, status="error")
    engine.evaluate(T0)
    assert deliver(delivery_for(ledger, {"oncall": oncall}), T0 + MINUTE).failed == {
        "oncall": "receiver down"
    }
    ledger.close()
    engine, ledger = engine_for(path, rules_of(ERRORS), config())
    oncall.down = False
    engine.evaluate(T0 + 2 * MINUTE)  # still firing: nothing new is queued
    delivery = delivery_for(ledger, {"oncall": oncall})
    assert deliver(delivery, T0 + 2 * MINUTE).sent == {"oncall": 1}
    assert deliver(delivery, T0 + 3 * MINUTE).sent == {}
    assert oncall.got == [("oncall", "firing", [("Errors", "m1", "firing")])]
    row = ledger.db.execute("SELECT attempts, last_error, sent_us FROM notifications").fetchall()
    assert row == [(2, None, T0 + 2 * MINUTE)]
