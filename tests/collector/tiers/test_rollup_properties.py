"""Property tests: for random events, every tier agrees with the raw events it came from.

Sums are exact for counts and tokens (float sums to 1e-9: addition order differs). Percentiles:
DDSketch guarantees 1% relative accuracy to the value at the quantile's rank, rank = q*(n-1)
rounded down; the exact percentile interpolates linearly between the values at the ranks
around q*(n-1). So every tier's p50/p90/p95/p99 (1mo included) must lie in
[lower-rank value * 0.99, upper-rank value * 1.01], with 1e-9 of floating-point slack.
"""

import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.tiers.raw_summary import summarize
from collector.tiers.summary import summarize_tier
from tests.collector.rollup_harness import BERLIN, DIMS, Tiers, call, score, us, within_accuracy

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = 3_600_000_000
DAY = 24 * HOUR
START = us(2026, 3, 27, 22)  # 2026-03-28 00:00 in Berlin: DST on the 29th, month end on the 31st
INTS = ("requests", "errors", "input_tokens", "unpriced", "latency_count", "quality_count")
FLOATS = ("cost_usd", "latency_sum", "quality_sum")

offsets = st.builds(
    lambda day, hour, jitter: day * DAY + hour * HOUR + jitter,
    st.sampled_from([0, 1, 2, 3, 4, 33, 34, 35]),
    st.integers(0, 2),
    st.integers(0, HOUR - 1),
)
latencies = st.one_of(st.none(), st.just(0.0), st.floats(0.5, 1e6, allow_nan=False))
calls = st.lists(
    st.builds(
        lambda offset, model, provider, status, latency, tokens, cost, quality: call(
            START + offset,
            model=model,
            provider=provider,
            status=status,
            latency_ms=latency,
            input_tokens=tokens,
            cost_usd=cost,
            price_source=None if cost is None else 0,
            quality_score=quality,
        ),
        offsets,
        st.sampled_from(["m1", "m2"]),
        st.sampled_from(["openai", None]),
        st.sampled_from(["ok", "error"]),
        latencies,
        st.one_of(st.none(), st.integers(0, 10**9)),
        st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
        st.one_of(st.none(), st.floats(0, 1, allow_nan=False)),
    ),
    max_size=50,
)
scores = st.lists(
    st.builds(
        lambda offset, value, model: score(START + offset, value, model=model),
        offsets,
        st.floats(-0.5, 1.5, allow_nan=False),
        st.sampled_from(["m1", None]),
    ),
    max_size=12,
)


def window_id(tier, ts_us):
    """An independent calendar: UTC hours (Berlin is a whole-hour zone), local dates, months."""
    if tier == "1h":
        return ts_us // HOUR
    local = (EPOCH + timedelta(microseconds=ts_us)).astimezone(BERLIN).date()
    return local if tier == "1d" else (local.year, local.month)


def expected_groups(tier, call_rows, score_rows):
    """(window, dims) -> the raw values every check needs."""
    groups = defaultdict(lambda: defaultdict(list))
    for row in call_rows:
        ts, model, provider, _, _, status = row[:6]
        key = (window_id(tier, ts), (model, provider, None, status))
        for name, value in (
            ("requests", 1),
            ("errors", status == "error"),
            ("input_tokens", row[7] or 0),
            ("unpriced", row[14] is None),
            ("cost_usd", row[13] or 0.0),
        ):
            groups[key][name].append(value)
        if row[15] is not None:
            groups[key]["latency"].append(row[15])
        if row[16] is not None:
            groups[key]["quality"].append(row[16])
    for ts, _, value, model, *_ in score_rows:
        if 0 <= value <= 1:
            groups[(window_id(tier, ts), (model, None, None, None))]["quality"].append(value)
    return groups


def check_row(row, raw):
    latency, quality = raw["latency"], raw["quality"]
    assert row["requests"] == len(raw["requests"])
    assert row["errors"] == sum(raw["errors"])
    assert row["input_tokens"] == sum(raw["input_tokens"])
    assert row["unpriced"] == sum(raw["unpriced"])
    assert row["cost_usd"] == pytest.approx(sum(raw["cost_usd"]), rel=1e-9, abs=1e-9)
    assert row["latency_count"] == len(latency)
    assert row["latency_sum"] == pytest.approx(sum(latency), rel=1e-9, abs=1e-9)
    assert row["latency_min"] == (min(latency) if latency else None)
    assert row["latency_max"] == (max(latency) if latency else None)
    assert row["quality_count"] == len(quality)
    assert row["quality_sum"] == pytest.approx(sum(quality), rel=1e-9, abs=1e-9)
    assert row["quality_min"] == (min(quality) if quality else None)
    for q in (50, 90, 95, 99):
        got = row[f"latency_p{q}"]
        if latency:
            assert within_accuracy(got, latency, q), (q, got, sorted(latency))
        else:
            assert got is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls, scores)
def test_every_tier_row_matches_its_raw_events(call_rows, score_rows):
    with tempfile.TemporaryDirectory() as tmp:
        tiers = Tiers(Path(tmp))
        tiers.add(call_rows, score_rows)
        tiers.roll()
        for tier in ("1h", "1d", "1mo"):
            expected = expected_groups(tier, call_rows, score_rows)
            rows = tiers.rows(tier)
            got = {}
            for row in rows:
                dims = orjson.loads(row["group_key"])
                assert list(dims) == DIMS
                got[(window_id(tier, row["window_start_us"]), tuple(dims.values()))] = row
            assert set(got) == set(expected), tier
            for key, row in got.items():
                check_row(row, expected[key])
        tiers.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls, scores)
def test_tier_summaries_equal_the_raw_summary(call_rows, score_rows):
    with tempfile.TemporaryDirectory() as tmp:
        tiers = Tiers(Path(tmp))
        tiers.add(call_rows, score_rows)
        tiers.roll()
        span = (START - 31 * DAY, START + 60 * DAY)
        raw = summarize(tiers.db, *span, ["model"])
        latencies = [r[15] for r in call_rows if r[15] is not None]
        for tier in ("1h", "1d", "1mo"):
            got = summarize_tier(tiers.db, tier, *span, ["model"], DIMS)
            assert [g["model"] for g in got["groups"]] == [g["model"] for g in raw["groups"]]
            for mine, theirs in zip(
                [got["totals"], *got["groups"]], [raw["totals"], *raw["groups"]], strict=True
            ):
                for key in ("requests", "errors", "input_tokens", "unpriced_requests"):
                    assert mine[key] == theirs[key], (tier, key)
                for key in ("cost_usd", "latency_ms_mean", "latency_ms_max", "quality_mean"):
                    if theirs[key] is None:  # nothing priced, timed or scored
                        assert mine[key] is None, (tier, key)
                    else:
                        assert mine[key] == pytest.approx(theirs[key], rel=1e-9, abs=1e-9)
                assert mine["quality_count"] == theirs["quality_count"]
            for q in (50, 90, 95, 99):
                value = got["totals"][f"latency_ms_p{q}"]
                assert within_accuracy(value, latencies, q) if latencies else value is None
        tiers.close()
