"""One OTLP span -> an ``llm_call`` event (the field names of a trace line), or not a call.

A span is a model call when its ``gen_ai.operation.name`` is one of `MODEL_OPERATIONS`; never
when it is one of `OTHER_OPERATIONS` (tools, agents, workflows, retrieval: those spans may
name a model too, but their model calls are spans of their own); with another operation
name, when it names a model (``gen_ai.response.model`` or ``gen_ai.request.model``); with
none, when it names a model or a provider (``gen_ai.provider.name``, ``gen_ai.system``) or
has OpenLLMetry's ``llm.request.type``.

Only the attributes named here are read, each span's in one pass: prompt and response content
goes to ``prompt`` and ``response`` alone, where the collector's content policy applies
(dropped by default).
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
_USER = ("user.id", "enduser.id", "traceloop.association.properties.user_id")
_SESSION = ("session.id", "gen_ai.conversation.id", "traceloop.association.properties.session_id")
SPAN_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("gen_ai.response.model", "gen_ai.request.model"),
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "operation": ("gen_ai.operation.name", "llm.request.type"),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "total_tokens": ("llm.usage.total_tokens", "gen_ai.usage.total_tokens"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens",),
    "cache_write_tokens": ("gen_ai.usage.cache_creation.input_tokens",),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
    "cost_usd": ("gen_ai.usage.cost",),
    "error_type": ("error.type",),
    "agent_name": ("gen_ai.agent.name",),
    "user_id": _USER,
    "session_id": _SESSION,
}
"""Event field <- the span attributes it is read from; the first of them that is set wins."""
RESOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "agent_name": ("gen_ai.agent.name", "service.name"),
    "user_id": _USER,
    "session_id": _SESSION,
}
"""Event field <- the resource attributes it is read from when the span sets none of its own."""
CONTENT_FIELDS = {
    "gen_ai.input.messages": "prompt",
    "gen_ai.system_instructions": "prompt",
    "gen_ai.prompt": "prompt",
    "gen_ai.output.messages": "response",
    "gen_ai.completion": "response",
}
"""Content attribute -> the event field holding it; ``gen_ai.prompt.*`` and
``gen_ai.completion.*`` (OpenLLMetry's numbered messages) too."""
_CONTENT_PREFIXES = (("gen_ai.prompt.", "prompt"), ("gen_ai.completion.", "response"))
_OPERATION = "operation"
_NOT_TAKEN = 1 << 30
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


@dataclass(slots=True)
class Read:
    """What a span's or a resource's attributes say, read in one pass."""

    fields: dict[str, Any]
    """Event fields by name (`SPAN_FIELDS` or `RESOURCE_FIELDS`)."""
    genai_operation: Any
    """``gen_ai.operation.name`` as sent (not OpenLLMetry's ``llm.request.type``)."""
    tenant: Any
    content: dict[str, dict[str, Any]]
    """``prompt`` and ``response``: their attributes by key."""


def _ranks(fields: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, int]]:
    return {key: (field, rank) for field, keys in fields.items() for rank, key in enumerate(keys)}


SPAN_RANKS = _ranks(SPAN_FIELDS)
RESOURCE_RANKS = _ranks(RESOURCE_FIELDS)


def read(pairs: Iterable[KeyValue], ranks: dict[str, tuple[str, int]], tenant_key: str) -> Read:
    """The fields ``ranks`` maps attributes to, the tenant and the content of ``pairs``."""
    fields: dict[str, Any] = {}
    taken: dict[str, int] = {}
    tenant = None
    content: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key = pair.key
        if key == tenant_key:
            tenant = plain(pair.value)
        if (hit := ranks.get(key)) is not None:
            field, rank = hit
            if rank < taken.get(field, _NOT_TAKEN) and (value := plain(pair.value)) is not None:
                fields[field] = value
                taken[field] = rank
        elif (target := _content_field(key)) is not None:
            content.setdefault(target, {})[key] = plain(pair.value)
    operation = fields.get(_OPERATION) if taken.get(_OPERATION) == 0 else None
    return Read(fields, operation, tenant, content)


def _content_field(key: str) -> str | None:
    if (target := CONTENT_FIELDS.get(key)) is not None:
        return target
    for prefix, field in _CONTENT_PREFIXES:
        if key.startswith(prefix):
            return field
    return None


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


def is_call(span: Read) -> bool:
    """Whether a span that says this is a model call (the rule in the module's doc)."""
    operation = span.genai_operation
    if isinstance(operation, str) and operation in MODEL_OPERATIONS:
        return True
    if isinstance(operation, str) and operation in OTHER_OPERATIONS:
        return False
    fields = span.fields
    if operation is not None:
        return "model" in fields
    return "model" in fields or "provider" in fields or _OPERATION in fields


def label(span: Span) -> str:
    """How messages name a span: its (shortened) name and hex ids."""
    name = span.name if len(span.name) <= _MAX_LABEL_NAME else span.name[:_MAX_LABEL_NAME] + "..."
    return f"span {name!r} (trace {span.trace_id.hex()}, span {span.span_id.hex()})"


def to_call(span: Span, attributes: Read, resource: Read) -> LlmSpan:
    """The event of a call span; raises `Invalid` when its ids or times are not valid OTLP."""
    _check_id("trace_id", span.trace_id, _TRACE_ID_BYTES)
    _check_id("span_id", span.span_id, _SPAN_ID_BYTES)
    _check_times(span.start_time_unix_nano, span.end_time_unix_nano)
    event: dict[str, Any] = {
        "type": "llm_call",
        "timestamp": _EPOCH + timedelta(microseconds=span.start_time_unix_nano // 1000),
        "latency_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "trace_id": span.trace_id.hex(),
        "call_id": span.span_id.hex(),
        **resource.fields,
        **attributes.fields,
    }
    tenant = resource.tenant if attributes.tenant is None else attributes.tenant
    if tenant is not None:
        event["tenant_id"] = tenant
    _set_status(event, span)
    for field, found in attributes.content.items():
        event[field] = next(iter(found.values())) if len(found) == 1 else found
    return LlmSpan(span.trace_id, span.span_id, event, label(span))


def _check_id(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise Invalid(f"{name}: {len(value)} bytes, an OTLP {name} has {size}")
    if not any(value):
        raise Invalid(f"{name}: all zero, which OTLP reserves for 'no id'")


def _check_times(start: int, end: int) -> None:
    if start == 0:
        raise Invalid("start_time_unix_nano: 0, which OTLP reserves for 'not set'")
    if end < start:
        raise Invalid(f"end_time_unix_nano: {end} is before start_time_unix_nano {start}")


def _set_status(event: dict[str, Any], span: Span) -> None:
    """``status`` from the span's status code (only ERROR is an error); ``error_type`` from
    ``error.type``, else the recorded exception's type, else the status message (cut short)."""
    if span.status.code != Status.STATUS_CODE_ERROR:
        event["status"] = "ok"
        return
    event["status"] = "error"
    if "error_type" not in event:
        error_type = _exception_type(span)
        if error_type is None and span.status.message:
            error_type = span.status.message[:_MAX_ERROR_MESSAGE]
        if error_type is not None:
            event["error_type"] = error_type


def _exception_type(span: Span) -> Any:
    for event in span.events:
        if event.name == _EXCEPTION_EVENT:
            for pair in event.attributes:
                if pair.key == _EXCEPTION_TYPE and (value := plain(pair.value)) is not None:
                    return value
    return None
