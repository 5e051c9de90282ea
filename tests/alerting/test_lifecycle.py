"""Lifecycle on an injected clock: pending, firing, keep_firing_for, resolved, errors, restarts."""

from alerting import store
from tests.alerting.alert_harness import MINUTE, SECOND, T0, add_calls, engine_for, rules_of

P95 = """
rules:
  - name: SlowP95
    kind: threshold
    metric: latency_ms
    aggregate: p95
    window: 5m
    group_by: [model]
    op: ">"
    threshold: 2000
    min_requests: 3
    for: 2m
    keep_firing_for: 3m
    summary: "p95 {{ value }} ms on {{ model }}"
"""


def states(result):
    return (
        [a.labels["model"] for a in result.pending],
        [a.labels["model"] for a in result.firing],
        [a.labels["model"] for a in result.resolved],
    )


def test_pending_for_then_firing_then_kept_then_resolved(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(P95))
    add_calls(ledger, T0 - 10 * SECOND, 5, latency_ms=3000.0)
    add_calls(ledger, T0 - 10 * SECOND, 5, latency_ms=100.0, model="fast")
    assert states(engine.evaluate(T0)) == (["m1"], [], [])
    assert states(engine.evaluate(T0 + MINUTE)) == (["m1"], [], [])
    add_calls(ledger, T0 + 2 * MINUTE - SECOND, 1, latency_ms=3000.0)
    result = engine.evaluate(T0 + 2 * MINUTE)
    assert states(result) == ([], ["m1"], [])
    assert result.firing[0].summary == "p95 3000 ms on m1"
    assert result.firing[0].labels == {"alertname": "SlowP95", "severity": "warning", "model": "m1"}
    assert states(engine.evaluate(T0 + 4 * MINUTE)) == ([], ["m1"], [])
    # From T0+5m one slow call is left (under min_requests); keep_firing_for holds it 3m more.
    assert states(engine.evaluate(T0 + 5 * MINUTE)) == ([], ["m1"], [])
    assert states(engine.evaluate(T0 + 7 * MINUTE - 1)) == ([], ["m1"], [])
    assert states(engine.evaluate(T0 + 7 * MINUTE)) == ([], [], ["m1"])
    assert states(engine.evaluate(T0 + 8 * MINUTE)) == ([], [], [])


def test_pending_that_clears_is_dropped_silently(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(P95))
    add_calls(ledger, T0 - SECOND, 3, latency_ms=5000.0)
    assert states(engine.evaluate(T0)) == (["m1"], [], [])
    assert states(engine.evaluate(T0 + 6 * MINUTE)) == ([], [], [])
    assert ledger.db.execute("SELECT count(*) FROM notifications").fetchone() == (0,)


def test_volume_guard_keeps_two_slow_requests_quiet(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(P95))
    add_calls(ledger, T0 - SECOND, 2, latency_ms=9000.0)
    assert states(engine.evaluate(T0)) == ([], [], [])


def test_restart_keeps_pending_timer(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(P95))
    add_calls(ledger, T0 - SECOND, 5, latency_ms=3000.0)
    engine.evaluate(T0)
    ledger.close()
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(P95))
    result = engine.evaluate(T0 + 2 * MINUTE)
    assert states(result) == ([], ["m1"], [])
    assert result.firing[0].active_since_us == T0


def test_evaluation_error_is_reported_and_keeps_the_alert(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(P95))
    add_calls(ledger, T0 - SECOND, 5, latency_ms=3000.0)
    engine.evaluate(T0)
    engine.evaluate(T0 + 2 * MINUTE)

    class Broken:
        def refresh(self, *args):
            pass

        def window(self, *args):
            raise RuntimeError("disk on fire")

    engine.reader = Broken()
    result = engine.evaluate(T0 + 20 * MINUTE)
    assert result.errors == {"SlowP95": "RuntimeError: disk on fire"}
    assert states(result) == ([], ["m1"], [])
    assert ledger.db.execute("SELECT error FROM alert_rules").fetchall() == [
        ("RuntimeError: disk on fire",)
    ]


def test_a_rule_gone_from_the_file_resolves_its_firing_alerts_and_drops_pending_ones(tmp_path):
    two = P95 + P95.split("rules:\n", 1)[1].replace("SlowP95", "SlowToo").replace("2m", "10m")
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(two))
    add_calls(ledger, T0 - SECOND, 5, latency_ms=3000.0)
    engine.evaluate(T0)
    result = engine.evaluate(T0 + 2 * MINUTE)
    assert [(a.rule, a.state) for a in result.firing + result.pending] == [
        ("SlowP95", "firing"),
        ("SlowToo", "pending"),
    ]
    engine.rules = []  # a reload without them; keep_firing_for does not hold a rule that is gone
    result = engine.evaluate(T0 + 3 * MINUTE)
    assert states(result) == ([], [], ["m1"])
    assert [a.rule for a in result.resolved] == ["SlowP95"]
    assert store.list_alerts(ledger.db) == []
