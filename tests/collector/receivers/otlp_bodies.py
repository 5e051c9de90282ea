"""Export bodies as real OpenTelemetry clients send them: spans made with the SDK, encoded by
the OTLP exporter's own encoder (protobuf), and the same request in OTLP JSON."""

import base64

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


class Recorder:
    """A tracer provider whose finished spans stay in memory."""

    def __init__(self, **resource: object) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create(resource))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests.collector.receivers")

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


def protobuf_body(spans) -> bytes:
    """What ``OTLPSpanExporter`` (HTTP, protobuf) posts for ``spans``."""
    return encode_spans(spans).SerializeToString()


def json_body(request: ExportTraceServiceRequest) -> dict:
    """``request`` in OTLP JSON: proto3 JSON with integer enums and hex ids."""
    data = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for holder in (span, *span.get("links", [])):
                    for key in _ID_KEYS:
                        if key in holder:
                            holder[key] = base64.b64decode(holder[key]).hex()
    return data
