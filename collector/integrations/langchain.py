"""A LangChain callback handler that records every LLM and chat-model call: to a trace file
through `collector.trace.TraceWriter`, or as OpenTelemetry GenAI spans that the application's
OpenTelemetry SDK exports to the collector's OTLP receiver (docs/send-from-your-app.md).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from collector.trace import CallFields, TraceWriter, default_writer

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, LLMResult
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError(
        "collector.integrations.langchain needs langchain-core: "
        "pip install 'llm-metrics-collector[langchain]'"
    ) from error

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

log = logging.getLogger(__name__)

METADATA_FIELDS = ("tenant_id", "user_id", "session_id", "agent_name", "task_type")
"""Keys of a run's metadata (``config={"metadata": {...}}``) recorded as the call's fields."""


@dataclass
class _Run:
    """An LLM run between its start and its end."""

    started_at: datetime
    start: float
    operation: str
    request_model: str | None
    provider: str | None
    trace_id: str
    metadata: dict[str, str]
    span: Span | None = None


@dataclass
class _Outcome:
    """What the end of a run tells: its response model, usage, error and duration."""

    latency_ms: float
    response_model: str | None = None
    usage: CallFields = field(default_factory=CallFields)
    error_type: str | None = None


class _Output(Protocol):
    def started(self, run: _Run) -> None: ...

    def finished(self, run: _Run, call_id: str, outcome: _Outcome) -> None: ...


class _FileOutput:
    """One trace line per call, written when the call ends."""

    def __init__(self, writer: TraceWriter) -> None:
        self.writer = writer

    def started(self, run: _Run) -> None:
        pass

    def finished(self, run: _Run, call_id: str, outcome: _Outcome) -> None:
        model = outcome.response_model or run.request_model or "unknown"
        fields: CallFields = {
            "timestamp": run.started_at,
            "provider": run.provider,
            "operation": run.operation,
            "latency_ms": outcome.latency_ms,
            "status": "ok" if outcome.error_type is None else "error",
            "error_type": outcome.error_type,
            "trace_id": run.trace_id,
            "call_id": call_id,
            "tenant_id": run.metadata.get("tenant_id"),
            "user_id": run.metadata.get("user_id"),
            "session_id": run.metadata.get("session_id"),
            "agent_name": run.metadata.get("agent_name"),
            "task_type": run.metadata.get("task_type"),
        }
        try:
            self.writer.record(model, **(fields | outcome.usage))
        except (TypeError, ValueError) as error:  # counts the collector refuses: keep the call
            log.warning("%s reported usage the collector refuses: %s", model, error)
            self.writer.record(model, **(fields | {"extra": {"usage_refused": str(error)}}))


_SPAN_ATTRIBUTES = {
    "tenant_id": "tenant_id",  # the receiver's default receivers.otlp tenant attribute
    "user_id": "user.id",
    "session_id": "session.id",
    "agent_name": "gen_ai.agent.name",
}
"""The metadata a span carries, under the attribute names the OTLP receiver reads."""


class _SpanOutput:
    """One OpenTelemetry span per call (GenAI semantic conventions), from start to end."""

    def __init__(self, tracer_provider: TracerProvider | None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as error:
            raise ImportError(
                "TraceCallbackHandler(otel=True) needs opentelemetry-api "
                "(with opentelemetry-sdk and an OTLP exporter to send the spans)"
            ) from error
        self._trace = trace
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)

    def started(self, run: _Run) -> None:
        attributes = {"gen_ai.operation.name": run.operation}
        for key, value in run.metadata.items():
            if key in _SPAN_ATTRIBUTES:
                attributes[_SPAN_ATTRIBUTES[key]] = value
        if run.request_model:
            attributes["gen_ai.request.model"] = run.request_model
        if run.provider:
            attributes["gen_ai.provider.name"] = run.provider
        name = f"{run.operation} {run.request_model}" if run.request_model else run.operation
        run.span = self._tracer.start_span(
            name, kind=self._trace.SpanKind.CLIENT, attributes=attributes
        )

    def finished(self, run: _Run, call_id: str, outcome: _Outcome) -> None:
        span = run.span
        assert span is not None
        if outcome.response_model:
            span.set_attribute("gen_ai.response.model", outcome.response_model)
        usage = outcome.usage
        counts = {
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
            "gen_ai.usage.cache_read.input_tokens": usage.get("cache_read_tokens"),
            "gen_ai.usage.cache_creation.input_tokens": usage.get("cache_write_tokens"),
            "gen_ai.usage.reasoning.output_tokens": usage.get("reasoning_tokens"),
        }
        for attribute, value in counts.items():
            if value is not None:
                span.set_attribute(attribute, value)
        if outcome.error_type is not None:
            span.set_attribute("error.type", outcome.error_type)
            span.set_status(self._trace.StatusCode.ERROR, outcome.error_type)
        span.end()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _request_model(
    serialized: dict[str, Any] | None, metadata: dict[str, Any], params: dict[str, Any]
) -> str | None:
    """The model asked for: LangChain's ``ls_model_name``, else the invocation parameters,
    else the serialized constructor arguments."""
    constructor = (serialized or {}).get("kwargs") or {}
    candidates = (
        metadata.get("ls_model_name"),
        *(params.get(key) for key in ("model", "model_name", "model_id")),
        *(constructor.get(key) for key in ("model", "model_name", "model_id")),
    )
    return next((m for m in map(_text, candidates) if m), None)


def _response_model(response: LLMResult) -> str | None:
    output = response.llm_output or {}
    candidates = [output.get("model_name"), output.get("model")]
    for message in _messages(response):
        candidates += [message.response_metadata.get(k) for k in ("model_name", "model")]
    return next((m for m in map(_text, candidates) if m), None)


def _messages(response: LLMResult) -> list[AIMessage]:
    return [
        generation.message
        for generations in response.generations
        for generation in generations
        if isinstance(generation, ChatGeneration) and isinstance(generation.message, AIMessage)
    ]


def _usage(response: LLMResult) -> CallFields:
    """Token counts: the messages' ``usage_metadata`` (LangChain's standard), else the
    provider's ``llm_output["token_usage"]`` (OpenAI's names) or ``["usage"]``."""
    usages = [m.usage_metadata for m in _messages(response) if m.usage_metadata]
    if usages:
        inputs = [u.get("input_token_details") or {} for u in usages]
        outputs = [u.get("output_token_details") or {} for u in usages]
        return CallFields(
            input_tokens=sum(u["input_tokens"] for u in usages),
            output_tokens=sum(u["output_tokens"] for u in usages),
            cache_read_tokens=_sum(d.get("cache_read") for d in inputs),
            cache_write_tokens=_sum(d.get("cache_creation") for d in inputs),
            reasoning_tokens=_sum(d.get("reasoning") for d in outputs),
        )
    output = response.llm_output or {}
    usage = output.get("token_usage") or output.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return CallFields(
        input_tokens=usage.get("prompt_tokens", usage.get("input_tokens")),
        output_tokens=usage.get("completion_tokens", usage.get("output_tokens")),
        cache_read_tokens=details.get("cached_tokens"),
    )


def _sum(values: Any) -> int | None:
    counts = [v for v in values if v is not None]
    return sum(counts) if counts else None


class TraceCallbackHandler(BaseCallbackHandler):
    """Records every LLM and chat-model call LangChain makes.

    ``TraceCallbackHandler(writer)`` writes trace lines through ``writer`` (the default
    writer of ``LLM_COLLECTOR_TRACE_FILE`` when None); ``TraceCallbackHandler(otel=True)``
    makes OpenTelemetry spans instead, with the global tracer provider or ``tracer_provider``.
    """

    def __init__(
        self,
        writer: TraceWriter | None = None,
        *,
        otel: bool = False,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if otel and writer is not None:
            raise ValueError("give a writer or otel=True, not both")
        if tracer_provider is not None and not otel:
            raise ValueError("tracer_provider is for otel=True")
        self._output: _Output = (
            _SpanOutput(tracer_provider) if otel else _FileOutput(writer or default_writer())
        )
        self._lock = threading.Lock()
        self._runs: dict[UUID, _Run] = {}
        self._roots: dict[UUID, UUID] = {}  # every open run's root, for the trace id

    # ----- LLM runs ------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start("chat", serialized, run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start("text_completion", serialized, run_id, parent_run_id, metadata, kwargs)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._finish(run_id, response, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._finish(run_id, kwargs.get("response"), error)

    def _start(
        self,
        operation: str,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        metadata = metadata or {}
        run = _Run(
            started_at=datetime.now(UTC),
            start=perf_counter(),
            operation=operation,
            request_model=_request_model(
                serialized, metadata, kwargs.get("invocation_params") or {}
            ),
            provider=_text(metadata.get("ls_provider")),
            trace_id=str(self._root(run_id, parent_run_id)),
            metadata={k: str(metadata[k]) for k in METADATA_FIELDS if metadata.get(k) is not None},
        )
        self._output.started(run)
        with self._lock:
            self._runs[run_id] = run

    def _finish(
        self, run_id: UUID, response: LLMResult | None, error: BaseException | None
    ) -> None:
        ended = perf_counter()
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return  # started before this handler was attached
        outcome = _Outcome(
            (ended - run.start) * 1000.0,
            error_type=None if error is None else type(error).__name__,
        )
        if response is not None:
            outcome.response_model = _response_model(response)
            outcome.usage = _usage(response)
        self._output.finished(run, str(run_id), outcome)

    # ----- the other runs, for the root of each LLM run (its trace id) -------------------

    def _root(self, run_id: UUID, parent_run_id: UUID | None) -> UUID:
        with self._lock:
            return (
                run_id if parent_run_id is None else self._roots.get(parent_run_id, parent_run_id)
            )

    def _enter(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        root = self._root(run_id, parent_run_id)
        with self._lock:
            self._roots[run_id] = root

    def _leave(self, run_id: UUID) -> None:
        with self._lock:
            self._roots.pop(run_id, None)

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._enter(run_id, parent_run_id)

    def on_tool_start(
        self,
        serialized: Any,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._enter(run_id, parent_run_id)

    def on_retriever_start(
        self,
        serialized: Any,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._enter(run_id, parent_run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)
