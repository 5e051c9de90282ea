"""Each rule kind on a real ledger: spike baselines, budgets across midnight, absence, quality."""

from datetime import datetime
from zoneinfo import ZoneInfo

from alerting.kinds import period_bounds
from tests.alerting.alert_harness import MINUTE, SECOND, T0, add_calls, engine_for, rules_of

HOUR = 60 * MINUTE
DAY = 24 * HOUR


def firing(result):
    return sorted((a.labels["alertname"], round(a.value, 3)) for a in result.firing)


SPIKE = """
rules:
  - name: Spike
    kind: change
    metric: requests
    window: 5m
    baseline: {offset: 1d, trailing: 1h, min_requests: 10}
    ratio: 3
    min_requests: 20
"""


def test_spike_against_yesterday(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(SPIKE))
    add_calls(ledger, T0 - DAY - MINUTE, 10)
    add_calls(ledger, T0 - MINUTE, 29)
    assert firing(engine.evaluate(T0)) == []
    add_calls(ledger, T0 - MINUTE, 1)
    assert firing(engine.evaluate(T0)) == [("Spike", 3.0)]


def test_spike_falls_back_to_scaled_trailing_hour(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(SPIKE))
    add_calls(ledger, T0 - DAY - MINUTE, 9)  # yesterday: under the baseline's floor
    add_calls(ledger, T0 - 30 * MINUTE, 120)  # trailing hour: 120 -> 10 per 5 minutes
    add_calls(ledger, T0 - MINUTE, 40)
    assert firing(engine.evaluate(T0)) == [("Spike", 4.0)]


def test_drop_ratio_below_one(tmp_path):
    rules = rules_of(SPIKE.replace("ratio: 3", "ratio: 0.5").replace("min_requests: 20", ""))
    engine, ledger = engine_for(tmp_path / "l.db", rules)
    add_calls(ledger, T0 - DAY - MINUTE, 100)
    add_calls(ledger, T0 - MINUTE, 40)
    assert firing(engine.evaluate(T0)) == [("Spike", 0.4)]


BUDGET = """
rules:
  - name: Budget
    kind: budget
    period: day
    group_by: [tenant_id]
    budget: 100
    warn_at: [0.8, 1.0]
    projected: true
"""


def budget_alerts(result):
    return sorted(
        (a.labels["tenant_id"], a.labels["basis"], a.labels["level"], round(a.value, 2))
        for a in result.firing
    )


def test_budget_levels_projection_and_the_day_boundary(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(BUDGET))
    # T0 is 12:00 UTC: half the day gone, so $55 projects to $110.
    add_calls(ledger, T0 - 2 * HOUR, 1, tenant_id="acme", cost_usd=55.0)
    add_calls(ledger, T0 - 2 * HOUR, 1, tenant_id="tiny", cost_usd=1.0)
    assert budget_alerts(engine.evaluate(T0)) == [("acme", "projected", "1", 110.0)]
    add_calls(ledger, T0 + HOUR, 1, tenant_id="acme", cost_usd=30.0)
    assert budget_alerts(engine.evaluate(T0 + 2 * HOUR)) == [
        ("acme", "actual", "0.8", 85.0),
        ("acme", "projected", "1", 145.71),
    ]
    midnight = T0 + 12 * HOUR
    add_calls(ledger, midnight + MINUTE, 1, tenant_id="acme", cost_usd=5.0)
    result = engine.evaluate(midnight + 2 * MINUTE)
    assert budget_alerts(result) == []  # a new day; 5 dollars is not projected this early
    assert sorted(a.labels["basis"] for a in result.resolved) == ["actual", "projected"]


def test_budget_day_is_the_configured_time_zone(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(BUDGET), tz="America/New_York")
    # T0 = 12:00 UTC = 07:00 in New York (EST): the local day began at 05:00 UTC.
    add_calls(ledger, T0 - 8 * HOUR, 1, tenant_id="acme", cost_usd=90.0)  # 23:00 yesterday
    add_calls(ledger, T0 - 7 * HOUR - SECOND, 1, tenant_id="acme", cost_usd=1.0)
    add_calls(ledger, T0 - 3 * HOUR, 1, tenant_id="acme", cost_usd=80.0)
    assert budget_alerts(engine.evaluate(T0)) == [
        ("acme", "actual", "0.8", 80.0),
        ("acme", "projected", "1", 274.29),
    ]


def test_period_bounds_month_and_dst_day():
    tz = ZoneInfo("Europe/Berlin")
    moment = int(datetime(2026, 3, 29, 12, tzinfo=tz).timestamp() * 1e6)
    start, end = period_bounds(moment, "day", tz)
    assert (end - start) / HOUR == 23  # the spring-forward day is 23 hours long
    start, end = period_bounds(moment, "month", tz)
    assert datetime.fromtimestamp(start / 1e6, tz) == datetime(2026, 3, 1, tzinfo=tz)
    assert datetime.fromtimestamp(end / 1e6, tz) == datetime(2026, 4, 1, tzinfo=tz)


ABSENT = """
rules:
  - name: Silent
    kind: absence
    window: 15m
"""


def test_absence_fires_after_the_window_and_resolves_on_an_event(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(ABSENT))
    add_calls(ledger, T0 - MINUTE, 1)
    assert firing(engine.evaluate(T0)) == []
    assert firing(engine.evaluate(T0 + 14 * MINUTE)) == []  # T0-1m is still in the window
    assert firing(engine.evaluate(T0 + 14 * MINUTE + 1)) == [("Silent", 0.0)]
    ledger.db.execute(
        "INSERT INTO scores (ts_us, name, value, stream_id) VALUES (?, 'helpful', 1, 0)",
        (T0 + 15 * MINUTE,),
    )
    assert [a.labels["alertname"] for a in engine.evaluate(T0 + 16 * MINUTE).resolved] == ["Silent"]


QUALITY = """
rules:
  - name: LowQuality
    kind: threshold
    metric: quality_score
    aggregate: mean
    window: 1h
    group_by: [task_type]
    op: "<"
    threshold: 0.8
    min_requests: 3
"""


def test_quality_mean_counts_inline_and_score_events(tmp_path):
    engine, ledger = engine_for(tmp_path / "l.db", rules_of(QUALITY))
    add_calls(ledger, T0 - MINUTE, 2, task_type="chat", quality_score=0.9)
    add_calls(ledger, T0 - MINUTE, 5, task_type="chat")  # no score: not counted
    ledger.db.execute(
        "INSERT INTO scores (ts_us, name, value, task_type, stream_id)"
        " VALUES (?, 'judge', 0.3, 'chat', 0)",
        (T0 - MINUTE,),
    )
    [alert] = engine.evaluate(T0).firing
    assert (alert.labels["task_type"], round(alert.value, 9)) == ("chat", 0.7)


def test_tokens_per_second_and_error_rate_values(tmp_path):
    rules = rules_of(
        """
rules:
  - {name: Slow, kind: threshold, metric: tokens_per_second, aggregate: min, op: "<",
     threshold: 100}
  - {name: Failing, kind: threshold, metric: error_rate, op: ">", threshold: 0.2}
  - {name: Rate, kind: threshold, metric: requests, aggregate: rate_per_s, window: 1m,
     op: ">=", threshold: 0.05}
"""
    )
    engine, ledger = engine_for(tmp_path / "l.db", rules)
    add_calls(ledger, T0 - SECOND, 1, output_tokens=100, latency_ms=2000.0)
    add_calls(ledger, T0 - SECOND, 1, status="error", latency_ms=10.0)
    add_calls(ledger, T0 - SECOND, 1, output_tokens=500, latency_ms=1000.0)
    assert firing(engine.evaluate(T0)) == [("Failing", 0.333), ("Rate", 0.05), ("Slow", 50.0)]
