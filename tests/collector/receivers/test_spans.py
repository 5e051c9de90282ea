"""OTLP trace export requests -> the events of their model-call spans, checked through a
real `LineParser` down to the ledger row."""

import calendar
from zoneinfo import ZoneInfo

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import Status, StatusCode

from collector.clock import TimeRange
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser
from collector.ingest.pricing import SOURCE_GENAI_PRICES, SOURCE_TRACE, Pricer
from collector.ledger.events import CALL_COLUMNS
from collector.receivers.otlp.spans import SpanMapping, Undecodable, decode_request
from schemas.config import ContentConfig, TimestampsConfig
from tests.collector.receivers.otlp_bodies import Recorder, json_body, protobuf_body

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
UTC = ZoneInfo("UTC")
START_NS = calendar.timegm((2026, 11, 20, 10, 0, 0)) * 10**9 + 123_456_789
START_US = START_NS // 1000
CLOCK_US = calendar.timegm((2030, 6, 1, 0, 0, 0)) * 10**6
PARSER = LineParser(
    Pricer({}),
    ContentPolicy(ContentConfig()),
    TimeRange.from_config(TimestampsConfig(), lambda: CLOCK_US),
)


def row(event):
    parsed = PARSER.parse_object(event, UTC, 1)
    assert parsed.kind == "call"
    return dict(zip(CALL_COLUMNS, parsed.row, strict=True))


def chat_span(recorder, **attributes):
    values = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
    }
    values.update(attributes)
    span = recorder.tracer.start_span("chat gpt-4o-mini", start_time=START_NS)
    span.set_attributes({k: v for k, v in values.items() if v is not None})
    span.end(end_time=START_NS + 1_234_500_000)
    return span


def test_sdk_chat_span_becomes_a_priced_call_row():
    recorder = Recorder(**{"service.name": "checkout-bot", "tenant_id": "acme"})
    span = chat_span(recorder)
    decoded = decode_request(protobuf_body(recorder.spans()), PROTOBUF, SpanMapping())
    assert (decoded.skipped, decoded.invalid, len(decoded.calls)) == (0, [], 1)
    call = decoded.calls[0]
    context = span.get_span_context()
    assert call.trace_id == context.trace_id.to_bytes(16, "big")
    assert call.span_id == context.span_id.to_bytes(8, "big")
    got = row(call.event)
    assert got["ts_us"] == START_US
    assert (got["model"], got["provider"], got["operation"]) == ("gpt-4o-mini", "openai", "chat")
    assert (got["input_tokens"], got["output_tokens"], got["total_tokens"]) == (1200, 300, 1500)
    assert got["latency_ms"] == pytest.approx(1234.5)
    assert (got["status"], got["error_type"]) == ("ok", None)
    assert got["price_source"] == SOURCE_GENAI_PRICES
    assert got["cost_usd"] == pytest.approx(1200 * 0.15e-6 + 300 * 0.6e-6)
    assert got["trace_id"] == f"{context.trace_id:032x}"
    assert got["call_id"] == f"{context.span_id:016x}"
    assert (got["agent_name"], got["tenant_id"]) == ("checkout-bot", "acme")
    assert got["extra"] is None


def test_json_encoding_decodes_to_the_same_spans():
    recorder = Recorder(**{"service.name": "checkout-bot"})
    chat_span(recorder, **{"gen_ai.usage.cost": 0.25})
    with recorder.tracer.start_as_current_span("GET /orders"):
        pass
    spans = recorder.spans()
    as_json = orjson.dumps(json_body(encode_spans(spans)))
    from_protobuf = decode_request(protobuf_body(spans), PROTOBUF, SpanMapping())
    from_json = decode_request(as_json, JSON, SpanMapping())
    assert from_json == from_protobuf
    assert from_json.skipped == 1
    got = row(from_json.calls[0].event)
    assert (got["cost_usd"], got["price_source"]) == (0.25, SOURCE_TRACE)


def test_error_span_is_an_error_call_with_its_type():
    recorder = Recorder()
    span = recorder.tracer.start_span("chat gpt-4o-mini", start_time=START_NS)
    span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})
    span.set_attribute("error.type", "rate_limit_exceeded")
    span.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
    span.end(end_time=START_NS + 10**6)
    decoded = decode_request(protobuf_body(recorder.spans()), PROTOBUF, SpanMapping())
    got = row(decoded.calls[0].event)
    assert (got["status"], got["error_type"]) == ("error", "rate_limit_exceeded")


def test_garbage_is_undecodable():
    with pytest.raises(Undecodable, match="not an OTLP protobuf"):
        decode_request(b"\xff\xff\xff", PROTOBUF, SpanMapping())
    with pytest.raises(Undecodable, match="invalid JSON"):
        decode_request(b"{", JSON, SpanMapping())
