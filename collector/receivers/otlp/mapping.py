"""One OTLP span -> an ``llm_call`` event (the field names of a trace line), or not a call.

A span is a model call when its ``gen_ai.operation.name`` is one of `MODEL_OPERATIONS`; never
when it is one of `OTHER_OPERATIONS` (tools, agents, workflows, retrieval: those spans may
name a model too, but their model calls are spans of their own); with another operation
name, when it names a model (``gen_ai.request.model`` or ``gen_ai.response.model``); with
none, when it carries any of `CALL_MARKERS` (the GenAI conventions' model and provider,
OpenLLMetry's ``llm.request.type``).

Only the attributes named here are read: prompt and response content goes to ``prompt`` and
``response`` alone, where the collector's content policy applies (dropped by default).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

MODEL_OPERATIONS = frozenset({"chat", "text_completion", "embeddings", "generate_content"})
OTHER_OPERATIONS = frozenset(
    {"execute_tool", "invoke_agent", "create_agent", "invoke_workflow", "retrieval"}
)
MODEL_ATTRIBUTES = ("gen_ai.response.model", "gen_ai.request.model")
"""Where the model is, the one that answered first."""
CALL_MARKERS = (
    *MODEL_ATTRIBUTES,
    "gen_ai.provider.name",
    "gen_ai.system",
    "llm.request.type",
)

# event field <- the span attributes it is read from, first present wins
_FROM_SPAN = {
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "operation": ("gen_ai.operation.name", "llm.request.type"),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "total_tokens": ("llm.usage.total_tokens", "gen_ai.usage.total_tokens"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens",),
    "cache_write_tokens": ("gen_ai.usage.cache_creation.input_tokens",),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens",),
    "cost_usd": ("gen_ai.usage.cost",),
}
# event field <- the attributes it is read from, on the span first, then on its resource
_FROM_SPAN_OR_RESOURCE = {
    "agent_name": ("gen_ai.agent.name",),
    "user_id": ("user.id", "enduser.id"),
    "session_id": ("session.id", "gen_ai.conversation.id"),
}
_AGENT_FALLBACK = "service.name"
_PROMPT_ATTRIBUTES = ("gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.prompt")
_RESPONSE_ATTRIBUTES = ("gen_ai.output.messages", "gen_ai.completion")
_PROMPT_PREFIX = "gen_ai.prompt."
_RESPONSE_PREFIX = "gen_ai.completion."
_ERROR_TYPE = "error.type"
_EXCEPTION_EVENT = "exception"
_EXCEPTION_TYPE = "exception.type"
_MAX_ERROR_MESSAGE = 128
_MAX_LABEL_NAME = 80
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SpanMapping:
    """How spans become events: the options of the ``receivers.otlp`` configuration."""

    tenant_attribute: str = "tenant_id"
    """The span or resource attribute (the span's first) whose value becomes ``tenant_id``."""


@dataclass(frozen=True, slots=True)
class LlmSpan:
    """A span that is a model call, as the event `LineParser.parse_object` validates."""

    trace_id: bytes
    span_id: bytes
    event: dict[str, Any]
    label: str
    """The span's name and hex ids, for rejection messages: never its content."""


class Invalid(Exception):
    """A call span that cannot become an event at all; the message is the reason."""


class Attributes:
    """A span's or resource's attributes by key; values converted only when read."""

    __slots__ = ("_values",)

    def __init__(self, pairs: Iterable[KeyValue]) -> None:
        self._values = {pair.key: pair.value for pair in pairs}

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str) -> Any:
        value = self._values.get(key)
        return None if value is None else plain(value)

    def first(self, keys: Iterable[str]) -> Any:
        """The value of the first of ``keys`` that is set, else None."""
        for key in keys:
            value = self.get(key)
            if value is not None:
                return value
        return None

    def prefixed(self, prefix: str) -> dict[str, Any]:
        return {key: plain(value) for key, value in self._values.items() if key.startswith(prefix)}


def plain(value: AnyValue) -> Any:
    """An attribute value as Python: str, int, float, bool, list, dict; bytes as base64 text
    (as OTLP JSON writes them); None when unset."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {pair.key: plain(pair.value) for pair in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None if kind is None else getattr(value, kind)


def is_call(attributes: Attributes) -> bool:
    """Whether a span with these attributes is a model call (the rule in the module's doc)."""
    operation = attributes.get("gen_ai.operation.name")
    if operation in MODEL_OPERATIONS:
        return True
    if operation in OTHER_OPERATIONS:
        return False
    markers = CALL_MARKERS if operation is None else MODEL_ATTRIBUTES
    return any(marker in attributes for marker in markers)


def label(span: Span) -> str:
    """How messages name a span: its (shortened) name and hex ids."""
    name = span.name if len(span.name) <= _MAX_LABEL_NAME else span.name[:_MAX_LABEL_NAME] + "..."
    return f"span {name!r} (trace {span.trace_id.hex()}, span {span.span_id.hex()})"


def to_call(
    span: Span, attributes: Attributes, resource: Attributes, mapping: SpanMapping
) -> LlmSpan:
    """The event of a call span; raises `Invalid` when its ids are not valid OTLP ids."""
    _check_id("trace_id", span.trace_id, _TRACE_ID_BYTES)
    _check_id("span_id", span.span_id, _SPAN_ID_BYTES)
    event: dict[str, Any] = {
        "type": "llm_call",
        "timestamp": _EPOCH + timedelta(microseconds=span.start_time_unix_nano // 1000),
        "latency_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "trace_id": span.trace_id.hex(),
        "call_id": span.span_id.hex(),
        "model": attributes.first(MODEL_ATTRIBUTES),
        **_status(span, attributes),
    }
    for field, keys in _FROM_SPAN.items():
        event[field] = attributes.first(keys)
    for field, keys in _FROM_SPAN_OR_RESOURCE.items():
        event[field] = attributes.first(keys)
        if event[field] is None:
            event[field] = resource.first(keys)
    tenant = attributes.get(mapping.tenant_attribute)
    event["tenant_id"] = resource.get(mapping.tenant_attribute) if tenant is None else tenant
    if event["agent_name"] is None:
        event["agent_name"] = resource.get(_AGENT_FALLBACK)
    event["prompt"] = _content(attributes, _PROMPT_ATTRIBUTES, _PROMPT_PREFIX)
    event["response"] = _content(attributes, _RESPONSE_ATTRIBUTES, _RESPONSE_PREFIX)
    event = {field: value for field, value in event.items() if value is not None}
    return LlmSpan(span.trace_id, span.span_id, event, label(span))


def _check_id(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise Invalid(f"{name}: {len(value)} bytes, an OTLP {name} has {size}")
    if not any(value):
        raise Invalid(f"{name}: all zero, which OTLP reserves for 'no id'")


def _status(span: Span, attributes: Attributes) -> dict[str, Any]:
    """``status`` from the span's status code (only ERROR is an error); ``error_type`` from
    ``error.type``, else the recorded exception's type, else the status message (cut short)."""
    error_type = attributes.get(_ERROR_TYPE)
    if span.status.code != Status.STATUS_CODE_ERROR:
        return {"status": "ok", "error_type": error_type}
    if error_type is None:
        error_type = _exception_type(span)
    if error_type is None and span.status.message:
        error_type = span.status.message[:_MAX_ERROR_MESSAGE]
    return {"status": "error", "error_type": error_type}


def _exception_type(span: Span) -> Any:
    for event in span.events:
        if event.name == _EXCEPTION_EVENT:
            exception_type = Attributes(event.attributes).get(_EXCEPTION_TYPE)
            if exception_type is not None:
                return exception_type
    return None


def _content(attributes: Attributes, keys: tuple[str, ...], prefix: str) -> Any:
    """The content attributes: the value when there is one, else all of them by key."""
    found = {key: value for key in keys if (value := attributes.get(key)) is not None}
    found.update(attributes.prefixed(prefix))
    if not found:
        return None
    return next(iter(found.values())) if len(found) == 1 else found
