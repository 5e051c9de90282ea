"""Shared by the receiver tests: gen_ai spans made with the real OpenTelemetry SDK at times
relative to now, what the ledger should hold for them, and a receiver on a ledger in a
temporary directory with a clock the test moves."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from collector.ingest.content import ContentPolicy
from collector.ingest.quarantine import QuarantineFile
from collector.receivers.otlp.receiver import Receiver
from schemas.config import CollectorConfig
from tests.collector.receivers.otlp_bodies import Recorder

MODELS = ("gpt-4o-mini", "claude-sonnet-4-5")
PROTOBUF, JSON = "application/x-protobuf", "application/json"


@dataclass(frozen=True)
class Sent:
    """What one sent call span should become."""

    call_id: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    cost_usd: float


def start_ns(minutes_ago: float = 30) -> int:
    """A span start ``minutes_ago`` before now: inside the raw retention, never a fixed date."""
    return time.time_ns() - int(minutes_ago * 60e9)


def chat_spans(
    recorder: Recorder, count: int, *, first: int = 0, start: int | None = None
) -> list[Sent]:
    """``count`` finished chat spans on ``recorder``, each with its own model, tokens, cost
    and latency (span ``i`` lasts ``100 + i`` ms); what each should become."""
    begin = start_ns() if start is None else start
    sent = []
    for i in range(first, first + count):
        model = MODELS[i % 2]
        latency_ns = (100 + i) * 1_000_000
        cost = round(0.0001 * (i % 7 + 1), 6)
        span = recorder.tracer.start_span(f"chat {model}", start_time=begin + i * 1_000_000)
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai" if i % 2 == 0 else "anthropic",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": 100 + i,
                "gen_ai.usage.output_tokens": 10 + i % 5,
                "gen_ai.usage.cost": cost,
            }
        )
        span.end(end_time=begin + i * 1_000_000 + latency_ns)
        call_id = f"{span.get_span_context().span_id:016x}"
        sent.append(Sent(call_id, model, 100 + i, 10 + i % 5, latency_ns / 1e6, cost))
    return sent


def other_span(recorder: Recorder, name: str = "GET /orders") -> None:
    """A span that is not an LLM call."""
    with recorder.tracer.start_as_current_span(name):
        pass


def model_less_span(recorder: Recorder) -> str:
    """A chat span without a model: the parser rejects it. Its span id, in hex."""
    begin = start_ns()
    span = recorder.tracer.start_span("chat", start_time=begin)
    span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5})
    span.end(end_time=begin + 1_000_000)
    return f"{span.get_span_context().span_id:016x}"


def config_for(tmp_path, **extra) -> CollectorConfig:
    return CollectorConfig.model_validate(
        {
            "ledger": {"path": str(tmp_path / "ledger.db")},
            "quarantine": {"path": str(tmp_path / "quarantine.jsonl")},
            "receivers": {"otlp": {}},
            **extra,
        }
    )


class Rig:
    """A receiver on a ledger in ``tmp_path``, with a clock the test moves."""

    def __init__(self, tmp_path, **extra) -> None:
        self.tmp_path = tmp_path
        self.config = config_for(tmp_path, **extra)
        self.quarantine = QuarantineFile(
            self.config.quarantine.path, 4096, ContentPolicy(self.config.content)
        )
        self.now_us = time.time_ns() // 1000
        self.committed: list = []
        otlp = self.config.receivers.otlp
        assert otlp is not None
        self.receiver = Receiver(
            self.config, otlp, self.quarantine, on_commit=self.committed.append, clock_us=self.clock
        )

    def receive(self, body: bytes, content_type: str = PROTOBUF):
        """What the server does with a request's body: parse it, then store it."""
        return self.receiver.store(self.receiver.parse(body, content_type))

    def clock(self) -> int:
        return self.now_us

    def query(self, sql, *args):
        return self.receiver.ledger.db.execute(sql, args).fetchall()

    def call_ids(self) -> list[str]:
        return sorted(row[0] for row in self.query("SELECT call_id FROM calls"))

    def quarantined(self) -> list[dict]:
        path = self.config.quarantine.path
        return (
            [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []
        )

    def counts(self) -> tuple:
        return self.query(
            "SELECT lines, events, quarantined, skipped FROM streams WHERE state = 'receiver'"
        )[0]
