"""An OTLP trace export body (protobuf or OTLP JSON) -> an ``ExportTraceServiceRequest``.

Both encodings end up as the same protobuf message, so that the mapping has one input.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MAX_REASON = 300
# OTLP JSON writes these bytes fields as hex, not as the base64 of proto3 JSON; the others stay.
_ID_FIELDS = (("traceId", "trace_id"), ("spanId", "span_id"))
# Hex too, but never read here: dropped rather than converted (a bad one loses nothing).
_UNUSED_ID_FIELDS = ("parentSpanId", "parent_span_id", "links")


class Undecodable(Exception):
    """The body is not an OTLP trace export request; the message says why (the HTTP 400 text)."""


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """The request in ``body`` (decompressed), by its media type; raises `Undecodable`."""
    if content_type == PROTOBUF:
        return _from_protobuf(body)
    if content_type == JSON:
        return _from_json(body)
    raise Undecodable(f"content type {content_type!r} is neither {PROTOBUF} nor {JSON}")


def _from_protobuf(body: bytes) -> ExportTraceServiceRequest:
    try:
        return ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as error:
        what = "not an OTLP protobuf ExportTraceServiceRequest"
        raise Undecodable(_reason(what, error)) from None


def _from_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Undecodable(_reason("invalid JSON", error)) from None
    if not isinstance(data, dict):
        raise Undecodable(f"not an OTLP JSON ExportTraceServiceRequest but a {type(data).__name__}")
    _ids_to_base64(data)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
        raise Undecodable(_reason("not an OTLP JSON ExportTraceServiceRequest", error)) from None
    return request


def _ids_to_base64(data: dict[str, Any]) -> None:
    """Rewrites each span's hex ids in place as the base64 ``ParseDict`` reads; raises
    `Undecodable` naming the first id that is not hex. Wrong shapes are left to ``ParseDict``."""
    for r, resource_spans in _items(data, "resourceSpans", "resource_spans"):
        for s, scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for i, span in _items(scope_spans, "spans", "spans"):
                for key in _UNUSED_ID_FIELDS:
                    span.pop(key, None)
                for names in _ID_FIELDS:
                    for key in names:
                        if isinstance(value := span.get(key), str):
                            where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}].{names[0]}"
                            span[key] = _hex_to_base64(value, where)


def _items(parent: Any, camel: str, snake: str) -> list[tuple[int, dict[str, Any]]]:
    """The objects in ``parent``'s list field (either spelling), with their positions."""
    if not isinstance(parent, dict):
        return []
    values = parent.get(camel, parent.get(snake))
    if not isinstance(values, list):
        return []
    return [(i, value) for i, value in enumerate(values) if isinstance(value, dict)]


def _hex_to_base64(value: str, where: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise Undecodable(f"{where}: {shown!r} is not hex") from None
    return base64.b64encode(raw).decode()


def _reason(what: str, error: Exception) -> str:
    detail = str(error) or type(error).__name__
    if len(detail) > _MAX_REASON:
        detail = detail[:_MAX_REASON] + "..."
    return f"{what}: {detail}"
