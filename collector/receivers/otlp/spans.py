"""An OTLP trace export request -> the ``llm_call`` events of its model-call spans.

The receiver's interface: `decode_request` decodes a body (protobuf or OTLP JSON) and maps
each span with `collector.receivers.otlp.mapping` (the rule for what is a call is there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.receivers.otlp.decoding import Undecodable, parse_request
from collector.receivers.otlp.mapping import (
    RESOURCE_RANKS,
    SPAN_RANKS,
    Invalid,
    LlmSpan,
    SpanMapping,
    is_call,
    label,
    read,
    to_call,
)

__all__ = ["Decoded", "LlmSpan", "SpanMapping", "Undecodable", "decode_request"]


@dataclass(slots=True)
class Decoded:
    """What one export request held."""

    calls: list[LlmSpan] = field(default_factory=list)
    """Spans that are model calls (`LineParser` may still reject them, e.g. without a model)."""
    skipped: int = 0
    """Spans that are not model calls."""
    invalid: list[tuple[str, str]] = field(default_factory=list)
    """(label, reason) of call spans that cannot become events at all (e.g. a bad trace id)."""


def decode_request(body: bytes, content_type: str, mapping: SpanMapping) -> Decoded:
    """The spans of ``body`` (already decompressed), by ``content_type`` (the media type without
    parameters: ``application/x-protobuf`` or ``application/json``); raises `Undecodable`."""
    request = parse_request(body, content_type)
    decoded = Decoded()
    tenant_key = mapping.tenant_attribute
    for resource_spans in request.resource_spans:
        resource = read(resource_spans.resource.attributes, RESOURCE_RANKS, tenant_key)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = read(span.attributes, SPAN_RANKS, tenant_key)
                if not is_call(attributes):
                    decoded.skipped += 1
                    continue
                try:
                    decoded.calls.append(to_call(span, attributes, resource))
                except Invalid as error:
                    decoded.invalid.append((label(span), str(error)))
    return decoded
