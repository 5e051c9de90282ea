"""The alert cache answers every window exactly as the raw-row reader does, pass after pass."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.kinds import observe
from collector.ledger.connection import Ledger
from collector.readers.alerts.cache import AlertCache, SeriesKey, series_needs
from collector.readers.alerts.grid import Grid
from collector.readers.alerts.reader import LedgerReader
from schemas.rules import RulesFile
from tests.collector.rollup_harness import BERLIN, Tiers, us
from tests.collector.rollup_harness import call as ledger_call

SECOND = 1_000_000
MINUTE = 60 * SECOND
T0 = 1_772_452_800 * SECOND  # 2026-03-02 12:00 UTC

RULES = RulesFile.model_validate(
    {
        "rules": [
            {
                "name": "p95",
                "kind": "threshold",
                "metric": "latency_ms",
                "aggregate": "p95",
                "window": "5m",
                "group_by": ["model"],
                "threshold": 1000,
            },
            {
                "name": "max",
                "kind": "threshold",
                "metric": "latency_ms",
                "aggregate": "max",
                "window": "90s",
                "threshold": 1000,
            },
            {
                "name": "min",
                "kind": "threshold",
                "metric": "cost_usd",
                "aggregate": "min",
                "window": "10m",
                "where": {"task_type": "chat"},
                "threshold": 0,
                "op": ">",
            },
            {
                "name": "errors",
                "kind": "threshold",
                "metric": "error_rate",
                "window": "2m",
                "group_by": ["model", "task_type"],
                "threshold": 0.1,
            },
            {
                "name": "quality",
                "kind": "threshold",
                "metric": "quality_score",
                "aggregate": "p50",
                "window": "3m",
                "group_by": ["task_type"],
                "threshold": 0.5,
                "op": "<",
            },
            {
                "name": "rate",
                "kind": "threshold",
                "metric": "requests",
                "aggregate": "rate_per_s",
                "window": "1m",
                "threshold": 1,
            },
            {
                "name": "spike",
                "kind": "change",
                "metric": "total_tokens",
                "aggregate": "sum",
                "window": "2m",
                "baseline": {"offset": "3h", "trailing": "10m"},
                "ratio": 2,
            },
            {
                "name": "budget",
                "kind": "budget",
                "metric": "cost_usd",
                "period": "day",
                "group_by": ["model"],
                "budget": 1,
                "warn_at": [0.5, 1],
                "projected": True,
            },
            {
                "name": "month",
                "kind": "budget",
                "metric": "total_tokens",
                "period": "month",
                "group_by": ["task_type"],
                "budget": 20_000,
            },
            {"name": "silent", "kind": "absence", "window": "4m", "where": {"model": "m2"}},
        ]
    }
)
MODELS = ("m1", "m2", "m3")
TASKS = ("chat", "search")

call = st.fixed_dictionaries(
    {
        "offset_us": st.integers(-4 * 3600 * SECOND, 30 * SECOND),
        "model": st.sampled_from(MODELS),
        "task_type": st.sampled_from(TASKS),
        "status": st.sampled_from(("ok", "ok", "error")),
        "latency_ms": st.one_of(st.none(), st.floats(1, 20_000)),
        "cost_usd": st.one_of(st.none(), st.floats(0, 2)),
        "total_tokens": st.integers(0, 5000),
        "quality_score": st.one_of(st.none(), st.floats(0, 1)),
    }
)
score = st.fixed_dictionaries(
    {
        "offset_us": st.integers(-10 * MINUTE, 10 * SECOND),
        "task_type": st.sampled_from(TASKS),
        "value": st.floats(0, 1),
    }
)
step = st.tuples(
    st.lists(call, max_size=25),
    st.lists(score, max_size=4),
    st.integers(0, 3 * MINUTE),  # how far the clock moves before the pass
)


def _insert(ledger: Ledger, now_us: int, calls: list[dict], scores: list[dict]) -> None:
    with ledger.transaction() as db:
        for row in calls:
            fields = {k: v for k, v in row.items() if k != "offset_us"}
            fields |= {"ts_us": now_us + row["offset_us"], "stream_id": 0, "price_source": 1}
            db.execute(
                f"INSERT INTO calls ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
                list(fields.values()),
            )
        for row in scores:
            db.execute(
                "INSERT INTO scores (ts_us, name, value, task_type, stream_id)"
                " VALUES (?, 'q', ?, ?, 0)",
                (now_us + row["offset_us"], row["value"], row["task_type"]),
            )


def _normal(observations) -> list:
    return sorted((sorted(o.labels.items()), o.value, o.threshold, o.active) for o in observations)


def _same(cached: list, raw: list) -> bool:
    if len(cached) != len(raw):
        return False
    for (labels, value, threshold, active), (labels2, value2, threshold2, active2) in zip(
        cached, raw, strict=True
    ):
        if (labels, threshold, active) != (labels2, threshold2, active2):
            return False
        if (value is None) != (value2 is None):
            return False
        if value is not None and not math.isclose(value, value2, rel_tol=1e-9, abs_tol=1e-9):
            return False
    return True


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(call, max_size=60),
    steps=st.lists(step, min_size=1, max_size=5),
    sub_second=st.integers(0, SECOND - 1),
)
def test_every_window_equals_the_raw_reader(tmp_path_factory, history, steps, sub_second):
    from zoneinfo import ZoneInfo

    ledger = Ledger(tmp_path_factory.mktemp("cache") / "ledger.db")
    try:
        now = T0 + sub_second
        _insert(ledger, now, history, [])
        cache, raw, tz = AlertCache(ledger.db), LedgerReader(ledger.db), ZoneInfo("Europe/Berlin")
        for calls, scores, advance in steps:
            now += advance
            _insert(ledger, now, calls, scores)
            cache.refresh(now, RULES.rules)
            for rule in RULES.rules:
                cached = _normal(observe(rule, cache, now, tz))
                expected = _normal(observe(rule, raw, now, tz))
                assert _same(cached, expected), (rule.name, cached, expected)
    finally:
        ledger.close()


def test_the_cache_answers_without_falling_back(tmp_path):
    """Windows the rules ask for are served by the grids, not by raw queries of the window."""
    ledger = Ledger(tmp_path / "ledger.db")
    _insert(
        ledger, T0, [{"offset_us": -SECOND, "model": "m1", "status": "ok", "latency_ms": 5.0}], []
    )
    cache = AlertCache(ledger.db)
    cache.refresh(T0, RULES.rules)
    asked: list = []
    cache.raw.window = lambda *args: asked.append(args) or {}  # type: ignore[method-assign]
    for rule in RULES.rules:
        observe(rule, cache, T0, __import__("zoneinfo").ZoneInfo("UTC"))
    assert asked == []
    ledger.close()


def test_series_spans_follow_the_rules():
    needs = series_needs(RULES.rules)
    assert needs[SeriesKey.of("latency_ms", {}, ["model"])] == (300, 300, True)
    assert needs[SeriesKey.of("total_tokens", {}, [])] == (120 + 3 * 3600, 120 + 600, False)
    assert needs[SeriesKey.of("cost_usd", {}, ["model"])] == (25 * 3600, 0, False)
    assert needs[SeriesKey.of("events", {"model": "m2"}, [])] == (240, 240, False)


def test_grid_keeps_future_rows_until_it_reaches_them():
    grid = Grid(1, span_steps=10)
    grid.start(1000)
    grid.ensure_columns(1)
    far = 1000 + grid.length + 5
    import numpy as np

    grid.add(np.array([[far, 0, 2, 2, 7.0, 3.0, 4.0], [995, 0, 1, 1, 1.0, 1.0, 1.0]]))
    assert grid.totals(990, 1001).requests.tolist() == [1.0]
    grid.advance(far)
    totals = grid.totals(far, far + 1)
    assert (totals.requests.tolist(), totals.sums.tolist(), totals.minima.tolist()) == (
        [2.0],
        [7.0],
        [3.0],
    )
    assert grid.totals(990, 1001).requests.tolist() == [0.0]  # slid out of the span


def test_a_reload_with_new_rules_loads_their_spans(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    _insert(
        ledger, T0, [{"offset_us": -2 * MINUTE, "model": "m1", "status": "ok", "cost_usd": 0.5}], []
    )
    cache = AlertCache(ledger.db)
    cache.refresh(T0, RULES.rules[:1])
    assert SeriesKey.of("cost_usd", {}, ["model"]) not in cache.series
    cache.refresh(T0 + SECOND, RULES.rules)
    sample = cache.window(
        "cost_usd", "sum", T0 - timedelta(hours=1).seconds * SECOND, T0 + SECOND, {}, ["model"]
    )
    assert sample[("m1",)].value == 0.5
    ledger.close()


def test_a_month_budget_reads_the_hours_before_the_raw_rows_from_the_rollups(tmp_path, caplog):
    tiers = Tiers(tmp_path, zone=BERLIN, retention={"raw": "7d"})
    days = range(1, 21)
    tiers.add(
        calls=[
            ledger_call(
                us(2026, 11, day, 10, 30, zone=BERLIN),
                model=model,
                cost_usd=0.25 * day,
                tenant_id="t1",
            )
            for day in days
            for model in ("m1", "m2")
        ]
    )
    now = us(2026, 11, 21, 12, 0, 0, zone=BERLIN)
    tiers.roll(now)
    tiers.retention.expire(now)
    month_start = us(2026, 11, 1, zone=BERLIN)
    by_model = ("cost_usd", "sum", month_start, now, {}, ["model"])
    raw = LedgerReader(tiers.db).window(*by_model)
    assert raw[("m1",)].value < 0.25 * sum(days)  # the raw rows left cover the last week only

    rules = RulesFile.model_validate(
        {
            "rules": [
                {
                    "name": "b",
                    "kind": "budget",
                    "period": "month",
                    "group_by": ["model"],
                    "budget": 10,
                },
                {
                    "name": "t",
                    "kind": "budget",
                    "period": "month",
                    "group_by": ["tenant_id"],
                    "budget": 10,
                },
            ]
        }
    ).rules
    cache = AlertCache(tiers.db, tier_dimensions=["model", "provider", "task_type", "status"])
    cache.refresh(now, rules)
    got = cache.window(*by_model)
    assert got[("m1",)].value == pytest.approx(0.25 * sum(days))
    assert got[("m2",)].requests == len(days)
    by_tenant = cache.window("cost_usd", "sum", month_start, now, {}, ["tenant_id"])
    assert by_tenant[("t1",)].value == pytest.approx(2 * raw[("m1",)].value)
    assert "the rollups do not keep tenant_id" in caplog.text
    tiers.close()


def test_the_first_load_is_one_snapshot_while_retention_deletes(tmp_path, monkeypatch):
    """Retention committing on another connection mid-load must not count an hour twice (from
    the raw rows read before, and from the rollups read after)."""
    import sqlite3

    import collector.readers.alerts.cache as alert_cache

    tiers = Tiers(tmp_path, zone=BERLIN, retention={"raw": "7d"})
    now, day = us(2026, 11, 21, 12, 30, zone=BERLIN), 86_400 * SECOND
    tiers.add(calls=[ledger_call(now - 8 * day, cost_usd=1.0)])
    tiers.add(calls=[ledger_call(now - 7 * day - 3600 * SECOND, cost_usd=2.0)])
    tiers.add(calls=[ledger_call(now - 3600 * SECOND, cost_usd=4.0)])
    tiers.roll(now)
    tiers.retention.expire(now - 3600 * SECOND)  # the 2.0 call is rolled, not yet expired
    original = alert_cache.raw_start

    def retention_meanwhile(db):
        tiers.retention.expire(now)
        return original(db)

    monkeypatch.setattr(alert_cache, "raw_start", retention_meanwhile)
    reader = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    rules = RulesFile.model_validate(
        {
            "rules": [
                {
                    "name": "b",
                    "kind": "budget",
                    "period": "month",
                    "budget": 100,
                    "group_by": ["model"],
                }
            ]
        }
    ).rules
    cache = AlertCache(reader, tier_dimensions=["model", "provider", "task_type", "status"])
    cache.refresh(now, rules)
    month = cache.window("cost_usd", "sum", us(2026, 11, 1, zone=BERLIN), now, {}, ["model"])
    assert (month[("m1",)].value, month[("m1",)].requests) == (7.0, 3)
    reader.close()
    tiers.close()


def test_an_error_mid_refresh_reloads_instead_of_counting_twice(tmp_path, monkeypatch):
    from collector.readers.alerts.cache import Series

    ledger = Ledger(tmp_path / "ledger.db")
    row = {"offset_us": -SECOND, "model": "m1", "status": "ok", "latency_ms": 5.0}
    _insert(ledger, T0, [row], [])
    cache = AlertCache(ledger.db)
    cache.refresh(T0, RULES.rules)
    _insert(ledger, T0 + 15 * SECOND, [row], [])
    update, calls = Series.update, []

    def second_fails(self, *args):
        calls.append(self)
        if len(calls) == 2:
            raise ValueError("boom")
        return update(self, *args)

    monkeypatch.setattr(Series, "update", second_fails)
    cache.refresh(T0 + 15 * SECOND, RULES.rules)
    monkeypatch.setattr(Series, "update", update)
    end = T0 + 30 * SECOND
    cache.refresh(end, RULES.rules)
    window = ("requests", "rate_per_s", end - 60 * SECOND, end, {}, [])
    assert cache.window(*window) == LedgerReader(ledger.db).window(*window)
    ledger.close()
