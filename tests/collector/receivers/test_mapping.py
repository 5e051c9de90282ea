"""Which spans are model calls, and what of each goes into its event: checked on the rows a
real `LineParser` makes of the events."""

import base64
import calendar
from zoneinfo import ZoneInfo

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from collector.clock import TimeRange
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser, Rejected
from collector.ingest.pricing import SOURCE_GENAI_PRICES, Pricer
from collector.ledger.events import CALL_COLUMNS
from collector.receivers.otlp.spans import SpanMapping, decode_request
from schemas.config import ContentConfig, TimestampsConfig

PROTOBUF = "application/x-protobuf"
UTC = ZoneInfo("UTC")
START_NS = calendar.timegm((2026, 11, 20, 10, 0, 0)) * 10**9
CLOCK_US = calendar.timegm((2030, 6, 1, 0, 0, 0)) * 10**6
LATE_NS = (CLOCK_US + 2 * 86_400 * 10**6) * 1000
"""Two days after the parsers' clock, beyond what they accept."""
TRACE_ID = bytes(range(1, 17))
SPAN_ID = bytes(range(1, 9))
TIMES = TimeRange.from_config(TimestampsConfig(), lambda: CLOCK_US)


def parser(**content):
    return LineParser(Pricer({}), ContentPolicy(ContentConfig(**content)), TIMES)


def value(python) -> AnyValue:
    if isinstance(python, bool):
        return AnyValue(bool_value=python)
    if isinstance(python, int):
        return AnyValue(int_value=python)
    if isinstance(python, float):
        return AnyValue(double_value=python)
    if isinstance(python, bytes):
        return AnyValue(bytes_value=python)
    if isinstance(python, list):
        return AnyValue(array_value={"values": [value(item) for item in python]})
    if isinstance(python, dict):
        return AnyValue(kvlist_value={"values": key_values(python)})
    return AnyValue(string_value=python)


def key_values(attributes):
    return [KeyValue(key=k, value=value(v)) for k, v in attributes.items()]


def span(attributes, name="chat", trace_id=TRACE_ID, span_id=SPAN_ID, **fields):
    times = {"start_time_unix_nano": START_NS, "end_time_unix_nano": START_NS + 750_000_000}
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        attributes=key_values(attributes),
        **{**times, **fields},
    )


DEFAULT = SpanMapping()


def decode(spans, resource=None, mapping=DEFAULT):
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={"attributes": key_values(resource or {})},
                scope_spans=[{"spans": spans}],
            )
        ]
    )
    return decode_request(request.SerializeToString(), PROTOBUF, mapping)


def row(event, line_parser=None):
    parsed = (line_parser or parser()).parse_object(event, UTC, 1)
    return dict(zip(CALL_COLUMNS, parsed.row, strict=True))


def only_row(attributes, resource=None, mapping=DEFAULT, line_parser=None, **fields):
    decoded = decode([span(attributes, **fields)], resource, mapping)
    (call,) = decoded.calls
    return row(call.event, line_parser)


MODEL = {"gen_ai.request.model": "gpt-4o-mini"}


@pytest.mark.parametrize(
    ("attributes", "is_call"),
    [
        ({"gen_ai.operation.name": "chat"}, True),
        ({"gen_ai.operation.name": "text_completion"}, True),
        ({"gen_ai.operation.name": "embeddings"}, True),
        ({"gen_ai.operation.name": "generate_content"}, True),
        ({"gen_ai.operation.name": "execute_tool", **MODEL}, False),
        ({"gen_ai.operation.name": "invoke_agent", **MODEL}, False),
        ({"gen_ai.operation.name": "create_agent", **MODEL}, False),
        ({"gen_ai.operation.name": "invoke_workflow", **MODEL}, False),
        ({"gen_ai.operation.name": "retrieval", **MODEL}, False),
        ({"gen_ai.operation.name": "rerank", **MODEL}, True),
        ({"gen_ai.operation.name": "rerank", "gen_ai.system": "cohere"}, False),
        ({"gen_ai.operation.name": ["chat"], **MODEL}, True),
        (MODEL, True),
        ({"gen_ai.response.model": "gpt-4o"}, True),
        ({"gen_ai.provider.name": "openai"}, True),
        ({"gen_ai.system": "openai"}, True),
        ({"llm.request.type": "chat"}, True),
        ({"http.request.method": "GET", "model": "gpt-4o"}, False),
        ({}, False),
    ],
)
def test_which_spans_are_model_calls(attributes, is_call):
    decoded = decode([span(attributes)])
    assert (len(decoded.calls), decoded.skipped) == ((1, 0) if is_call else (0, 1))


def test_call_fields_from_the_genai_conventions():
    got = only_row(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.system": "azure.ai.openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 1024,
            "gen_ai.usage.reasoning.output_tokens": 40,
            "gen_ai.agent.name": "planner",
            "gen_ai.conversation.id": "conv-9",
            "user.id": "u-7",
        },
        resource={"service.name": "shop"},
    )
    assert (got["model"], got["provider"], got["operation"]) == (
        "gpt-4o-mini-2024-07-18",
        "openai",
        "chat",
    )
    assert (got["input_tokens"], got["output_tokens"], got["total_tokens"]) == (2000, 100, 2100)
    assert (got["cache_read_tokens"], got["reasoning_tokens"]) == (1024, 40)
    assert got["price_source"] == SOURCE_GENAI_PRICES
    cost = (2000 - 1024) * 0.15e-6 + 1024 * 0.075e-6 + 100 * 0.6e-6
    assert got["cost_usd"] == pytest.approx(cost)
    assert (got["agent_name"], got["session_id"], got["user_id"]) == ("planner", "conv-9", "u-7")
    assert (got["ts_us"], got["latency_ms"]) == (START_NS // 1000, 750.0)
    assert (got["trace_id"], got["call_id"]) == (TRACE_ID.hex(), SPAN_ID.hex())
    assert got["extra"] is None


def test_older_openllmetry_names():
    got = only_row(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 5,
            "llm.usage.total_tokens": 16,
            "gen_ai.usage.cache_creation.input_tokens": 2,
            "traceloop.association.properties.user_id": "u-1",
            "traceloop.association.properties.session_id": "s-1",
        }
    )
    assert (got["provider"], got["operation"], got["model"]) == ("openai", "chat", "gpt-4o")
    assert (got["input_tokens"], got["output_tokens"], got["total_tokens"]) == (10, 5, 16)
    assert (got["cache_write_tokens"], got["user_id"], got["session_id"]) == (2, "u-1", "s-1")


def test_openlit_cost_is_the_calls_cost():
    got = only_row({**MODEL, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.cost": 0.042})
    assert (got["cost_usd"], got["price_source"]) == (0.042, 0)


def test_dimensions_from_the_resource_unless_the_span_sets_them():
    resource = {"service.name": "shop", "tenant_id": "acme", "user.id": "u-r", "session.id": "s-r"}
    got = only_row(MODEL, resource=resource)
    assert (got["agent_name"], got["tenant_id"]) == ("shop", "acme")
    assert (got["user_id"], got["session_id"]) == ("u-r", "s-r")
    span_sets = {**MODEL, "gen_ai.agent.name": "a", "tenant_id": "t", "enduser.id": "u"}
    got = only_row(span_sets, resource=resource)
    assert (got["agent_name"], got["tenant_id"], got["user_id"]) == ("a", "t", "u")


def test_tenant_from_the_configured_attribute():
    mapping = SpanMapping(tenant_attribute="app.customer")
    resource = {"app.customer": "from-resource", "tenant_id": "ignored"}
    assert only_row(MODEL, resource, mapping)["tenant_id"] == "from-resource"
    spans_tenant = {**MODEL, "app.customer": 4711}
    assert only_row(spans_tenant, resource, mapping)["tenant_id"] == "4711"


ERROR = Status(code=Status.STATUS_CODE_ERROR, message="Error code: 429 " + "x" * 500)


@pytest.mark.parametrize(
    ("attributes", "fields", "expected"),
    [
        ({}, {}, ("ok", None)),
        ({}, {"status": Status(code=Status.STATUS_CODE_OK)}, ("ok", None)),
        ({"error.type": "timeout"}, {"status": ERROR}, ("error", "timeout")),
        (
            {},
            {
                "status": ERROR,
                "events": [
                    {"name": "log"},
                    {
                        "name": "exception",
                        "attributes": key_values({"exception.type": "openai.RateLimitError"}),
                    },
                ],
            },
            ("error", "openai.RateLimitError"),
        ),
        ({}, {"status": ERROR}, ("error", ERROR.message[:128])),
        ({}, {"status": Status(code=Status.STATUS_CODE_ERROR)}, ("error", None)),
    ],
)
def test_status_and_error_type(attributes, fields, expected):
    got = only_row({**MODEL, **attributes}, **fields)
    assert (got["status"], got["error_type"]) == expected


CONTENT = {
    "gen_ai.input.messages": '[{"role": "user", "parts": [{"content": "my card 4111"}]}]',
    "gen_ai.system_instructions": "be brief",
    "gen_ai.prompt.0.content": "hello",
    "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"content": "hi"}]}]',
    "gen_ai.completion.0.content": "hi",
}


def test_content_goes_only_to_prompt_and_response():
    decoded = decode([span({**MODEL, **CONTENT, "http.url": "https://x/?q=secret"})])
    event = decoded.calls[0].event
    assert (set(CONTENT) | {"http.url"}).isdisjoint(event)
    assert event["prompt"] == {
        key: CONTENT[key]
        for key in (
            "gen_ai.input.messages",
            "gen_ai.system_instructions",
            "gen_ai.prompt.0.content",
        )
    }
    assert event["response"] == {
        key: CONTENT[key] for key in ("gen_ai.output.messages", "gen_ai.completion.0.content")
    }
    dropped = row(event)
    assert (dropped["prompt"], dropped["response"], dropped["extra"]) == (None, None, None)
    stored = row(event, parser(store=True))
    assert "hello" in stored["prompt"] and "hi" in stored["response"]


def test_a_single_content_attribute_is_stored_as_its_text():
    event = decode([span({**MODEL, "gen_ai.prompt": "just this"})]).calls[0].event
    assert event["prompt"] == "just this"
    assert "response" not in event


def test_attribute_values_of_every_kind():
    attributes = {
        **MODEL,
        "tenant_id": b"\x01\x02",
        "gen_ai.prompt": [1, 2.5, True, "x", {"k": ["v"]}],
    }
    event = decode([span(attributes)]).calls[0].event
    assert event["tenant_id"] == base64.b64encode(b"\x01\x02").decode()
    assert event["prompt"] == [1, 2.5, True, "x", {"k": ["v"]}]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"trace_id": b"\x01" * 8}, "trace_id: 8 bytes, an OTLP trace_id has 16"),
        ({"trace_id": b""}, "trace_id: 0 bytes, an OTLP trace_id has 16"),
        ({"span_id": b"\x01" * 16}, "span_id: 16 bytes, an OTLP span_id has 8"),
        ({"trace_id": bytes(16)}, "trace_id: all zero"),
        ({"span_id": bytes(8)}, "span_id: all zero"),
        ({"start_time_unix_nano": 0}, "start_time_unix_nano: 0, which OTLP reserves"),
        ({"end_time_unix_nano": START_NS - 1}, f"end_time_unix_nano: {START_NS - 1} is before"),
        ({"end_time_unix_nano": 0}, "end_time_unix_nano: 0 is before"),
    ],
)
def test_calls_with_bad_ids_or_times_are_invalid_with_a_label_and_reason(fields, reason):
    bad = span(MODEL, name="chat gpt-4o-mini", **fields)
    decoded = decode([bad, span(MODEL, span_id=b"\x09" * 8), span({"db.system": "sqlite"})])
    assert (len(decoded.calls), decoded.skipped) == (1, 1)
    ((label, why),) = decoded.invalid
    assert why.startswith(reason)
    assert (
        label == f"span 'chat gpt-4o-mini' (trace {bad.trace_id.hex()}, span {bad.span_id.hex()})"
    )


def test_label_names_the_span_never_its_content():
    secret = "my card 4111"
    long_name = "n" * 300
    decoded = decode([span({**MODEL, "gen_ai.prompt": secret}, name=long_name)])
    label = decoded.calls[0].label
    assert secret not in label and long_name not in label
    assert label.startswith("span 'nnn") and SPAN_ID.hex() in label


@pytest.mark.parametrize(
    ("attributes", "fields", "reason"),
    [
        ({"gen_ai.operation.name": "chat"}, {}, "model: required"),
        ({**MODEL, "gen_ai.usage.input_tokens": "12"}, {}, "input_tokens"),
        ({**MODEL, "gen_ai.usage.cost": -1.0}, {}, "cost_usd"),
        (MODEL, {"start_time_unix_nano": LATE_NS, "end_time_unix_nano": LATE_NS}, "timestamp"),
    ],
)
def test_calls_the_parser_rejects_say_why(attributes, fields, reason):
    (call,) = decode([span(attributes, **fields)]).calls
    with pytest.raises(Rejected, match=reason):
        parser().parse_object(call.event, UTC, 1)
