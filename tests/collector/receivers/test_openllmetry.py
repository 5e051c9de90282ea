"""The real ``openai`` client, instrumented by OpenLLMetry's
``opentelemetry-instrumentation-openai``, calling a local OpenAI-compatible server: its spans,
encoded as the OTLP exporter sends them, become calls with the model, tokens and cost the
server reported."""

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import openai
import orjson
import pytest
from genai_prices import Usage as PricedUsage
from genai_prices import calc_price
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.openai import OpenAIInstrumentor

from collector.clock import TimeRange
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser
from collector.ingest.pricing import SOURCE_GENAI_PRICES, Pricer
from collector.ledger.events import CALL_COLUMNS
from collector.receivers.otlp.spans import SpanMapping, decode_request
from schemas.config import ContentConfig, TimestampsConfig
from tests.collector.receivers.fake_openai import DATED_SUFFIX, FAILING_MODEL, FakeOpenAI, Usage
from tests.collector.receivers.otlp_bodies import Recorder, json_body

SECRET = "my card is 4111 1111 1111 1111"
UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture
def recorder():
    recorder = Recorder(**{"service.name": "support-bot", "tenant_id": "acme"})
    OpenAIInstrumentor().instrument(tracer_provider=recorder.provider)
    yield recorder
    OpenAIInstrumentor().uninstrument()


def parser():
    times = TimeRange.from_config(TimestampsConfig(), lambda: time.time_ns() // 1000)
    return LineParser(Pricer({}), ContentPolicy(ContentConfig()), times)


def rows(calls):
    line_parser = parser()
    return [
        dict(zip(CALL_COLUMNS, line_parser.parse_object(c.event, UTC_ZONE, 1).row, strict=True))
        for c in calls
    ]


def ask(client, model):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": SECRET}]
    )


def test_instrumented_openai_calls_become_priced_calls(recorder):
    usage = Usage(prompt_tokens=1200, completion_tokens=300, cached_tokens=1024)
    with FakeOpenAI(usage) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        ask(client, "gpt-4o-mini")
        with pytest.raises(openai.BadRequestError):
            ask(client, FAILING_MODEL)
    spans = recorder.spans()
    request = encode_spans(spans)
    decoded = decode_request(request.SerializeToString(), "application/x-protobuf", SpanMapping())
    as_json = orjson.dumps(json_body(request))
    assert decoded == decode_request(as_json, "application/json", SpanMapping())
    assert (decoded.skipped, decoded.invalid) == (0, [])
    ok, failed = rows(decoded.calls)

    model = "gpt-4o-mini" + DATED_SUFFIX
    assert (ok["model"], ok["provider"], ok["operation"]) == (model, "openai", "chat")
    assert (ok["input_tokens"], ok["output_tokens"], ok["total_tokens"]) == (1200, 300, 1500)
    assert ok["cache_read_tokens"] == 1024
    priced = calc_price(
        PricedUsage(input_tokens=1200, output_tokens=300, cache_read_tokens=1024),
        model,
        provider_id="openai",
        genai_request_timestamp=datetime.fromtimestamp(spans[0].start_time / 1e9, UTC),
    )
    assert ok["price_source"] == SOURCE_GENAI_PRICES
    assert ok["cost_usd"] == pytest.approx(float(priced.total_price))
    assert (ok["status"], ok["error_type"]) == ("ok", None)
    assert ok["latency_ms"] == pytest.approx((spans[0].end_time - spans[0].start_time) / 1e6)
    assert ok["ts_us"] == spans[0].start_time // 1000
    assert (ok["agent_name"], ok["tenant_id"]) == ("support-bot", "acme")
    assert ok["call_id"] == f"{spans[0].context.span_id:016x}"

    assert (failed["model"], failed["status"], failed["error_type"]) == (
        FAILING_MODEL,
        "error",
        "BadRequestError",
    )
    assert (failed["input_tokens"], failed["cost_usd"], failed["price_source"]) == (
        None,
        None,
        None,
    )
    assert SECRET in spans[0].attributes["gen_ai.input.messages"]  # OpenLLMetry records content
    assert not any(SECRET in str(value) for value in (*ok.values(), *failed.values()))
