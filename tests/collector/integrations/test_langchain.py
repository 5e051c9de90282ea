"""The LangChain handler on langchain-core's own fake models: the trace lines the collector
reads, and the OpenTelemetry spans the real SDK records."""

import asyncio
import json
import threading
import uuid
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult, Generation, LLMResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import Field

from collector import trace
from collector.integrations import langchain as integration
from collector.integrations.langchain import TraceCallbackHandler
from collector.ledger.events import CALL_COLUMNS
from collector.receivers.otlp.spans import SpanMapping, decode_request
from collector.trace import TraceWriter
from tests.collector.receivers.otlp_bodies import protobuf_body
from tests.collector.test_trace import PARSER, UTC_ZONE, modules_loaded_by, row

USAGE = {
    "input_tokens": 1200,
    "output_tokens": 300,
    "total_tokens": 1500,
    "input_token_details": {"cache_read": 400},
    "output_token_details": {"reasoning": 100},
}

METADATA = {
    "tenant_id": "acme",
    "user_id": "u-7",
    "session_id": "s-1",
    "agent_name": "support",
    "task_type": "faq",
}


def reply(model="gpt-4o-mini-2024-07-18", **usage) -> AIMessage:
    return AIMessage(
        content="hello", usage_metadata=USAGE | usage, response_metadata={"model_name": model}
    )


class FakeAPIError(Exception):
    pass


class ScriptedChat(BaseChatModel):
    """A chat model named like OpenAI's: "fail" in the prompt raises, and a run can be held
    at ``gates[text]`` (entered, release) until the test releases it."""

    model_name: str = "gpt-4o-mini"
    gates: dict[str, tuple[threading.Event, threading.Event]] = Field(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> Any:
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "openai"}

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        text = messages[-1].content
        if "fail" in text:
            raise FakeAPIError("rate limited")
        if text in self.gates:
            entered, release = self.gates[text]
            entered.set()
            assert release.wait(timeout=30)
        usage = {"input_tokens": 1000 * len(text)} if text != "odd" else {"input_tokens": 10}
        return ChatResult(generations=[ChatGeneration(message=reply(**usage))])


class CompletionLLM(BaseLLM):
    """A text-completion model reporting usage the OpenAI way, in ``llm_output``."""

    @property
    def _llm_type(self) -> str:
        return "completion"

    def _generate(self, prompts: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        return LLMResult(
            generations=[[Generation(text="done")] for _ in prompts],
            llm_output={
                "model_name": "gpt-3.5-turbo-instruct",
                "token_usage": {
                    "prompt_tokens": 50,
                    "completion_tokens": 7,
                    "total_tokens": 57,
                    "prompt_tokens_details": {"cached_tokens": 20},
                },
            },
        )


@pytest.fixture
def clock(monkeypatch):
    """The handler's perf_counter, in seconds, moved by the test."""
    now = [100.0]
    monkeypatch.setattr(integration, "perf_counter", lambda: now[0])
    return now


@pytest.fixture
def writer(tmp_path):
    with TraceWriter(tmp_path / "trace.jsonl") as writer:
        yield writer


def rows(writer) -> list[dict]:
    return [row(line) for line in writer.path.read_bytes().splitlines()]


def test_a_chat_call_in_a_chain_becomes_one_line_with_tokens_model_and_ids(writer, clock):
    """The model runs inside a sequence inside a parallel step: its trace id is the root's."""
    model = GenericFakeChatModel(messages=iter([reply()]))
    chain = RunnableParallel(answer=ChatPromptTemplate.from_messages([("human", "{q}")]) | model)
    root = uuid.uuid4()
    result = chain.invoke(
        {"q": "hi"},
        config={
            "callbacks": [TraceCallbackHandler(writer)],
            "run_id": root,
            "metadata": METADATA | {"user_id": 42, "x": "not recorded"},
        },
    )
    assert result["answer"].content == "hello"
    (got,) = rows(writer)
    assert got["model"] == "gpt-4o-mini-2024-07-18"  # the response's model, more exact
    assert got["provider"] == "genericfakechatmodel"  # what LangChain names it
    assert got["operation"] == "chat"
    assert (got["input_tokens"], got["output_tokens"], got["total_tokens"]) == (1200, 300, 1500)
    assert (got["cache_read_tokens"], got["reasoning_tokens"]) == (400, 100)
    assert got["cost_usd"] > 0  # priced from the tokens
    assert got["latency_ms"] == 0.0  # the fake clock did not move
    assert got["status"] == "ok"
    assert (got["tenant_id"], got["user_id"], got["session_id"]) == ("acme", "42", "s-1")
    assert (got["agent_name"], got["task_type"]) == ("support", "faq")
    assert got["trace_id"] == str(root)
    assert uuid.UUID(got["call_id"]) != root
    assert got["extra"] is None


def test_an_error_is_recorded_with_the_exceptions_class_and_still_raised(writer, clock):
    model = ScriptedChat()
    with pytest.raises(FakeAPIError):
        model.invoke("please fail", config={"callbacks": [TraceCallbackHandler(writer)]})
    (got,) = rows(writer)
    assert (got["model"], got["provider"]) == ("gpt-4o-mini", "openai")
    assert (got["status"], got["error_type"]) == ("error", "FakeAPIError")
    assert got["input_tokens"] is None


def test_async_calls_each_get_their_own_line(writer, clock):
    model = ScriptedChat()
    handler = TraceCallbackHandler(writer)
    questions = ["a", "bb", "ccc", "dddd"]
    run_ids = [uuid.uuid4() for _ in questions]

    async def ask_all():
        return await asyncio.gather(
            *(
                model.ainvoke(q, config={"callbacks": [handler], "run_id": run_id})
                for q, run_id in zip(questions, run_ids, strict=True)
            )
        )

    asyncio.run(ask_all())
    got = {r["call_id"]: r for r in rows(writer)}
    assert set(got) == {str(run_id) for run_id in run_ids}
    for question, run_id in zip(questions, run_ids, strict=True):
        assert got[str(run_id)]["input_tokens"] == 1000 * len(question)
        assert got[str(run_id)]["trace_id"] == str(run_id)  # a run of its own is its root
        assert got[str(run_id)]["model"] == "gpt-4o-mini-2024-07-18"


def test_the_latency_of_overlapping_calls_is_kept_per_run(writer, clock):
    """A starts at 100 s, B at 110 s; B ends at 110.5 s, A at 113 s."""
    gates = {name: (threading.Event(), threading.Event()) for name in ("A", "B")}
    model = ScriptedChat(gates=gates)
    handler = TraceCallbackHandler(writer)
    ids = {name: uuid.uuid4() for name in gates}

    def ask(name):
        model.invoke(name, config={"callbacks": [handler], "run_id": ids[name]})

    threads = {name: threading.Thread(target=ask, args=(name,)) for name in gates}
    threads["A"].start()
    assert gates["A"][0].wait(timeout=30)
    clock[0] = 110.0
    threads["B"].start()
    assert gates["B"][0].wait(timeout=30)
    clock[0] = 110.5
    gates["B"][1].set()
    threads["B"].join()
    clock[0] = 113.0
    gates["A"][1].set()
    threads["A"].join()
    latency = {r["call_id"]: r["latency_ms"] for r in rows(writer)}
    assert latency == {str(ids["A"]): 13000.0, str(ids["B"]): 500.0}


def test_usage_the_collector_would_refuse_keeps_the_call_without_counts(writer, clock):
    """10 input tokens of which 400 cached cannot be: the call is recorded, and why."""
    ScriptedChat().invoke("odd", config={"callbacks": [TraceCallbackHandler(writer)]})
    (got,) = rows(writer)
    assert (got["model"], got["status"], got["input_tokens"], got["cost_usd"]) == (
        "gpt-4o-mini-2024-07-18",
        "ok",
        None,
        None,
    )
    assert "exceed input_tokens" in json.loads(got["extra"])["usage_refused"]


def test_a_completion_model_reports_usage_in_llm_output(writer, clock):
    CompletionLLM().invoke("2 + 2 =", config={"callbacks": [TraceCallbackHandler(writer)]})
    (got,) = rows(writer)
    assert (got["model"], got["operation"]) == ("gpt-3.5-turbo-instruct", "text_completion")
    assert (got["input_tokens"], got["output_tokens"], got["cache_read_tokens"]) == (50, 7, 20)


def test_without_a_writer_the_handler_writes_to_the_default_file(tmp_path, monkeypatch):
    monkeypatch.setattr(trace, "_default", None)
    monkeypatch.setenv(trace.ENV_VAR, str(tmp_path / "trace.jsonl"))
    ScriptedChat().invoke("hi", config={"callbacks": [TraceCallbackHandler()]})
    trace.default_writer().close()
    (got,) = [row(line) for line in (tmp_path / "trace.jsonl").read_bytes().splitlines()]
    assert got["input_tokens"] == 2000


def test_a_writer_and_otel_are_exclusive(writer):
    with pytest.raises(ValueError, match="not both"):
        TraceCallbackHandler(writer, otel=True)
    with pytest.raises(ValueError, match="tracer_provider is for otel=True"):
        TraceCallbackHandler(writer, tracer_provider=TracerProvider())


def test_importing_the_handler_loads_no_opentelemetry_and_no_collector_internals():
    loaded = modules_loaded_by("collector.integrations.langchain")
    assert {m for m in loaded if m.startswith(("collector", "schemas"))} == {
        "collector",
        "collector.trace",
        "collector.integrations",
        "collector.integrations.langchain",
    }
    assert not any(m.startswith("opentelemetry") for m in loaded)


# ----- OpenTelemetry spans ----------------------------------------------------------------


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_otel_mode_makes_a_genai_span_per_call_under_the_current_span(spans):
    provider, exporter = spans
    handler = TraceCallbackHandler(otel=True, tracer_provider=provider)
    model = ScriptedChat()
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        model.invoke("hello", config={"callbacks": [handler], "metadata": METADATA})
        asyncio.run(model.ainvoke("hi", config={"callbacks": [handler]}))
    sync_span, async_span, _ = exporter.get_finished_spans()
    assert sync_span.name == "chat gpt-4o-mini"
    assert sync_span.kind is SpanKind.CLIENT
    assert dict(sync_span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 5000,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 400,
        "gen_ai.usage.reasoning.output_tokens": 100,
        "tenant_id": "acme",
        "user.id": "u-7",
        "session.id": "s-1",
        "gen_ai.agent.name": "support",
    }
    assert sync_span.status.status_code is StatusCode.UNSET
    assert async_span.attributes["gen_ai.usage.input_tokens"] == 2000
    for span in (sync_span, async_span):
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.end_time > span.start_time


def test_otel_mode_marks_a_failed_call(spans):
    provider, exporter = spans
    handler = TraceCallbackHandler(otel=True, tracer_provider=provider)
    with pytest.raises(FakeAPIError):
        ScriptedChat().invoke("fail now", config={"callbacks": [handler]})
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "FakeAPIError"
    assert "gen_ai.usage.input_tokens" not in span.attributes


def test_otel_mode_spans_become_the_same_call_rows_through_the_receivers_decoding(spans):
    """What the handler emits is what the OTLP receiver reads: the span, encoded by the real
    exporter's encoder and decoded by the receiver, parses to the call the writer would write."""
    provider, exporter = spans
    handler = TraceCallbackHandler(otel=True, tracer_provider=provider)
    ScriptedChat().invoke("hello", config={"callbacks": [handler], "metadata": METADATA})
    with pytest.raises(FakeAPIError):
        ScriptedChat().invoke("fail now", config={"callbacks": [handler]})
    decoded = decode_request(
        protobuf_body(exporter.get_finished_spans()), "application/x-protobuf", SpanMapping()
    )
    assert (decoded.skipped, decoded.invalid) == (0, [])
    ok, failed = (
        dict(zip(CALL_COLUMNS, PARSER.parse_object(span.event, UTC_ZONE, 1).row, strict=True))
        for span in decoded.calls
    )
    assert ok["model"] == "gpt-4o-mini-2024-07-18"
    assert (ok["provider"], ok["status"]) == ("openai", "ok")
    assert (ok["input_tokens"], ok["output_tokens"], ok["cache_read_tokens"]) == (5000, 300, 400)
    assert (ok["tenant_id"], ok["user_id"], ok["session_id"]) == ("acme", "u-7", "s-1")
    assert ok["agent_name"] == "support"
    assert ok["cost_usd"] > 0 and ok["latency_ms"] >= 0
    assert (failed["status"], failed["error_type"]) == ("error", "FakeAPIError")
