"""`Pricer.cost` agrees with `genai_prices.calc_price`; overrides win; unknown is unpriced."""

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from genai_prices import Usage, calc_price
from hypothesis import example, given, settings
from hypothesis import strategies as st

from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser
from collector.ingest.pricing import SOURCE_GENAI_PRICES, SOURCE_OVERRIDE, SOURCE_TRACE, Pricer
from collector.ledger.connection import Batch, Ledger
from collector.ledger.events import CALL_COLUMNS
from collector.sinks.influx.lineprotocol import LineEncoder
from collector.tiers.marks import mark_written
from collector.tiers.raw_summary import summarize
from schemas.config import ContentConfig, PriceOverride


def us(when):
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def library(model, provider, when, i, o, cr=0, cw=0):
    usage = Usage(input_tokens=i, output_tokens=o, cache_read_tokens=cr, cache_write_tokens=cw)
    return float(
        calc_price(usage, model, provider_id=provider, genai_request_timestamp=when).total_price
    )


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


NOV = datetime(2026, 11, 20, 10, tzinfo=UTC)
O3_BEFORE = datetime(2025, 6, 9, 23, 59, 59, 999999, tzinfo=UTC)
O3_AFTER = datetime(2025, 6, 10, tzinfo=UTC)
DEEPSEEK_PEAK = datetime(2026, 11, 20, 3, tzinfo=UTC)  # 00:30-16:30 UTC: standard price
DEEPSEEK_OFF_PEAK = datetime(2026, 11, 20, 20, tzinfo=UTC)  # discounted

CASES = [
    # (model, provider, when, input, output, cache_read, cache_write)
    ("gpt-4o-mini", "openai", NOV, 12_000, 800, 0, 0),
    ("gpt-4o-mini", "openai", NOV, 12_000, 800, 10_000, 0),
    ("gpt-4o-mini", "openai", NOV, 12_000, 800, 2_000, 3_000),  # no cache-write price
    ("gpt-4o-mini", "openai", NOV, 0, 0, 0, 0),
    ("gpt-4o-mini", None, NOV, 1, 1, 0, 0),  # provider found from the model name
    ("claude-sonnet-4-5", "anthropic", NOV, 50_000, 2_000, 20_000, 10_000),
    ("claude-sonnet-4-5", "anthropic", NOV, 250_000, 2_000, 100_000, 50_000),  # > 200k tier
    ("claude-sonnet-4-5", "anthropic", NOV, 200_000, 10, 0, 200_000),
    ("gemini-2.5-pro", "google", NOV, 150_000, 4_000, 50_000, 0),
    ("gemini-2.5-pro", "google", NOV, 200_000, 4_000, 0, 0),  # last token of the base tier
    ("gemini-2.5-pro", "google", NOV, 200_001, 4_000, 0, 0),  # first of the upper tier
    ("gemini-2.5-pro", "google", NOV, 1_000_000, 65_000, 900_000, 0),
    ("o3", "openai", O3_BEFORE, 10_000, 5_000, 4_000, 0),  # dated price change ...
    ("o3", "openai", O3_AFTER, 10_000, 5_000, 4_000, 0),  # ... at UTC midnight
    ("deepseek-chat", "deepseek", DEEPSEEK_PEAK, 10_000, 2_000, 6_000, 0),
    ("deepseek-chat", "deepseek", DEEPSEEK_OFF_PEAK, 10_000, 2_000, 6_000, 0),
    ("deepseek-chat", "deepseek", datetime(2026, 11, 20, 0, 29, 59, tzinfo=UTC), 1000, 10, 0, 0),
    ("deepseek-chat", "deepseek", datetime(2026, 11, 20, 0, 30, tzinfo=UTC), 1000, 10, 0, 0),
    ("deepseek-chat", "deepseek", datetime(2026, 11, 20, 16, 29, 59, tzinfo=UTC), 1000, 10, 0, 0),
    ("deepseek-chat", "deepseek", datetime(2026, 11, 20, 16, 30, tzinfo=UTC), 1000, 10, 0, 0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2]:%Y%m%dT%H%M%S}-{c[3]}")
def test_cost_matches_calc_price(case):
    model, provider, when, i, o, cr, cw = case
    cost, source = Pricer({}).cost(model, provider, us(when), i, o, cr, cw)
    assert source == SOURCE_GENAI_PRICES
    assert isinstance(cost, float)
    assert close(cost, library(model, provider, when, i, o, cr, cw)), (cost, case)


@pytest.mark.parametrize("order", [1, -1])
def test_one_pricer_reused_across_periods_and_tiers_stays_exact(order):
    """The per-(model, period, tier) cache must never hand one case another's rates."""
    pricer = Pricer({})
    for model, provider, when, i, o, cr, cw in (CASES + CASES[::-1])[::order]:
        cost, _ = pricer.cost(model, provider, us(when), i, o, cr, cw)
        assert close(cost, library(model, provider, when, i, o, cr, cw)), (model, when, i)


def test_the_dated_and_time_of_day_cases_really_differ():
    """Guards the cases above: the library data does change price at those instants."""
    pricer = Pricer({})

    def cost(model, provider, when):
        return pricer.cost(model, provider, us(when), 10_000, 5_000, 4_000, 0)[0]

    assert cost("o3", "openai", O3_BEFORE) > 2 * cost("o3", "openai", O3_AFTER)
    peak = cost("deepseek-chat", "deepseek", DEEPSEEK_PEAK)
    assert peak > cost("deepseek-chat", "deepseek", DEEPSEEK_OFF_PEAK)
    # the minute the peak starts, the next day's off-peak again
    assert cost("deepseek-chat", "deepseek", datetime(2026, 11, 21, 0, 30, tzinfo=UTC)) == peak
    assert cost("deepseek-chat", "deepseek", datetime(2026, 11, 21, 0, 29, tzinfo=UTC)) < peak
    # the upper gemini tier prices every token higher, not only those past 200k
    below = pricer.cost("gemini-2.5-pro", "google", us(NOV), 200_000, 0, 0, 0)[0]
    above = pricer.cost("gemini-2.5-pro", "google", us(NOV), 200_001, 0, 0, 0)[0]
    assert above > below * 1.5


def test_cached_input_is_cheaper_and_cache_writes_dearer_for_anthropic():
    pricer = Pricer({})
    ts = us(NOV)
    plain = pricer.cost("claude-sonnet-4-5", "anthropic", ts, 10_000, 0, 0, 0)[0]
    cached = pricer.cost("claude-sonnet-4-5", "anthropic", ts, 10_000, 0, 10_000, 0)[0]
    written = pricer.cost("claude-sonnet-4-5", "anthropic", ts, 10_000, 0, 0, 10_000)[0]
    assert close(cached, plain / 10)
    assert close(written, plain * 1.25)


# ----- overrides -----------------------------------------------------------------------------


def test_override_wins_over_the_library():
    pricer = Pricer({"gpt-4o-mini": PriceOverride(input=1.0, output=2.0)})
    cost, source = pricer.cost("gpt-4o-mini", "openai", us(NOV), 1_000_000, 500_000, 0, 0)
    assert source == SOURCE_OVERRIDE
    assert close(cost, 1.0 + 1.0)


def test_override_cache_prices_default_to_the_input_price():
    pricer = Pricer({"my-model": PriceOverride(input=4.0, output=8.0)})
    with_cache, _ = pricer.cost("my-model", None, 0, 1000, 100, 600, 300)
    without, _ = pricer.cost("my-model", None, 0, 1000, 100, 0, 0)
    assert close(with_cache, without)
    assert close(without, (1000 * 4.0 + 100 * 8.0) / 1e6)


def test_override_explicit_cache_prices():
    override = PriceOverride(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
    pricer = Pricer({"my-model": override})
    cost, source = pricer.cost("my-model", "whatever", 0, 10_000, 1_000, 4_000, 2_000)
    expected = (4_000 * 3.0 + 1_000 * 15.0 + 4_000 * 0.3 + 2_000 * 3.75) / 1e6
    assert (source, close(cost, expected)) == (SOURCE_OVERRIDE, True)


def test_override_names_are_case_insensitive_and_only_cover_their_model():
    pricer = Pricer({"My-Model": PriceOverride(input=1.0, output=1.0)})
    assert pricer.cost("my-model", None, 0, 10**6, 0, 0, 0) == (1.0, SOURCE_OVERRIDE)
    assert pricer.cost("MY-MODEL", None, 0, 10**6, 0, 0, 0) == (1.0, SOURCE_OVERRIDE)
    assert pricer.cost("my-model-2", None, 0, 10**6, 0, 0, 0) == (None, None)


def test_free_override_is_a_real_zero_price():
    pricer = Pricer({"local-llama": PriceOverride(input=0, output=0)})
    assert pricer.cost("local-llama", None, 0, 5000, 500, 0, 0) == (0.0, SOURCE_OVERRIDE)


# ----- unknown models --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("no-such-model-xyz", None),
        ("no-such-model-xyz", "openai"),
        ("no-such-model-xyz", "not-a-provider"),
        ("", None),
    ],
)
def test_unknown_model_is_unpriced(model, provider):
    assert Pricer({}).cost(model, provider, us(NOV), 1000, 1000, 0, 0) == (None, None)


def test_unknown_provider_still_finds_a_known_model():
    cost, source = Pricer({}).cost("gpt-4o-mini", "my-proxy", us(NOV), 1000, 100, 0, 0)
    assert source == SOURCE_GENAI_PRICES
    assert close(cost, library("gpt-4o-mini", "openai", NOV, 1000, 100))


def _row(raw, overrides=None):
    parser = LineParser(Pricer(overrides or {}), ContentPolicy(ContentConfig()))
    parsed = parser.parse(orjson.dumps(raw), ZoneInfo("UTC"), 1)
    return dict(zip(CALL_COLUMNS, parsed.row, strict=True))


def test_unknown_model_row_is_unpriced_never_zero():
    row = _row({"timestamp": "2026-11-20T10:00:00Z", "model": "in-house-7b", "input_tokens": 900})
    assert row["cost_usd"] is None
    assert row["price_source"] is None
    assert row["input_tokens"] == 900


NO_TOKENS = [
    pytest.param({}, None, id="no-usage-at-all"),
    pytest.param({"total_tokens": 1500}, 1500, id="total-only"),
    pytest.param({"llm.usage.total_tokens": 1500}, 1500, id="openllmetry-total-only"),
    pytest.param({"usage": {"total_tokens": 1500}}, 1500, id="usage-total-only"),
    pytest.param({"reasoning_tokens": 40}, None, id="reasoning-only"),
]


@pytest.mark.parametrize(("tokens", "total"), NO_TOKENS)
@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "my-finetune"])
def test_a_call_without_token_counts_is_unpriced_never_zero(model, tokens, total):
    overrides = {"my-finetune": PriceOverride(input=1.0, output=2.0)}
    row = _row({"timestamp": "2026-11-20T10:00:00Z", "model": model, **tokens}, overrides)
    assert (row["cost_usd"], row["price_source"]) == (None, None)
    assert row["total_tokens"] == total


@pytest.mark.parametrize(
    "tokens",
    [
        {"input_tokens": 1000},
        {"output_tokens": 1000},
        {"gen_ai.usage.prompt_tokens": 1000},
        {"gen_ai.usage.completion_tokens": 1000},
    ],
    ids=lambda t: next(iter(t)),
)
def test_one_known_token_count_is_priced(tokens):
    row = _row({"timestamp": "2026-11-20T10:00:00Z", "model": "gpt-4o-mini", **tokens})
    i = tokens.get("input_tokens", tokens.get("gen_ai.usage.prompt_tokens", 0))
    o = tokens.get("output_tokens", tokens.get("gen_ai.usage.completion_tokens", 0))
    assert row["price_source"] == SOURCE_GENAI_PRICES
    assert row["cost_usd"] > 0
    assert close(row["cost_usd"], library("gpt-4o-mini", "openai", NOV, i, o))


def test_reported_zero_tokens_are_a_real_zero_cost():
    row = _row({"timestamp": "2026-11-20T10:00:00Z", "model": "gpt-4o-mini", "input_tokens": 0})
    assert (row["cost_usd"], row["price_source"]) == (0.0, SOURCE_GENAI_PRICES)


def test_openllmetry_names_are_priced_like_the_canonical_ones():
    when = "2026-11-20T10:00:00Z"
    canonical = _row(
        {
            "timestamp": when,
            "model": "claude-sonnet-4-5",
            "input_tokens": 9000,
            "output_tokens": 700,
        }
    )
    openllmetry = _row(
        {
            "timestamp": when,
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.system": "anthropic",
            "gen_ai.usage.prompt_tokens": 9000,
            "gen_ai.usage.completion_tokens": 700,
            "llm.usage.total_tokens": 9700,
        }
    )
    expected = library("claude-sonnet-4-5", "anthropic", NOV, 9000, 700)
    assert close(openllmetry["cost_usd"], expected) and close(canonical["cost_usd"], expected)
    assert openllmetry["total_tokens"] == 9700


def test_calls_without_tokens_are_counted_unpriced_in_the_ledger_and_in_influxdb(tmp_path):
    lines = [
        {"timestamp": "2026-11-20T10:00:00Z", "model": "gpt-4o-mini", "input_tokens": 10**6},
        {"timestamp": "2026-11-20T10:00:01Z", "model": "gpt-4o-mini"},
        {"timestamp": "2026-11-20T10:00:02Z", "model": "gpt-4o-mini", "llm.usage.total_tokens": 9},
    ]
    parser = LineParser(Pricer({}), ContentPolicy(ContentConfig()))
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        stream = ledger.add_stream("test", str(tmp_path / "trace.jsonl"), 1, 1, 0, b"")
        batch = Batch(lines=len(lines))
        batch.calls += [
            parser.parse(orjson.dumps(e), ZoneInfo("UTC"), stream.id).row for e in lines
        ]
        ledger.commit(stream, batch, 1, mark_written)
        totals = summarize(ledger.db, 0, us(NOV) + 10**9, [])["totals"]
    finally:
        ledger.close()
    assert (totals["requests"], totals["unpriced_requests"]) == (3, 2)
    assert close(totals["cost_usd"], library("gpt-4o-mini", "openai", NOV, 10**6, 0))
    points = [LineEncoder(["model"], "host-a").call(n, row) for n, row in enumerate(batch.calls, 1)]
    assert ["unpriced=1i" in point for point in points] == [False, True, True]


def test_trace_cost_is_trusted_even_for_unknown_and_known_models():
    for model in ("in-house-7b", "gpt-4o-mini"):
        row = _row({"timestamp": "2026-11-20T10:00:00Z", "model": model, "cost_usd": 0.5})
        assert (row["cost_usd"], row["price_source"]) == (0.5, SOURCE_TRACE)


def test_row_priced_at_its_own_timestamp_and_by_override():
    before = _row({"timestamp": "2025-06-09T23:00:00Z", "model": "o3", "input_tokens": 10**6})
    after = _row({"timestamp": "2025-06-10T01:00:00Z", "model": "o3", "input_tokens": 10**6})
    assert close(before["cost_usd"], library("o3", None, O3_BEFORE, 10**6, 0))
    assert close(after["cost_usd"], library("o3", None, O3_AFTER, 10**6, 0))
    assert before["cost_usd"] != after["cost_usd"]
    overridden = _row(
        {"timestamp": "2025-06-10T01:00:00Z", "model": "o3", "input_tokens": 10**6},
        {"o3": PriceOverride(input=7.0, output=0.0)},
    )
    assert (overridden["cost_usd"], overridden["price_source"]) == (7.0, SOURCE_OVERRIDE)


# ----- property: one tiered model against the library ---------------------------------------


@st.composite
def anthropic_usage(draw):
    i = draw(st.integers(0, 1_000_000))
    cr = draw(st.integers(0, i))
    cw = draw(st.integers(0, i - cr))
    o = draw(st.integers(0, 200_000))
    day = draw(st.integers(0, 800))
    second = draw(st.integers(0, 86_399))
    when = datetime(2025, 10, 1, tzinfo=UTC) + timedelta(days=day, seconds=second)
    return when, i, o, cr, cw


TIER_PRICER = Pricer({})


@settings(max_examples=150, deadline=None)
@given(anthropic_usage())
@example((NOV, 200_000, 1, 0, 0))
@example((NOV, 200_001, 1, 0, 0))
@example((NOV, 200_001, 1, 100_000, 100_001))
@example((NOV, 0, 0, 0, 0))
def test_tiered_model_matches_calc_price_for_any_tokens(case):
    when, i, o, cr, cw = case
    cost, source = TIER_PRICER.cost("claude-sonnet-4-5", "anthropic", us(when), i, o, cr, cw)
    assert source == SOURCE_GENAI_PRICES
    expected = library("claude-sonnet-4-5", "anthropic", when, i, o, cr, cw)
    assert close(cost, expected), (cost, expected)


CLOCK_PRICER = Pricer({})


@settings(max_examples=150, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2026, 8, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    st.integers(0, 100_000),
    st.integers(0, 10_000),
)
def test_dated_and_time_of_day_prices_match_calc_price_at_any_instant(when, i, o):
    """deepseek-v4-flash has both dated price changes and off-peak hours."""
    cost, _ = CLOCK_PRICER.cost("deepseek-v4-flash", "deepseek", us(when), i, o, i // 2, 0)
    assert close(cost, library("deepseek-v4-flash", "deepseek", when, i, o, i // 2)), when
