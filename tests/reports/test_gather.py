"""A report's numbers equal a plain computation over the same events: Europe/Berlin, the day
the clocks go back (25 hours), half of it rolled into the tiers and half still raw."""

from datetime import date, timedelta

import pytest

from collector.tiers.raw_summary import summarize
from reports import fmt, markdown
from reports.gather import gather
from reports.model import OTHER
from reports.periods import Period
from tests.collector.rollup_harness import within_accuracy
from tests.reports.report_harness import (
    BERLIN,
    expected,
    ledger_with,
    local_us,
    make_events,
    reader_of,
)

DST_DAY = date(2026, 10, 25)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    calls, scores = make_events(local_us(2026, 10, 1), local_us(2026, 10, 26, 6))
    tiers = ledger_with(tmp_path_factory.mktemp("ledger"), calls, scores)
    tiers.roll(local_us(2026, 10, 25, 12))  # 1h up to noon of the DST day, 1d up to the 24th
    yield tiers, calls, scores
    tiers.close()


def test_daily_totals_deltas_and_trailing_average(world):
    tiers, calls, scores = world
    period = Period.containing("daily", DST_DAY, BERLIN)
    assert period.end_us - period.start_us == 25 * 3600 * 10**6
    report = gather(reader_of(tiers), period, top_n=10)
    now = expected(calls, scores, local_us(2026, 10, 25), local_us(2026, 10, 26))
    before = expected(calls, scores, local_us(2026, 10, 24), local_us(2026, 10, 25))
    trail = expected(calls, scores, local_us(2026, 10, 18), local_us(2026, 10, 25))
    for key in ("requests", "input_tokens", "output_tokens", "cache_read_tokens"):
        total = report.total(key)
        assert (total.value, total.previous) == (now[key], before[key])
        assert total.trailing == pytest.approx(trail[key] / 7)
    assert report.trailing_periods == 7
    cost = report.total("cost_usd")
    assert cost.value == pytest.approx(now["cost_usd"])
    assert cost.previous == pytest.approx(before["cost_usd"])
    assert cost.trailing == pytest.approx(trail["cost_usd"] / 7)
    for key in ("error_rate", "latency_ms_mean", "quality_mean"):
        total = report.total(key)
        assert total.value == pytest.approx(now[key])
        assert total.previous == pytest.approx(before[key])
        assert total.trailing == pytest.approx(trail[key])
    for q in (50, 95, 99):
        total = report.total(f"latency_ms_p{q}")
        assert within_accuracy(total.value, now["latencies"], q)
        assert within_accuracy(total.previous, before["latencies"], q)
        assert within_accuracy(total.trailing, trail["latencies"], q)
    assert report.unpriced_requests == now["unpriced_requests"] > 0
    assert list(report.unpriced) == ["m-custom"]
    text = markdown.render(report)
    assert fmt.delta("requests", now["requests"], before["requests"]) in text
    assert fmt.delta("requests", now["requests"], trail["requests"] / 7) in text
    assert f"| Requests | {now['requests']:,} | {before['requests']:,} |" in text


def test_totals_agree_with_the_summary_command(world):
    tiers, _, _ = world
    period = Period.containing("daily", DST_DAY, BERLIN)
    report = gather(reader_of(tiers), period, top_n=10)
    summary = summarize(tiers.db, period.start_us, period.end_us, [])["totals"]
    for key in ("requests", "input_tokens", "output_tokens", "cache_read_tokens"):
        assert report.total(key).value == summary[key]
    assert report.total("cost_usd").value == pytest.approx(summary["cost_usd"])


def test_hourly_series_covers_25_hours_and_sums_to_the_total(world):
    tiers, calls, scores = world
    period = Period.containing("daily", DST_DAY, BERLIN)
    series = gather(reader_of(tiers), period, top_n=10).series
    assert len(series.starts_us) == 25
    assert series.labels[:4] == ["00:00", "01:00", "02:00", "02:00"]  # 02:00 twice: clocks back
    hour = 3600 * 10**6
    for start, cost in zip(series.starts_us, series.cost, strict=True):
        assert cost == pytest.approx(expected(calls, scores, start, start + hour)["cost_usd"])
    day = expected(calls, scores, period.start_us, period.end_us)
    assert sum(sum(counts) for counts in series.requests_by_model.values()) == day["requests"]


def test_model_table_is_top_n_plus_the_rest_summed(world):
    tiers, calls, scores = world
    period = Period.containing("weekly", DST_DAY, BERLIN)
    assert period.label == "2026-W43"
    report = gather(reader_of(tiers), period, top_n=2)
    inside = [c for c in calls if period.start_us <= c["ts_us"] < period.end_us]
    costs = {}
    for c in inside:
        costs[c["model"]] = costs.get(c["model"], 0.0) + (c["cost_usd"] or 0.0)
    ranked = sorted(costs, key=lambda m: -costs[m])
    rows = report.tables["model"]
    assert [r.name for r in rows] == [*ranked[:2], OTHER]
    for row, model in zip(rows[:2], ranked[:2], strict=True):
        assert row.metrics["requests"] == sum(c["model"] == model for c in inside)
        assert row.metrics["cost_usd"] == pytest.approx(costs[model])
    rest = [c for c in inside if c["model"] in ranked[2:]]
    assert rows[-1].metrics["requests"] == len(rest)
    assert within_accuracy(rows[-1].metrics["latency_ms_p95"], [c["latency_ms"] for c in rest], 95)
    trail = expected(calls, scores, local_us(2026, 9, 21), period.start_us)
    # The events start on 1 October: the week of 21 September had none, so the average is over
    # the three weeks that had calls, and the header says so.
    assert report.trailing_periods == 3
    assert report.total("requests").trailing == pytest.approx(trail["requests"] / 3)
    assert "trailing avg (3 of 4 weeks)" in markdown.render(report)


def test_biggest_movers_are_cost_changes_against_the_previous_period(world):
    tiers, calls, _ = world
    period = Period.containing("daily", DST_DAY, BERLIN)
    report = gather(reader_of(tiers), period, top_n=10)

    def cost(start, end, name, value):
        return sum(
            c["cost_usd"] or 0.0 for c in calls if start <= c["ts_us"] < end and c[name] == value
        )

    before = period.previous()
    for mover in report.movers:
        assert mover.current == pytest.approx(
            cost(period.start_us, period.end_us, mover.dimension, mover.name)
        )
        assert mover.previous == pytest.approx(
            cost(before.start_us, before.end_us, mover.dimension, mover.name)
        )
    changes = [abs(m.current - m.previous) for m in report.movers]
    assert changes == sorted(changes, reverse=True) and len(changes) == 5


def test_an_empty_period_says_so(world):
    tiers, _, _ = world
    period = Period.containing("monthly", date(2027, 3, 1) - timedelta(days=1), BERLIN)
    report = gather(reader_of(tiers), period, top_n=10)
    assert not report.has_data
    assert markdown.NO_DATA in markdown.render(report)


def test_a_period_not_over_says_so(world):
    tiers, _, _ = world
    period = Period.containing("daily", DST_DAY, BERLIN)
    noon = local_us(2026, 10, 25, 12)
    report = gather(reader_of(tiers), period, top_n=10, now_us=noon)
    assert report.partial_until_us == noon
    assert "(not over: figures up to 2026-10-25 12:00, against complete periods)" in (
        markdown.render(report)
    )
    assert gather(reader_of(tiers), period, top_n=10).partial_until_us is None
