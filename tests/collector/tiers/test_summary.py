"""`summarize` over a real SQLite ledger against an independent computation; `parse_time`."""

import json
import math
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser
from collector.ingest.pipeline import build_tailer, configured_sources
from collector.ingest.pricing import Pricer
from collector.ingest.tailing import TailEnd
from collector.ledger.connection import Batch, Ledger
from collector.tiers.marks import mark_written
from collector.tiers.raw_summary import METRIC_KEYS, exact_percentiles, summarize
from collector.timespec import parse_time, to_us
from schemas.config import CollectorConfig, ContentConfig

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 11, 20, tzinfo=UTC)
SINCE = to_us(DAY)
UNTIL = to_us(DAY + timedelta(days=1))
SCORE_DIMS = {"model", "task_type", "tenant_id"}


# ----- an independent reference --------------------------------------------------------------


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default), written out plainly."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 90, 3.7),
        ([1, 2, 3, 4], 95, 3.85),
        ([1, 2, 3, 4], 99, 3.97),
        ([10], 99, 10),
        ([1, 2], 50, 1.5),
        ([1, 2], 99, 1.99),
        ([5, 1, 3], 50, 3),
        (list(range(1, 101)), 90, 90.1),
        ([7, 7, 7], 95, 7),
    ],
)
def test_reference_percentile_and_exact_percentiles_on_known_cases(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected, rel=1e-12)
    assert exact_percentiles(sorted(values))[q] == pytest.approx(expected, rel=1e-12)


def test_exact_percentiles_of_nothing():
    assert exact_percentiles([]) == {50: None, 90: None, 95: None, 99: None}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=60))
def test_exact_percentiles_match_the_reference(values):
    got = exact_percentiles(sorted(values))
    for q in (50, 90, 95, 99):
        assert got[q] == pytest.approx(percentile(values, q), rel=1e-9, abs=1e-9)


def expected_summary(calls, scores, since, until, by):
    """What `summarize` must return, from the events as written (not from the ledger)."""

    def inside(event):
        return since <= event["ts_us"] < until

    groups = {}

    def group(key):
        return groups.setdefault(key, {"calls": [], "scores": []})

    for event in filter(inside, calls):
        group(tuple(event.get(d) for d in by))["calls"].append(event)
    for event in filter(inside, scores):
        group(tuple(event.get(d) if d in SCORE_DIMS else None for d in by))["scores"].append(event)
    every = {"calls": [c for c in calls if inside(c)], "scores": [s for s in scores if inside(s)]}
    result = {
        "totals": metrics(every),
        "groups": [
            dict(zip(by, key, strict=True)) | metrics(members)
            for key, members in sorted(
                groups.items(), key=lambda kv: [(v is None, str(v)) for v in kv[0]]
            )
        ]
        if by
        else [],
    }
    return result


def metrics(members):
    calls, scores = members["calls"], members["scores"]
    requests = len(calls)
    errors = sum(c["status"] == "error" for c in calls)
    priced = [c["cost_usd"] for c in calls if c.get("cost_usd") is not None]
    latencies = [c["latency_ms"] for c in calls if c.get("latency_ms") is not None]
    qualities = [c["quality_score"] for c in calls if c.get("quality_score") is not None]
    qualities += [s["value"] for s in scores if 0 <= s["value"] <= 1]
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
        "input_tokens": sum(c.get("input_tokens") or 0 for c in calls),
        "output_tokens": sum(c.get("output_tokens") or 0 for c in calls),
        "total_tokens": sum(
            c.get("total_tokens", (c.get("input_tokens") or 0) + (c.get("output_tokens") or 0))
            for c in calls
        ),
        "cache_read_tokens": sum(c.get("cache_read_tokens") or 0 for c in calls),
        "cost_usd": sum(priced) if priced else None,
        "unpriced_requests": requests - len(priced),
        "latency_ms_mean": sum(latencies) / len(latencies) if latencies else None,
        "latency_ms_p50": percentile(latencies, 50) if latencies else None,
        "latency_ms_p90": percentile(latencies, 90) if latencies else None,
        "latency_ms_p95": percentile(latencies, 95) if latencies else None,
        "latency_ms_p99": percentile(latencies, 99) if latencies else None,
        "latency_ms_max": max(latencies) if latencies else None,
        "quality_mean": sum(qualities) / len(qualities) if qualities else None,
        "quality_count": len(qualities),
    }


def assert_same(actual, expected, where=""):
    """Equal, with floats compared to a relative 1e-9."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert set(actual) == set(expected), (where, set(actual) ^ set(expected))
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), (where, actual, expected)
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert actual is not None, where
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), (
            where,
            actual,
            expected,
        )
    else:
        assert actual == expected, (where, actual, expected)


# ----- a ledger with known events --------------------------------------------------------------


def make_events(seed=20261120, count=240):
    rng = random.Random(seed)
    models = [
        ("gpt-4o-mini", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("in-house-7b", None),  # unknown to genai-prices: unpriced
    ]
    calls = []
    for index in range(count):
        model, provider = rng.choice(models)
        # around the window: a few before `since`, a few at or after `until`
        ts_us = SINCE + rng.randint(-3 * 3_600_000_000, 26 * 3_600_000_000)
        input_tokens = rng.randint(0, 5000)
        event = {
            "ts_us": ts_us,
            "model": model,
            "provider": provider,
            "task_type": rng.choice(["qa", "summarize", None]),
            "tenant_id": rng.choice(["acme", "globex"]),
            "status": "error" if rng.random() < 0.15 else "ok",
            "input_tokens": input_tokens,
            "output_tokens": rng.randint(0, 800),
            "cache_read_tokens": rng.randint(0, input_tokens),
            "call_id": f"c{index}",
        }
        if rng.random() < 0.8:
            event["latency_ms"] = round(rng.uniform(50, 5000), 3)
        if model != "in-house-7b":
            event["cost_usd"] = round(rng.uniform(0, 0.05), 6)
        if rng.random() < 0.3:
            event["quality_score"] = round(rng.random(), 3)
        if rng.random() < 0.1:
            event["total_tokens"] = event["input_tokens"] + event["output_tokens"] + 7
        calls.append(event)
    # the exact edges of the window
    for ts_us, call_id in ((SINCE - 1, "before"), (SINCE, "first"), (UNTIL - 1, "last")):
        calls.append(
            {
                "ts_us": ts_us,
                "model": "gpt-4o-mini",
                "provider": "openai",
                "task_type": "qa",
                "tenant_id": "acme",
                "status": "ok",
                "input_tokens": 1000,
                "output_tokens": 10,
                "latency_ms": 99999.0,
                "cost_usd": 1.0,
                "call_id": call_id,
            }
        )
    calls.append(dict(calls[-1], ts_us=UNTIL, call_id="at-until"))
    scores = []
    for index in range(40):
        scores.append(
            {
                "ts_us": SINCE + rng.randint(-3_600_000_000, 25 * 3_600_000_000),
                "name": "helpfulness",
                "value": round(rng.random(), 3),
                "model": rng.choice(["gpt-4o-mini", "claude-sonnet-4-5", None]),
                "task_type": rng.choice(["qa", "summarize", None]),
                "tenant_id": rng.choice(["acme", None]),
                "trace_id": f"t{index}",
            }
        )
    scores.append(
        {"ts_us": SINCE + 5, "name": "stars", "value": 4.0, "model": "gpt-4o-mini", "trace_id": "s"}
    )  # not a 0..1 quality value: left out of quality_mean
    scores.append({"ts_us": UNTIL, "name": "helpfulness", "value": 0.0, "model": "gpt-4o-mini"})
    return calls, scores


def to_line(event, kind="llm_call"):
    data = {k: v for k, v in event.items() if v is not None and k != "ts_us"}
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=event["ts_us"])
    data["timestamp"] = when.isoformat()
    if kind == "score":
        data["type"] = "score"
    return orjson.dumps(data)


@pytest.fixture(scope="module")
def events():
    return make_events()


@pytest.fixture
def ledger(tmp_path, events):
    """A ledger holding `events`, inserted the way ingestion does it: parse, then commit."""
    calls, scores = events
    parser = LineParser(Pricer({}), ContentPolicy(ContentConfig()))
    ledger = Ledger(tmp_path / "ledger.db")
    stream = ledger.add_stream("test", str(tmp_path / "trace.jsonl"), 1, 1, 0, b"")
    batch = Batch(lines=len(calls) + len(scores))
    for event in calls:
        parsed = parser.parse(to_line(event), UTC_ZONE, stream.id)
        assert parsed.kind == "call"
        assert parsed.row[0] == event["ts_us"]
        batch.calls.append(parsed.row)
    for event in scores:
        parsed = parser.parse(to_line(event, "score"), UTC_ZONE, stream.id)
        assert parsed.kind == "score"
        batch.scores.append(parsed.row)
    ledger.commit(stream, batch, 1, mark_written)
    yield ledger
    ledger.close()


@pytest.mark.parametrize(
    "by",
    [
        [],
        ["model"],
        ["model", "status"],
        ["task_type", "tenant_id"],
        ["provider", "task_type", "status"],
        ["tenant_id", "model", "task_type"],
        ["error_type"],
    ],
)
def test_summary_matches_an_independent_computation(ledger, events, by):
    got = summarize(ledger.db, SINCE, UNTIL, by)
    expected = expected_summary(*events, SINCE, UNTIL, by)
    assert_same(got, expected)
    assert list(got["totals"]) == list(METRIC_KEYS)


def test_totals_known_values(ledger, events):
    totals = summarize(ledger.db, SINCE, UNTIL, [])["totals"]
    calls = [c for c in events[0] if SINCE <= c["ts_us"] < UNTIL]
    assert totals["requests"] == len(calls)
    assert totals["unpriced_requests"] == sum(c["model"] == "in-house-7b" for c in calls) > 0
    assert 0 < totals["error_rate"] < 0.5
    # the edge events: `first` and `last` are in, `before` and `at-until` are out
    ids = {c["call_id"] for c in calls}
    assert {"first", "last"} <= ids
    assert not {"before", "at-until"} & ids
    assert totals["latency_ms_max"] == 99999.0


def test_window_is_half_open(ledger):
    edge = summarize(ledger.db, UNTIL - 1, UNTIL, [])["totals"]
    assert edge["requests"] == 1  # `last`; `at-until` belongs to the next window
    assert edge["cost_usd"] == 1.0
    start = summarize(ledger.db, SINCE, SINCE + 1, [])["totals"]
    assert start["requests"] == 1  # `first`; `before` is at SINCE - 1
    nothing = summarize(ledger.db, SINCE, SINCE, [])["totals"]
    assert nothing["requests"] == 0
    # adjacent windows add up to the whole
    middle = SINCE + 7 * 3_600_000_000 + 12345
    whole = summarize(ledger.db, SINCE, UNTIL, [])["totals"]
    left = summarize(ledger.db, SINCE, middle, [])["totals"]
    right = summarize(ledger.db, middle, UNTIL, [])["totals"]
    for key in ("requests", "errors", "input_tokens", "total_tokens", "unpriced_requests"):
        assert left[key] + right[key] == whole[key], key
    assert left["cost_usd"] + right["cost_usd"] == pytest.approx(whole["cost_usd"], rel=1e-12)
    assert left["quality_count"] + right["quality_count"] == whole["quality_count"]


def test_unpriced_group_has_no_cost_rather_than_zero(ledger):
    groups = summarize(ledger.db, SINCE, UNTIL, ["model"])["groups"]
    by_model = {g["model"]: g for g in groups}
    house = by_model["in-house-7b"]
    assert house["requests"] > 0
    assert house["unpriced_requests"] == house["requests"]
    assert house["cost_usd"] is None
    assert by_model["gpt-4o-mini"]["cost_usd"] > 0
    assert by_model["gpt-4o-mini"]["unpriced_requests"] == 0


def test_quality_mean_includes_score_events(ledger, events):
    calls, scores = events
    inside = [s for s in scores if SINCE <= s["ts_us"] < UNTIL]
    totals = summarize(ledger.db, SINCE, UNTIL, [])["totals"]
    inline = [
        c["quality_score"]
        for c in calls
        if SINCE <= c["ts_us"] < UNTIL and c.get("quality_score") is not None
    ]
    in_range = [s["value"] for s in inside if 0 <= s["value"] <= 1]
    assert len(in_range) == len(inside) - 1  # the 4-star score is not a quality
    assert totals["quality_count"] == len(inline) + len(in_range)
    assert totals["quality_mean"] == pytest.approx(
        (sum(inline) + sum(in_range)) / (len(inline) + len(in_range)), rel=1e-12
    )


def test_scores_alone_make_a_group_without_requests(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    stream = ledger.add_stream("test", "x", 1, 1, 0, b"")
    parser = LineParser(Pricer({}), ContentPolicy(ContentConfig()))
    rows = [
        parser.parse(to_line(s, "score"), UTC_ZONE, stream.id).row
        for s in (
            {"ts_us": SINCE, "name": "q", "value": 0.5, "model": "m", "task_type": "qa"},
            {"ts_us": SINCE + 1, "name": "q", "value": 1.0, "model": "m", "task_type": "qa"},
        )
    ]
    ledger.commit(stream, Batch(scores=rows), 1, mark_written)
    result = summarize(ledger.db, SINCE, UNTIL, ["model", "status"])
    (group,) = result["groups"]
    assert (group["model"], group["status"]) == ("m", None)
    assert group["requests"] == 0
    assert group["error_rate"] is None
    assert group["cost_usd"] is None
    assert group["latency_ms_p50"] is None
    assert group["quality_mean"] == 0.75
    assert group["quality_count"] == 2
    assert result["totals"]["quality_mean"] == 0.75
    ledger.close()


def test_empty_window(ledger):
    result = summarize(ledger.db, 0, 1, ["model"])
    assert result["groups"] == []
    totals = result["totals"]
    assert totals["requests"] == 0
    assert totals["error_rate"] is None
    assert totals["cost_usd"] is None
    assert totals["latency_ms_p99"] is None
    assert totals["quality_mean"] is None
    assert totals["input_tokens"] == 0


def test_known_small_latency_case(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    stream = ledger.add_stream("test", "x", 1, 1, 0, b"")
    parser = LineParser(Pricer({}), ContentPolicy(ContentConfig()))
    rows = []
    for index, latency in enumerate([4.0, 1.0, 3.0, 2.0]):
        event = {"ts_us": SINCE + index, "model": "m", "latency_ms": latency, "cost_usd": 0.25}
        rows.append(parser.parse(to_line(event), UTC_ZONE, stream.id).row)
    rows.append(parser.parse(to_line({"ts_us": SINCE, "model": "m"}), UTC_ZONE, stream.id).row)
    ledger.commit(stream, Batch(calls=rows), 1, mark_written)
    totals = summarize(ledger.db, SINCE, UNTIL, [])["totals"]
    assert totals["requests"] == 5
    assert totals["latency_ms_p50"] == 2.5
    assert totals["latency_ms_p90"] == pytest.approx(3.7)
    assert totals["latency_ms_mean"] == 2.5
    assert totals["latency_ms_max"] == 4.0
    assert totals["cost_usd"] == pytest.approx(1.0)
    # the fifth call has no cost and model "m" is unknown: unpriced, not $0
    assert totals["unpriced_requests"] == 1
    ledger.close()


@pytest.mark.parametrize("bad", [["user_id"], ["model", "session_id"], ["nope"]])
def test_grouping_by_an_id_is_refused(ledger, bad):
    with pytest.raises(ValueError, match="cannot group by") as info:
        summarize(ledger.db, SINCE, UNTIL, bad)
    assert bad[-1] in str(info.value)


def test_summary_of_a_real_file_through_the_tailer(tmp_path):
    calls, scores = make_events(seed=7, count=60)
    trace = tmp_path / "logs" / "trace.jsonl"
    trace.parent.mkdir()
    lines = [to_line(c) for c in calls] + [to_line(s, "score") for s in scores]
    bad = [b'{"model": "gpt-4o", "timestamp": "2026-11-20T10:00:00Z", "input_tokens": -1}', b"{"]
    trace.write_bytes(b"\n".join(lines[:30] + bad + lines[30:]) + b"\n")
    config = CollectorConfig(
        sources=[{"path": str(tmp_path / "logs" / "*.jsonl")}],
        ledger={"path": str(tmp_path / "state" / "ledger.db")},
        quarantine={"path": str(tmp_path / "state" / "quarantine.jsonl")},
    )
    ledger = Ledger(config.ledger.path)
    tailer = build_tailer(config, ledger, configured_sources(config))
    try:
        tailer.scan()
        tailer.poll(TailEnd.TAKE)
    finally:
        tailer.close()
    assert ledger.totals()["quarantined"] == 2
    assert ledger.totals()["events"] == len(calls) + len(scores)
    quarantined = [
        json.loads(x) for x in (tmp_path / "state" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert "input_tokens" in quarantined[0]["reason"]
    for by in ([], ["model", "task_type"]):
        assert_same(
            summarize(ledger.db, SINCE, UNTIL, by),
            expected_summary(calls, scores, SINCE, UNTIL, by),
        )
    ledger.close()


# ----- parse_time ----------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # already the 21st in Berlin


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("now", BERLIN, NOW),
        ("today", UTC_ZONE, datetime(2026, 11, 20, tzinfo=UTC)),
        ("yesterday", UTC_ZONE, datetime(2026, 11, 19, tzinfo=UTC)),
        ("today", BERLIN, datetime(2026, 11, 20, 23, tzinfo=UTC)),
        ("yesterday", BERLIN, datetime(2026, 11, 19, 23, tzinfo=UTC)),
        ("today", ZoneInfo("America/Los_Angeles"), datetime(2026, 11, 20, 8, tzinfo=UTC)),
        ("-1h", BERLIN, datetime(2026, 11, 20, 22, 30, tzinfo=UTC)),
        ("-30m", UTC_ZONE, datetime(2026, 11, 20, 23, tzinfo=UTC)),
        ("-90s", UTC_ZONE, datetime(2026, 11, 20, 23, 28, 30, tzinfo=UTC)),
        ("-7d", UTC_ZONE, datetime(2026, 11, 13, 23, 30, tzinfo=UTC)),
        ("-2w", UTC_ZONE, datetime(2026, 11, 6, 23, 30, tzinfo=UTC)),
        (" -1h ", UTC_ZONE, datetime(2026, 11, 20, 22, 30, tzinfo=UTC)),
        ("2026-11-20", UTC_ZONE, datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20", BERLIN, datetime(2026, 11, 19, 23, tzinfo=UTC)),
        ("2026-07-01", BERLIN, datetime(2026, 6, 30, 22, tzinfo=UTC)),  # summer time
        ("2026-11-20T10:00:00", BERLIN, datetime(2026, 11, 20, 9, tzinfo=UTC)),
        ("2026-11-20T10:00:00+01:00", UTC_ZONE, datetime(2026, 11, 20, 9, tzinfo=UTC)),
        ("2026-11-20T10:00:00-05:00", BERLIN, datetime(2026, 11, 20, 15, tzinfo=UTC)),
        ("2026-11-20T10:00:00Z", BERLIN, datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20 10:00", UTC_ZONE, datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ],
)
def test_parse_time(text, zone, expected):
    value = parse_time(text, zone, now=NOW)
    assert value.tzinfo is not None
    assert value == expected
    assert to_us(value) == to_us(expected)


def test_today_across_the_spring_change_of_clocks():
    now = datetime(2026, 3, 29, 12, tzinfo=UTC)  # the day Berlin moves to summer time
    today = parse_time("today", BERLIN, now=now)
    yesterday = parse_time("yesterday", BERLIN, now=now)
    assert today == datetime(2026, 3, 28, 23, tzinfo=UTC)  # midnight was still CET
    assert yesterday == datetime(2026, 3, 27, 23, tzinfo=UTC)
    # the next day starts 23 hours after this one
    next_day = parse_time("today", BERLIN, now=datetime(2026, 3, 30, 12, tzinfo=UTC))
    assert to_us(next_day) - to_us(today) == 23 * 3_600_000_000


def test_parse_time_default_now_is_aware_and_current():
    before = datetime.now(UTC)
    value = parse_time("now", BERLIN)
    assert before <= value <= datetime.now(UTC)


@pytest.mark.parametrize(
    "text", ["tomorrow", "1h", "-1y", "-h", "2026-13-01", "20/11/2026", "", "last week"]
)
def test_parse_time_bad_input_says_what_is_accepted(text):
    with pytest.raises(ValueError) as info:
        parse_time(text, UTC_ZONE, now=NOW)
    message = str(info.value)
    assert repr(text.strip()) in message
    assert "ISO 8601" in message
    assert "-1h" in message
    assert "today" in message


def test_to_us_is_exact():
    assert to_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_us(datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)) == 1_795_168_800_123_456
    assert to_us(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1
