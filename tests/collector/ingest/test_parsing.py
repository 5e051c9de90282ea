"""One trace line -> a ledger row, a skip or a rejection whose reason names the field."""

import calendar
import hashlib
import json
import math
import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.clock import TimeRange
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import SKIPPED, LineParser, Rejected
from collector.ingest.pricing import SOURCE_GENAI_PRICES, SOURCE_TRACE, Pricer
from collector.ledger.connection import MIGRATIONS
from collector.ledger.events import CALL_COLUMNS, SCORE_COLUMNS
from schemas.config import ContentConfig, TimestampsConfig
from schemas.events import MAX_TOKENS

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TS = "2026-11-20T10:00:00Z"
STREAM = 7


def epoch_us(year, month, day, hour=0, minute=0, second=0, micro=0):
    """Microseconds since the epoch of a UTC wall-clock time, without datetime arithmetic."""
    return calendar.timegm((year, month, day, hour, minute, second)) * 10**6 + micro


TS_US = epoch_us(2026, 11, 20, 10)
HOUR = 3600 * 10**6
DAY = 24 * HOUR
CLOCK_US = epoch_us(2030, 6, 1)
"""The parsers' clock, so that the accepted times never depend on today's date."""


def make_parser(times=None, **content):
    times = times or TimeRange.from_config(TimestampsConfig(), lambda: CLOCK_US)
    return LineParser(Pricer({}), ContentPolicy(ContentConfig(**content)), times)


PARSER = make_parser()


def line(**fields):
    event = {"timestamp": TS, "model": "gpt-4o-mini"}
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


def call(raw, zone=UTC_ZONE, parser=PARSER):
    parsed = parser.parse(raw, zone, STREAM)
    assert parsed.kind == "call", parsed
    assert len(parsed.row) == len(CALL_COLUMNS)
    return dict(zip(CALL_COLUMNS, parsed.row, strict=True))


def score(raw, zone=UTC_ZONE):
    parsed = PARSER.parse(raw, zone, STREAM)
    assert parsed.kind == "score", parsed
    return dict(zip(SCORE_COLUMNS, parsed.row, strict=True))


def reason(raw):
    with pytest.raises(Rejected) as info:
        PARSER.parse(raw, UTC_ZONE, STREAM)
    return str(info.value)


def library_cost(model, provider, when, i=0, o=0, cr=0, cw=0):
    usage = Usage(input_tokens=i, output_tokens=o, cache_read_tokens=cr, cache_write_tokens=cw)
    price = calc_price(usage, model, provider_id=provider, genai_request_timestamp=when)
    return float(price.total_price)


# ----- the malformed-line corpus ------------------------------------------------------------

OBJ = b'{"timestamp": "2026-11-20T10:00:00Z", "model": "gpt-4o-mini"'

REJECTED = [
    # truncated JSON
    pytest.param(OBJ + b', "input_tokens": 1', ["invalid JSON"], id="truncated-object"),
    pytest.param(b'{"timestamp": "2026-11-20T10:0', ["invalid JSON"], id="truncated-string"),
    pytest.param(OBJ + b",}", ["invalid JSON"], id="trailing-comma"),
    # NaN / Infinity literals are not JSON
    pytest.param(OBJ + b', "input_tokens": NaN}', ["invalid JSON"], id="nan"),
    pytest.param(OBJ + b', "latency_ms": Infinity}', ["invalid JSON"], id="infinity"),
    pytest.param(OBJ + b', "cost_usd": -Infinity}', ["invalid JSON"], id="minus-infinity"),
    pytest.param(OBJ + b', "input_tokens": 1e400}', ["invalid JSON", "infinity"], id="1e400"),
    # invalid UTF-8 and raw control bytes
    pytest.param(b'{"timestamp": "2026-11-20T10:00:00Z", "model": "gpt\xff\xfe"}', ["UTF-8"]),
    pytest.param(b'{"timestamp": "2026-11-20T10:00:00Z", "model": "\xc3"}', ["UTF-8"]),
    pytest.param(b"\x80\x81\x82", ["invalid JSON"], id="continuation-bytes"),
    pytest.param(b'{"timestamp": "2026-11-20T10:00:00Z", "model": "a\x00b"}', ["invalid JSON"]),
    pytest.param(b"\x00\x00\x00", ["invalid JSON"], id="nul-bytes"),
    pytest.param(OBJ + b"}\x00", ["invalid JSON"], id="nul-after-object"),
    pytest.param(b"\xef\xbb\xbf\xef\xbb\xbf{}", ["invalid JSON"], id="double-bom"),
    # not an object
    pytest.param(b"[1, 2, 3]", ["not a JSON object", "list"], id="array"),
    pytest.param(b'[{"timestamp": "2026-11-20T10:00:00Z", "model": "m"}]', ["list"]),
    pytest.param(b"42", ["not a JSON object", "int"], id="int"),
    pytest.param(b"4.5", ["not a JSON object", "float"], id="float"),
    pytest.param(b'"a string"', ["not a JSON object", "str"], id="string"),
    pytest.param(b"true", ["not a JSON object", "bool"], id="bool"),
    pytest.param(b"null", ["not a JSON object"], id="null"),
    # wrong types
    pytest.param(line(input_tokens="ten"), ["input_tokens", "integer"], id="tokens-text"),
    pytest.param(line(output_tokens=[1]), ["output_tokens"], id="tokens-list"),
    pytest.param(line(input_tokens=1.5), ["input_tokens", "valid integer"], id="tokens-fraction"),
    pytest.param(line(input_tokens=10.0), ["input_tokens", "valid integer"], id="tokens-float"),
    pytest.param(line(input_tokens="10"), ["input_tokens", "valid integer"], id="tokens-text"),
    pytest.param(line(input_tokens=True), ["input_tokens", "valid integer"], id="tok-bool"),
    pytest.param(line(cost_usd=True), ["cost_usd", "valid number"], id="cost-bool"),
    pytest.param(line(latency_ms=False), ["latency_ms", "valid number"], id="lat-bool"),
    pytest.param(line(latency_ms="12.5"), ["latency_ms", "valid number"], id="lat-numeric-text"),
    pytest.param(line(latency_ms="fast"), ["latency_ms"], id="latency-text"),
    pytest.param(line(quality_score="good"), ["quality_score"], id="quality-text"),
    pytest.param(line(model={"name": "gpt"}), ["model", "string"], id="model-object"),
    pytest.param(line(model=["gpt"]), ["model", "string"], id="model-list"),
    pytest.param(line(model="m" * 513), ["model", "512 characters"], id="model-too-long"),
    pytest.param(line(status=True), ["status", "string"], id="status-bool"),
    pytest.param(line(tenant_id={"id": 1}), ["tenant_id"], id="tenant-object"),
    pytest.param(line(timestamp="yesterday"), ["timestamp"], id="timestamp-word"),
    pytest.param(line(timestamp="2026-13-40T10:00:00Z"), ["timestamp"], id="timestamp-month"),
    pytest.param(line(timestamp=None), ["timestamp"], id="timestamp-null"),
    pytest.param(line(timestamp=True), ["timestamp"], id="timestamp-bool"),
    pytest.param(line(timestamp=...), ["timestamp", "required"], id="timestamp-missing"),
    # negative values
    pytest.param(line(input_tokens=-1), ["input_tokens", "greater than or equal to 0"]),
    pytest.param(line(prompt_tokens=-5), ["prompt_tokens", "greater than or equal to 0"]),
    pytest.param(line(usage={"completion_tokens": -3}), ["usage.completion_tokens"]),
    pytest.param(line(cache_read_tokens=-1, input_tokens=5), ["cache_read_tokens"]),
    pytest.param(line(reasoning_tokens=-2), ["reasoning_tokens"]),
    pytest.param(line(latency_ms=-0.5), ["latency_ms", "greater than or equal to 0"]),
    pytest.param(line(duration_seconds=-2), ["duration_seconds"]),
    pytest.param(line(cost_usd=-0.01), ["cost_usd", "greater than or equal to 0"]),
    pytest.param(line(quality_score=-0.1), ["quality_score"]),
    # huge values
    pytest.param(line(input_tokens=MAX_TOKENS + 1), ["input_tokens", "less than or equal"]),
    pytest.param(line(output_tokens=2**64), ["output_tokens"]),
    pytest.param(OBJ + b', "total_tokens": 123456789012345678901234567890}', ["total_tokens"]),
    pytest.param(line(cost_usd=1e300), ["cost_usd", "less than or equal"], id="cost-1e300"),
    pytest.param(line(latency_ms=1e15), ["latency_ms", "less than or equal"]),
    pytest.param(line(timestamp=1e20), ["timestamp"], id="timestamp-1e20"),
    pytest.param(line(timestamp=-1e20), ["timestamp"], id="timestamp-minus-1e20"),
    pytest.param(line(quality_score=1.5), ["quality_score", "less than or equal to 1"]),
    pytest.param(line(timestamp="9999-12-31T23:59:59-14:00"), ["timestamp", "years 1 to 9999"]),
    pytest.param(line(timestamp="0001-01-01T00:00:00+14:00"), ["timestamp", "years 1 to 9999"]),
    # event-level rules
    pytest.param(line(model=...), ["model", "required for an llm_call"], id="call-no-model"),
    pytest.param(line(model=None), ["model", "required"], id="call-null-model"),
    pytest.param(
        line(input_tokens=100, cache_read_tokens=101),
        ["cache_read_tokens", "exceed input_tokens", "101", "100"],
        id="cache-read-exceeds-input",
    ),
    pytest.param(
        line(input_tokens=100, cache_read_tokens=60, cache_write_tokens=41),
        ["cache_write_tokens", "(101)", "input_tokens"],
        id="cache-read-plus-write-exceeds-input",
    ),
    pytest.param(line(cache_read_tokens=10), ["cache_read_tokens", "input_tokens (None)"]),
    pytest.param(line(status="pending"), ["status", "'pending'", "neither ok nor error"]),
    pytest.param(line(status="warning"), ["status", "'warning'"], id="status-warning"),
    pytest.param(line(status=""), ["status", "''"], id="status-empty"),
    pytest.param(line(type="score", name="helpful"), ["value", "required"], id="score-no-value"),
    pytest.param(line(type="score", value=0.5), ["name", "required"], id="score-no-name"),
    pytest.param(line(type="score", name="x", value="high"), ["value"], id="score-value-text"),
    pytest.param(line(type="score", name="x", value=True), ["value", "valid number"]),
    pytest.param(line(type="score", name="x", value=1e10), ["value", "less than or equal"]),
]


@pytest.mark.parametrize(("raw", "fragments"), REJECTED)
def test_malformed_line_is_rejected_with_a_reason_naming_the_field(raw, fragments):
    text = reason(raw)
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert len(text) < 1000


def test_rejection_reason_lists_at_most_three_problems_and_counts_the_rest():
    text = reason(
        line(input_tokens=-1, output_tokens=-1, total_tokens=-1, reasoning_tokens=-1, cost_usd=-1)
    )
    assert text.count("greater than or equal to 0") == 3
    assert "(+2 more)" in text


def test_a_usage_list_is_not_a_usage_object():
    # No alias path applies to a list: a valid call without token counts, nothing invented.
    row = call(line(usage=[1, 2]))
    assert row["input_tokens"] is None
    assert json.loads(row["extra"]) == {"usage": [1, 2]}


# ----- accepted odd lines --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"", b" ", b"\t  \t", b"\r", b"\xef\xbb\xbf", b"\xef\xbb\xbf  ", b"\n"]
)
def test_empty_and_whitespace_lines_are_skipped(raw):
    assert PARSER.parse(raw, UTC_ZONE, STREAM) is SKIPPED


@pytest.mark.parametrize("kind", ["span", "log", "metric", "LLM_CALL", "", None, 3, ["x"], {}])
def test_other_event_types_are_skipped(kind):
    parsed = PARSER.parse(line(type=kind, input_tokens=5), UTC_ZONE, STREAM)
    assert parsed.kind == "skipped"
    assert parsed.row is None


def test_bom_and_crlf_are_tolerated():
    plain = call(line(input_tokens=3))
    assert call(b"\xef\xbb\xbf" + line(input_tokens=3)) == plain
    assert call(line(input_tokens=3) + b"\r") == plain  # a line whose \r was not stripped
    assert call(b"  " + line(input_tokens=3) + b"  ") == plain


def test_escaped_nul_in_a_dimension_is_replaced_and_unicode_is_kept():
    row = call(line(model="gpt\u0000x", task_type="r\u00e9sum\u00e9 \U0001f600", user_id="u\u0000"))
    assert row["model"] == "gpt\ufffdx"
    assert row["task_type"] == "résumé 😀"
    assert row["user_id"] == "u\x00"  # never a dimension: kept as written
    assert row["cost_usd"] is None  # no such model


CONTROL = "\x00\x01\t\n\r\x1b\x7f\x85\x9f"
"""One of each kind of control character: NUL, C0, tab, newline, DEL, C1 (NEL)."""
DAMAGED = "gpt" + CONTROL + "x"
REPAIRED = "gpt" + "\ufffd" * len(CONTROL) + "x"
CALL_DIMENSIONS = ("model", "provider", "task_type", "operation", "tenant_id", "agent_name")


@pytest.mark.parametrize("field", [*CALL_DIMENSIONS, "error_type"])
def test_a_control_character_in_a_call_dimension_becomes_u_fffd(field):
    row = call(line(**{field: DAMAGED}, input_tokens=5))
    assert row[field] == REPAIRED
    assert row["input_tokens"] == 5  # the event is kept, with what it counts


@pytest.mark.parametrize("field", ["name", "model", "task_type", "tenant_id"])
def test_a_control_character_in_a_score_dimension_becomes_u_fffd(field):
    event = {"timestamp": TS, "type": "score", "name": "q", "value": 0.5, field: DAMAGED}
    assert score(orjson.dumps(event))[field] == REPAIRED


def test_an_error_type_taken_from_the_error_object_is_repaired_too():
    for error in ({"type": DAMAGED}, {"code": DAMAGED}):
        assert call(line(error=error))["error_type"] == REPAIRED


def test_other_unicode_in_a_dimension_is_kept():
    text = "r\u00e9sum\u00e9 \u00a0\u200b\u2028\U0001f600\\,= \ufffd"
    assert call(line(task_type=text))["task_type"] == text


@pytest.mark.parametrize(("value", "expected"), [(10, 10), (0, 0), (MAX_TOKENS, MAX_TOKENS)])
def test_token_counts_accept_json_integers(value, expected):
    row = call(line(model="no-such-model", input_tokens=value))
    assert row["input_tokens"] == expected
    assert row["total_tokens"] == expected


def test_numeric_identifiers_are_stored_as_text():
    row = call(line(tenant_id=42, trace_id=1.5, user_id="u1", call_id=7))
    assert (row["tenant_id"], row["trace_id"], row["user_id"], row["call_id"]) == (
        "42",
        "1.5",
        "u1",
        "7",
    )


# ----- aliases -------------------------------------------------------------------------------


def test_openai_usage_object_with_cached_and_reasoning_tokens():
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000},
        "completion_tokens_details": {"reasoning_tokens": 50},
    }
    row = call(line(provider="openai", usage=usage))
    assert row["input_tokens"] == 1200
    assert row["output_tokens"] == 300
    assert row["total_tokens"] == 1500
    assert row["cache_read_tokens"] == 1000
    assert row["reasoning_tokens"] == 50
    assert row["extra"] is None  # the usage object is consumed, not copied into extra
    when = datetime(2026, 11, 20, 10, tzinfo=UTC)
    expected = library_cost("gpt-4o-mini", "openai", when, i=1200, o=300, cr=1000)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-9)
    # cached input is cheaper: the cached tokens must actually have been priced as cached
    assert row["cost_usd"] < library_cost("gpt-4o-mini", "openai", when, i=1200, o=300)
    assert row["price_source"] == SOURCE_GENAI_PRICES


def test_responses_api_usage_object():
    usage = {
        "input_tokens": 900,
        "output_tokens": 100,
        "input_tokens_details": {"cached_tokens": 400},
        "output_tokens_details": {"reasoning_tokens": 64},
    }
    row = call(line(usage=usage))
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (900, 100, 1000)
    assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (400, 64)


def test_prompt_and_completion_tokens_at_top_level():
    row = call(line(prompt_tokens=70, completion_tokens=30))
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (70, 30, 100)


def test_canonical_name_wins_over_alias_and_the_alias_is_kept_as_extra():
    row = call(line(input_tokens=5, prompt_tokens=7))
    assert row["input_tokens"] == 5
    assert json.loads(row["extra"]) == {"prompt_tokens": 7}


def test_opentelemetry_gen_ai_attributes():
    raw = orjson.dumps(
        {
            "timestamp": TS,
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 500,
            "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.cache_read.input_tokens": 200,
            "gen_ai.usage.cache_creation.input_tokens": 100,
        }
    )
    row = call(raw)
    assert row["model"] == "gpt-4o-mini"  # the response model is what was billed
    assert row["provider"] == "openai"
    assert row["operation"] == "chat"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (500, 40, 540)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (200, 100)
    assert json.loads(row["extra"]) == {"gen_ai.request.model": "gpt-4o"}  # not lost


def test_opentelemetry_request_model_and_gen_ai_system():
    raw = orjson.dumps(
        {"timestamp": TS, "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.system": "anthropic"}
    )
    row = call(raw)
    assert (row["model"], row["provider"]) == ("claude-sonnet-4-5", "anthropic")


def test_opentelemetry_error_type_makes_an_error():
    row = call(orjson.dumps({"timestamp": TS, "model": "m", "error.type": "timeout"}))
    assert (row["status"], row["error_type"]) == ("error", "timeout")


def test_openllmetry_token_attributes():
    raw = orjson.dumps(
        {
            "timestamp": TS,
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.system": "openai",
            "gen_ai.usage.prompt_tokens": 1200,
            "gen_ai.usage.completion_tokens": 300,
            "llm.usage.total_tokens": 1500,
        }
    )
    row = call(raw)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (1200, 300, 1500)
    assert row["extra"] is None  # consumed, not copied
    when = datetime(2026, 11, 20, 10, tzinfo=UTC)
    expected = library_cost("gpt-4o-mini", "openai", when, i=1200, o=300)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert row["cost_usd"] > 0
    assert row["price_source"] == SOURCE_GENAI_PRICES


@pytest.mark.parametrize(
    ("fields", "latency"),
    [
        ({"latency_ms": 1234.5}, 1234.5),
        ({"duration_ms": 42}, 42.0),
        ({"duration_seconds": 1.5}, 1500.0),
        ({"latency_s": 0.25}, 250.0),
        ({"duration_s": 2}, 2000.0),
        ({"latency_ms": 10, "latency_s": 5}, 10.0),
        ({"latency_ms": 0}, 0.0),
        ({}, None),
    ],
)
def test_duration_aliases(fields, latency):
    row = call(line(**fields))
    assert row["latency_ms"] == latency
    if latency is not None:
        assert isinstance(row["latency_ms"], float)


def test_cost_alias_is_trusted():
    row = call(line(cost=0.125, input_tokens=10))
    assert (row["cost_usd"], row["price_source"]) == (0.125, SOURCE_TRACE)


# ----- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "zone", "expected"),
    [
        ("2026-11-20T10:00:00Z", UTC_ZONE, epoch_us(2026, 11, 20, 10)),
        ("2026-11-20T10:00:00.123456Z", UTC_ZONE, epoch_us(2026, 11, 20, 10, micro=123456)),
        ("2026-11-20T11:00:00+01:00", UTC_ZONE, epoch_us(2026, 11, 20, 10)),
        ("2026-11-20T04:30:00-05:30", BERLIN, epoch_us(2026, 11, 20, 10)),
        ("2026-11-20 10:00:00+00:00", BERLIN, epoch_us(2026, 11, 20, 10)),
        # naive: the source's zone, with its daylight saving time
        ("2026-11-20T10:00:00", UTC_ZONE, epoch_us(2026, 11, 20, 10)),
        ("2026-01-15T12:00:00", BERLIN, epoch_us(2026, 1, 15, 11)),  # CET, UTC+1
        ("2026-07-15T12:00:00", BERLIN, epoch_us(2026, 7, 15, 10)),  # CEST, UTC+2
        ("2026-07-15T12:00:00.000250", BERLIN, epoch_us(2026, 7, 15, 10, micro=250)),
        ("2026-03-29T01:59:59", BERLIN, epoch_us(2026, 3, 29, 0, 59, 59)),  # last second of CET
        ("2026-03-29T03:00:00", BERLIN, epoch_us(2026, 3, 29, 1)),  # first second of CEST
        ("2026-01-15T12:00:00", NEW_YORK, epoch_us(2026, 1, 15, 17)),
        ("2026-07-15T12:00:00", NEW_YORK, epoch_us(2026, 7, 15, 16)),
        ("2026-11-20", BERLIN, epoch_us(2026, 11, 19, 23)),
        # epoch seconds and milliseconds are instants: the zone does not apply
        (1763632800, BERLIN, epoch_us(2025, 11, 20, 10)),
        (1763632800.25, UTC_ZONE, epoch_us(2025, 11, 20, 10, micro=250000)),
        (1763632800123, BERLIN, epoch_us(2025, 11, 20, 10, micro=123000)),
        ("1763632800", UTC_ZONE, epoch_us(2025, 11, 20, 10)),
        (0, BERLIN, 0),
    ],
)
def test_timestamps_become_utc_microseconds(timestamp, zone, expected):
    assert call(line(timestamp=timestamp), zone)["ts_us"] == expected


@pytest.mark.parametrize(
    ("timestamp", "zone"),
    [("0001-01-01T00:00:00", BERLIN), ("9999-12-31T23:59:59", NEW_YORK), ("0001-01-01", BERLIN)],
)
def test_naive_timestamp_that_leaves_the_calendar_in_utc_is_rejected(timestamp, zone):
    for kind in ({}, {"type": "score", "name": "q", "value": 1}):
        with pytest.raises(Rejected, match=r"timestamp: .* outside the years 1 to 9999 in UTC"):
            PARSER.parse(line(timestamp=timestamp, input_tokens=5, **kind), zone, STREAM)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("0001-01-01T00:00:00Z", -62135596800 * 10**6),
        ("9999-12-31T23:59:59.999999Z", 253402300799 * 10**6 + 999999),
    ],
)
def test_the_first_and_last_microsecond_are_accepted_and_priced(timestamp, expected):
    unbounded = make_parser(TimeRange(earliest_us=-(2**62), ahead_us=2**62))
    row = call(line(timestamp=timestamp, input_tokens=1000), parser=unbounded)
    assert row["ts_us"] == expected
    assert row["cost_usd"] > 0


@pytest.mark.parametrize("key", ["ts", "time", "start_time", "@timestamp"])
def test_timestamp_aliases(key):
    raw = orjson.dumps({key: "2026-11-20T10:00:00Z", "model": "m"})
    assert call(raw)["ts_us"] == TS_US


# ----- the accepted time range ----------------------------------------------------------------


class Clock:
    def __init__(self, now_us):
        self.now_us = now_us

    def __call__(self):
        return self.now_us


def ranged(clock, **timestamps):
    """A parser whose range is configured like ``ingest.timestamps`` and reads ``clock``."""
    return make_parser(TimeRange.from_config(TimestampsConfig(**timestamps), clock))


SCORE = {"type": "score", "name": "q", "value": 1}


@pytest.mark.parametrize("kind", [{}, SCORE], ids=["call", "score"])
@pytest.mark.parametrize(
    ("timestamp", "fragment"),
    [
        (
            "3000-01-01T00:00:00Z",
            "timestamp: 3000-01-01T00:00:00Z is more than ingest.timestamps.ahead (1d) after the"
            " clock (2026-11-20T10:00:00Z)",
        ),
        (32503680000000, "timestamp: 3000-01-01T00:00:00Z is more than"),  # epoch milliseconds
        (
            "1900-01-01T00:00:00Z",
            "timestamp: 1900-01-01T00:00:00Z is before ingest.timestamps.earliest"
            " (1970-01-01T00:00:00Z)",
        ),
        ("1969-12-31T23:59:59.999999Z", "is before ingest.timestamps.earliest"),
        ("2026-11-21T10:00:00.000001Z", "is more than ingest.timestamps.ahead (1d)"),
    ],
)
def test_a_time_outside_the_default_range_is_rejected_with_the_reason(timestamp, fragment, kind):
    parser = ranged(Clock(TS_US))
    with pytest.raises(Rejected) as info:
        parser.parse(line(timestamp=timestamp, input_tokens=5, **kind), UTC_ZONE, STREAM)
    assert fragment in str(info.value)


@pytest.mark.parametrize("kind", [{}, SCORE], ids=["call", "score"])
def test_the_ends_of_the_default_range_are_accepted(kind):
    parser = ranged(Clock(TS_US))
    for timestamp, expected in (("1970-01-01T00:00:00Z", 0), ("2026-11-21T10:00:00Z", TS_US + DAY)):
        parsed = parser.parse(line(timestamp=timestamp, **kind), UTC_ZONE, STREAM)
        assert parsed.row[0] == expected


def test_now_is_the_clock_at_parse_time_not_when_the_parser_was_made():
    clock = Clock(TS_US)
    parser = ranged(clock, ahead="2h")
    later = line(timestamp="2026-11-20T13:00:00Z")
    with pytest.raises(Rejected, match=r"ahead \(2h\) after the clock \(2026-11-20T10:00:00Z\)"):
        parser.parse(later, UTC_ZONE, STREAM)
    clock.now_us += 3600 * 10**6
    assert parser.parse(later, UTC_ZONE, STREAM).row[0] == TS_US + 3 * HOUR


def test_a_configured_earliest_time_applies_in_utc():
    parser = ranged(Clock(TS_US), earliest="2025-01-01")
    with pytest.raises(
        Rejected, match=r"before ingest.timestamps.earliest \(2025-01-01T00:00:00Z\)"
    ):
        parser.parse(line(timestamp="2025-01-01T00:59:59+01:00"), UTC_ZONE, STREAM)
    assert call(line(timestamp="2025-01-01T01:00:00+01:00"), parser=parser)["ts_us"] == epoch_us(
        2025, 1, 1
    )


@settings(max_examples=300, deadline=None)
@given(
    st.integers(epoch_us(1600, 1, 1), epoch_us(3500, 1, 1)),
    st.integers(epoch_us(1980, 1, 1), epoch_us(2100, 1, 1)),
    st.integers(0, 365 * DAY),
)
def test_a_time_is_accepted_exactly_when_it_is_inside_the_range(ts_us, now_us, ahead_us):
    parser = make_parser(TimeRange(epoch_us(2000, 1, 1), ahead_us, lambda: now_us))
    seconds, micros = divmod(ts_us, 10**6)
    raw = line(timestamp=f"{datetime.fromtimestamp(seconds, UTC).isoformat()[:19]}.{micros:06d}Z")
    inside = epoch_us(2000, 1, 1) <= ts_us <= now_us + ahead_us
    try:
        assert parser.parse(raw, UTC_ZONE, STREAM).row[0] == ts_us
        assert inside
    except Rejected as error:
        assert not inside, error
        assert "ingest.timestamps" in str(error)


# ----- derived fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "total"),
    [
        ({"input_tokens": 100, "output_tokens": 20}, 120),
        ({"input_tokens": 100}, 100),
        ({"output_tokens": 20}, 20),
        ({"input_tokens": 100, "output_tokens": 20, "total_tokens": 125}, 125),  # as reported
        ({}, None),
    ],
)
def test_total_tokens_derived_when_absent(fields, total):
    assert call(line(**fields))["total_tokens"] == total


@pytest.mark.parametrize(
    ("fields", "status", "error_type"),
    [
        ({}, "ok", None),
        ({"status": "ok"}, "ok", None),
        ({"status": "SUCCESS"}, "ok", None),
        ({"status": 200}, "ok", None),
        ({"status": "completed"}, "ok", None),
        ({"status": "error"}, "error", None),
        ({"status": "Failed"}, "error", None),
        ({"status": "timeout"}, "error", "timeout"),
        ({"status": "cancelled"}, "error", "cancelled"),
        ({"status": "error", "error_type": "rate_limit"}, "error", "rate_limit"),
        ({"error_type": "rate_limit"}, "error", "rate_limit"),
        ({"error": "upstream exploded"}, "error", None),
        ({"error": {"type": "rate_limit", "message": "slow down"}}, "error", "rate_limit"),
        ({"error": {"code": 429}}, "error", "429"),
        ({"error": {"message": "?"}}, "error", None),
        ({"error": None}, "ok", None),
        ({"error": False}, "ok", None),
        ({"error": ""}, "ok", None),
        ({"status": "ok", "error": "ignored"}, "ok", None),
    ],
)
def test_status_derived_from_error_and_error_type(fields, status, error_type):
    row = call(line(**fields))
    assert (row["status"], row["error_type"]) == (status, error_type)


def test_error_object_is_kept_in_extra():
    row = call(line(error={"type": "rate_limit", "message": "slow down"}))
    assert json.loads(row["extra"]) == {"error": {"type": "rate_limit", "message": "slow down"}}


def test_extras_kept_as_json_and_known_fields_are_columns():
    config = {"temperature": 0.2, "top_p": 1, "tools": ["search"], "prompt_version": "v3"}
    row = call(
        line(
            config=config,
            experiment="B",
            provider="openai",
            task_type="summarize",
            tenant_id="acme",
            user_id="u-1",
            session_id="s-1",
            agent_name="planner",
            trace_id="t-1",
            call_id="c-1",
            quality_score=0.75,
        )
    )
    assert json.loads(row["extra"]) == {"config": config, "experiment": "B"}
    assert row["provider"] == "openai"
    assert row["task_type"] == "summarize"
    assert (row["tenant_id"], row["user_id"], row["session_id"]) == ("acme", "u-1", "s-1")
    assert (row["agent_name"], row["trace_id"], row["call_id"]) == ("planner", "t-1", "c-1")
    assert row["quality_score"] == 0.75
    assert row["stream_id"] == STREAM


def test_no_extras_means_null_extra():
    assert call(line(input_tokens=1))["extra"] is None


def test_score_event_row():
    row = score(
        line(
            type="score",
            name="helpfulness",
            value=0.8,
            trace_id="t-1",
            task_type="qa",
            scenario="faq",
            tenant_id="acme",
            annotator="alice",
            timestamp="2026-07-15T12:00:00",
            model="gpt-4o",
        ),
        zone=BERLIN,
    )
    assert row == {
        "ts_us": epoch_us(2026, 7, 15, 10),
        "name": "helpfulness",
        "value": 0.8,
        "model": "gpt-4o",
        "task_type": "qa",
        "scenario": "faq",
        "tenant_id": "acme",
        "trace_id": "t-1",
        "extra": '{"annotator":"alice"}',
        "stream_id": STREAM,
    }


def test_score_event_needs_no_model_and_may_be_outside_zero_one():
    raw = orjson.dumps({"type": "score", "timestamp": TS, "name": "stars", "value": 4})
    row = score(raw)
    assert (row["model"], row["value"], row["name"]) == (None, 4.0, "stars")


# ----- prompt and response content -----------------------------------------------------------

PROMPT = "Mail jane.doe@example.com or call +49 30 1234 5678 about card 4111 1111 1111 1111"


def test_prompt_and_response_dropped_by_default():
    row = call(line(prompt=PROMPT, response="Sure, jane.doe@example.com"))
    assert row["prompt"] is None
    assert row["response"] is None
    assert row["extra"] is None  # and not smuggled into extra either


def test_prompt_and_response_redacted_when_stored():
    parser = make_parser(store=True)
    row = call(line(prompt=PROMPT, response="Write to jane.doe@example.com"), parser=parser)
    assert row["prompt"] == "Mail [email] or call [phone] about card [card]"
    assert row["response"] == "Write to [email]"
    messages = [{"role": "user", "content": "I am bob@example.org"}]
    row = call(line(prompt=messages), parser=parser)
    assert json.loads(row["prompt"]) == [{"role": "user", "content": "I am [email]"}]
    assert row["response"] is None


def test_prompt_and_response_hashed_when_configured():
    parser = make_parser(store=True, hash=True)
    row = call(line(prompt=PROMPT, response="ok"), parser=parser)
    assert row["prompt"] == "sha256:" + hashlib.sha256(PROMPT.encode()).hexdigest()
    assert row["response"] == "sha256:" + hashlib.sha256(b"ok").hexdigest()
    assert PROMPT not in (row["extra"] or "")


def test_other_content_fields_in_extra_follow_the_policy():
    fields = {"messages": [{"role": "user", "content": PROMPT}], "output": "Sure", "exp": "B"}
    row = call(line(**fields))
    assert json.loads(row["extra"]) == {"exp": "B"}
    row = call(line(**fields), parser=make_parser(store=True))
    assert json.loads(row["extra"]) == {
        "messages": json.dumps(
            [{"role": "user", "content": "Mail [email] or call [phone] about card [card]"}],
            separators=(",", ":"),
        ),
        "output": "Sure",
        "exp": "B",
    }
    raw = orjson.dumps({"type": "score", "timestamp": TS, "name": "n", "value": 1, "input": PROMPT})
    assert PARSER.parse(raw, UTC_ZONE, STREAM).row[SCORE_COLUMNS.index("extra")] is None


def test_content_not_stored_when_store_false_even_with_hash():
    row = call(line(prompt=PROMPT), parser=make_parser(store=False, hash=True))
    assert row["prompt"] is None


# ----- properties ----------------------------------------------------------------------------

KEYS = [
    "timestamp",
    "ts",
    "model",
    "type",
    "provider",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "usage",
    "cost_usd",
    "latency_ms",
    "latency_s",
    "duration_seconds",
    "status",
    "error",
    "error_type",
    "quality_score",
    "name",
    "value",
    "prompt",
    "response",
    "config",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # json.dumps writes NaN and Infinity literals for these
    | st.text(max_size=20)
    | st.sampled_from(
        [
            *("llm_call", "score", "ok", "error", "timeout", "gpt-4o-mini", TS),
            *("2026-11-20T10:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59.999999-01:00"),
        ]
    )
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
EVENTS = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), JSON_VALUES, max_size=10)


def _ledger_db():
    db = sqlite3.connect(":memory:")
    for script in MIGRATIONS:
        db.executescript(script)
    return db


DB = _ledger_db()
_INSERT_CALL = f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' * 27)})"
_INSERT_SCORE = f"INSERT INTO scores ({', '.join(SCORE_COLUMNS)}) VALUES ({', '.join('?' * 10)})"
CONTENT_PARSER = make_parser(store=True)


def _parse_never_crashes(raw, parser=PARSER):
    """Parsed or Rejected, never another exception; accepted rows fit the ledger's tables."""
    try:
        parsed = parser.parse(raw, BERLIN, STREAM)
    except Rejected as error:
        assert str(error)
        return None
    if parsed.kind == "call":
        DB.execute(_INSERT_CALL, parsed.row)
        values = dict(zip(CALL_COLUMNS, parsed.row, strict=True))
        for key in ("input_tokens", "output_tokens", "total_tokens", "cost_usd", "latency_ms"):
            value = values[key]
            assert value is None or (value >= 0 and math.isfinite(value)), (key, value)
    elif parsed.kind == "score":
        DB.execute(_INSERT_SCORE, parsed.row)
    else:
        assert parsed is SKIPPED
    return parsed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS, st.booleans())
def test_arbitrary_json_objects_never_crash(event, with_time_and_model):
    if with_time_and_model:
        event = {"timestamp": TS, "model": "gpt-4o-mini", **event}
    raw = json.dumps(event).encode()
    _parse_never_crashes(raw)
    _parse_never_crashes(raw, CONTENT_PARSER)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), JSON_VALUES, max_size=2))
def test_nearly_valid_events_never_crash(changes):
    """A valid, priced event with one or two fields replaced: most are accepted."""
    event = {"timestamp": TS, "model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 9}
    _parse_never_crashes(json.dumps(event | changes).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(raw):
    _parse_never_crashes(raw)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_valid_lines_never_crash(data):
    raw = line(input_tokens=1200, output_tokens=30, usage={"prompt_tokens": 5}, config={"a": 1})
    cut = data.draw(st.integers(0, len(raw)))
    damage = data.draw(st.binary(max_size=6))
    _parse_never_crashes(raw[:cut] + damage + raw[cut + len(damage) :])


TOKENS = st.integers(min_value=0, max_value=10**9)


@st.composite
def valid_calls(draw):
    """A valid llm_call in one of the shapes producers write, and what it should become."""
    input_tokens = draw(TOKENS)
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output_tokens = draw(TOKENS)
    event = {"timestamp": draw(st.integers(1_600_000_000, 1_900_000_000)), "model": "gpt-4o-mini"}
    shape = draw(st.sampled_from(["plain", "openai", "alias", "otel"]))
    if shape == "plain":
        event |= {"input_tokens": input_tokens, "output_tokens": output_tokens}
        event |= {"cache_read_tokens": cache_read, "cache_write_tokens": cache_write}
    elif shape == "openai":
        event["usage"] = {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "prompt_tokens_details": {"cached_tokens": cache_read},
        }
        event["cache_write_tokens"] = cache_write
    elif shape == "alias":
        event |= {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}
        event |= {"cached_tokens": cache_read, "cache_write_tokens": cache_write}
    else:
        event |= {
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
            "gen_ai.usage.cache_read.input_tokens": cache_read,
            "gen_ai.usage.cache_creation.input_tokens": cache_write,
            "gen_ai.provider.name": "openai",
        }
    latency_key = draw(
        st.sampled_from(["latency_ms", "duration_ms", "latency_s", "duration_seconds"])
    )
    latency = draw(st.floats(0, 10**5, allow_nan=False))
    event[latency_key] = latency
    expected_latency = (
        latency * 1000.0 if latency_key in ("latency_s", "duration_seconds") else latency
    )
    cost = draw(st.none() | st.floats(0, 10**6, allow_nan=False))
    if cost is not None:
        event["cost_usd"] = cost
    tokens = (input_tokens, output_tokens, cache_read, cache_write)
    return event, tokens, expected_latency, cost


@settings(max_examples=300, deadline=None)
@given(valid_calls())
def test_valid_events_round_trip_tokens_latency_and_cost(case):
    event, (t_in, t_out, cache_read, cache_write), latency, cost = case
    row = call(orjson.dumps(event))
    assert row["input_tokens"] == t_in
    assert row["output_tokens"] == t_out
    assert row["total_tokens"] == t_in + t_out
    assert row["cache_read_tokens"] == cache_read
    assert row["cache_write_tokens"] == cache_write
    assert row["latency_ms"] == pytest.approx(latency, rel=1e-12, abs=1e-9)
    assert row["ts_us"] == event["timestamp"] * 10**6
    if cost is not None:
        assert (row["cost_usd"], row["price_source"]) == (cost, SOURCE_TRACE)
    else:
        when = datetime.fromtimestamp(event["timestamp"], UTC)
        expected = library_cost("gpt-4o-mini", "openai", when, t_in, t_out, cache_read, cache_write)
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
        assert row["price_source"] == SOURCE_GENAI_PRICES
