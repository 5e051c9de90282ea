"""Export bodies in both OTLP encodings decode alike; anything else is `Undecodable`, and
nothing else is ever raised (property tests over arbitrary bytes and JSON)."""

import base64
import calendar
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from collector.receivers.otlp.spans import Decoded, SpanMapping, Undecodable, decode_request
from tests.collector.receivers.otlp_bodies import Recorder, json_body

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAPPING = SpanMapping()
START_NS = calendar.timegm((2026, 11, 20, 10, 0, 0)) * 10**9
TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"

SPEC_EXAMPLE = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "shop-bot"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "my.library", "version": "1.0.0"},
                    "spans": [
                        {
                            "traceId": TRACE_HEX,
                            "spanId": SPAN_HEX,
                            "parentSpanId": "eee19b7ec3c1b173",
                            "name": "chat gpt-4o",
                            "kind": 3,
                            "startTimeUnixNano": str(START_NS),
                            "endTimeUnixNano": START_NS + 2_500_000_000,
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 20}},
                                {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.5}},
                            ],
                            "status": {"code": 2, "message": "boom"},
                            "links": [{"traceId": "not hex at all", "spanId": ""}],
                            "someFutureField": {"x": 1},
                        }
                    ],
                }
            ],
        }
    ]
}
"""The OTLP JSON the spec shows: hex ids, integer enums, int64 as string or number; an
unknown field and a link with ids nobody reads, which must not matter."""


def decode(data, content_type=JSON):
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return decode_request(body, content_type, MAPPING)


def test_spec_shaped_json_decodes_with_hex_ids_and_both_int64_forms():
    decoded = decode(SPEC_EXAMPLE)
    assert (decoded.skipped, decoded.invalid, len(decoded.calls)) == (0, [], 1)
    call = decoded.calls[0]
    assert (call.trace_id.hex(), call.span_id.hex()) == (TRACE_HEX, SPAN_HEX)
    event = call.event
    assert (event["trace_id"], event["call_id"]) == (TRACE_HEX, SPAN_HEX)
    assert (event["input_tokens"], event["output_tokens"], event["cost_usd"]) == (100, 20, 0.5)
    assert event["latency_ms"] == 2500.0
    assert (event["status"], event["error_type"]) == ("error", "boom")
    assert event["agent_name"] == "shop-bot"


def test_snake_case_keys_are_read_too_with_hex_ids():
    span = {
        "trace_id": TRACE_HEX,
        "span_id": SPAN_HEX,
        "start_time_unix_nano": START_NS,
        "end_time_unix_nano": START_NS,
        "attributes": [{"key": "gen_ai.request.model", "value": {"string_value": "gpt-4o"}}],
    }
    body = {"resource_spans": [{"scope_spans": [{"spans": [span]}]}]}
    (call,) = decode(body).calls
    assert (call.trace_id.hex(), call.span_id.hex()) == (TRACE_HEX, SPAN_HEX)


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        ({"traceId": "zz" * 16, "spanId": SPAN_HEX}, r"spans\[0\]\.traceId: 'zzzz.*' is not hex"),
        ({"traceId": TRACE_HEX, "spanId": "abc"}, r"spans\[0\]\.spanId: 'abc' is not hex"),
        ({"name": 5, "traceId": TRACE_HEX}, "not an OTLP JSON ExportTraceServiceRequest"),
        ({"startTimeUnixNano": "soon"}, "not an OTLP JSON ExportTraceServiceRequest"),
        ({"attributes": [{"key": "k", "value": {"intValue": 1.5}}]}, "not an OTLP JSON"),
    ],
)
def test_a_span_json_cannot_read_makes_the_request_undecodable(span, reason):
    with pytest.raises(Undecodable, match=reason):
        decode({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "invalid JSON"),
        (b"[1, 2]", "not an OTLP JSON ExportTraceServiceRequest but a list"),
        (b'{"resourceSpans": 7}', "not an OTLP JSON ExportTraceServiceRequest"),
        (b"\xff\xfe", "invalid JSON"),
    ],
)
def test_json_that_is_no_export_request_is_undecodable(body, reason):
    with pytest.raises(Undecodable, match=reason):
        decode(body)


def test_protobuf_garbage_and_unknown_media_types_are_undecodable():
    with pytest.raises(Undecodable, match="not an OTLP protobuf ExportTraceServiceRequest"):
        decode(b"\x0a\x05\x0a\x03", PROTOBUF)  # a field cut short
    with pytest.raises(Undecodable, match="'text/plain' is neither application/x-protobuf"):
        decode(b"{}", "text/plain")


def test_an_empty_request_is_no_spans():
    assert decode(b"", PROTOBUF) == Decoded([], 0, [])
    assert decode({}) == Decoded([], 0, [])


def test_a_long_reason_is_cut_short():
    with pytest.raises(Undecodable) as raised:
        decode({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": ["x" * 5000]}]}]}]})
    assert len(str(raised.value)) < 400


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_SPAN_KEYS = (
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "attributes",
    "status",
    "events",
    "links",
)
_hexish = st.text("0123456789abcdefxyz", max_size=34)
_any_value = st.dictionaries(
    st.sampled_from(
        [
            "stringValue",
            "intValue",
            "doubleValue",
            "boolValue",
            "arrayValue",
            "kvlistValue",
            "bytesValue",
        ]
    ),
    _json,
    max_size=2,
)
_attribute = st.fixed_dictionaries(
    {"key": st.sampled_from(["gen_ai.request.model", "gen_ai.usage.input_tokens", "x"])},
    optional={"value": _any_value},
)
_span = st.dictionaries(
    st.sampled_from(_SPAN_KEYS),
    _json | _hexish | st.lists(_attribute, max_size=3),
    max_size=6,
)
_shaped = st.builds(
    lambda spans, resource: {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]
    },
    st.lists(_span, max_size=3),
    st.dictionaries(st.just("attributes"), st.lists(_attribute, max_size=2)),
)


def _decodes_or_says_why(body: bytes, content_type: str) -> None:
    try:
        decoded = decode_request(body, content_type, MAPPING)
    except Undecodable as error:
        assert str(error)
    else:
        assert isinstance(decoded, Decoded)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from([PROTOBUF, JSON]))
def test_arbitrary_bytes_raise_nothing_but_undecodable(body, content_type):
    _decodes_or_says_why(body, content_type)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_json | _shaped)
def test_arbitrary_json_raises_nothing_but_undecodable(data):
    _decodes_or_says_why(json.dumps(data).encode(), JSON)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_protobuf_bodies_raise_nothing_but_undecodable(data):
    recorder = Recorder()
    span = recorder.tracer.start_span("chat", start_time=START_NS)
    span.set_attributes({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3})
    span.end(end_time=START_NS + 1)
    body = bytearray(encode_spans(recorder.spans()).SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    _decodes_or_says_why(bytes(body[: data.draw(st.integers(0, len(body)))]), PROTOBUF)


_attribute_values = (
    st.text(max_size=20)
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)
    | st.lists(st.text(max_size=5), max_size=3)
)
_attribute_keys = st.sampled_from(
    [
        "gen_ai.operation.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.system",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cost",
        "gen_ai.input.messages",
        "gen_ai.prompt.0.content",
        "error.type",
        "tenant_id",
        "user.id",
        "other",
    ]
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.dictionaries(_attribute_keys, _attribute_values, max_size=8), max_size=4),
    st.integers(0, 2**63),
    st.integers(0, 10**12),
)
def test_protobuf_and_json_of_the_same_sdk_spans_decode_alike(attribute_sets, start, duration):
    recorder = Recorder(**{"service.name": "svc", "tenant_id": "acme"})
    for attributes in attribute_sets:
        span = recorder.tracer.start_span("s", start_time=start)
        span.set_attributes(attributes)
        span.end(end_time=start + duration)
    request = encode_spans(recorder.spans())
    from_protobuf = decode(request.SerializeToString(), PROTOBUF)
    assert decode(json_body(request)) == from_protobuf
    counted = from_protobuf.skipped + len(from_protobuf.calls) + len(from_protobuf.invalid)
    assert counted == len(attribute_sets)


def test_bytes_attributes_decode_alike_in_both_encodings():
    raw = b"\x00\xffbinary"
    attributes = [
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
        {"key": "tenant_id", "value": {"bytesValue": base64.b64encode(raw).decode()}},
    ]
    span = {
        "traceId": TRACE_HEX,
        "spanId": SPAN_HEX,
        "startTimeUnixNano": START_NS,
        "endTimeUnixNano": START_NS,
        "attributes": attributes,
    }
    (call,) = decode({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).calls
    assert call.event["tenant_id"] == base64.b64encode(raw).decode()
