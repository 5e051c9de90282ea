"""Trace events: the input contract, one JSON object per line (see DESIGN.md).

The models accept the aliases real producers write (OpenAI ``usage``, OpenTelemetry
``gen_ai.*`` attributes, second-based durations); `collector.ingest.parsing` turns a validated
model into a ledger row and derives what the line left out.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, AliasPath, BaseModel, ConfigDict, Field, Strict

MAX_TOKENS = 10**12
"""Token counts above this are rejected as corrupt rather than summed into totals."""
MAX_COST_USD = 10**7
MAX_LATENCY_MS = 10**9

OK_STATUSES = frozenset({"ok", "success", "succeeded", "completed", "complete", "200"})
ERROR_STATUSES = frozenset(
    {"error", "failed", "failure", "fail", "timeout", "cancelled", "canceled", "exception"}
)


CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f"
"""Unicode category Cc as a regex character class: C0, DEL and C1."""
REPLACEMENT = "\ufffd"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def without_control_characters(text: str) -> str:
    """``text`` with each control character (NUL, newline, ...) replaced by U+FFFD.

    Dimension values become labels and InfluxDB tags, which cannot carry them; replacing keeps
    the event (its tokens and cost count) and leaves the damage visible, never merged into
    another value as removing would.
    """
    return text if text.isprintable() else _CONTROL.sub(REPLACEMENT, text)


# Identifiers may arrive as numbers: ``coerce_numbers_to_str`` stores them as text (not bools).
Text = Annotated[str, Field(max_length=512)]
Dimension = Annotated[Text, AfterValidator(without_control_characters)]
"""A field that can become a grouping dimension, an alert label or an InfluxDB tag."""
# Strict: JSON true/false is not a count or an amount (lax pydantic would read 1 or 0), and the
# check stays inside pydantic-core, off the Python hot path. Strict floats still accept ints.
Tokens = Annotated[int, Strict(), Field(ge=0, le=MAX_TOKENS)]
Cost = Annotated[float, Strict(), Field(ge=0, le=MAX_COST_USD)]
Milliseconds = Annotated[float, Strict(), Field(ge=0, le=MAX_LATENCY_MS)]
Seconds = Annotated[float, Strict(), Field(ge=0, le=MAX_LATENCY_MS / 1000)]
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]
ScoreValue = Annotated[float, Strict(), Field(ge=-(10**9), le=10**9)]


def _aliases(*names: str | AliasPath) -> AliasChoices:
    return AliasChoices(*names)


class _EventBase(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        allow_inf_nan=False,
        coerce_numbers_to_str=True,
        populate_by_name=True,
        frozen=True,
    )

    timestamp: datetime = Field(
        validation_alias=_aliases("timestamp", "ts", "time", "start_time", "@timestamp")
    )
    model: Dimension | None = Field(
        None,
        validation_alias=_aliases(
            "model", "gen_ai.response.model", "gen_ai.request.model", "model_name"
        ),
    )
    task_type: Dimension | None = None
    tenant_id: Dimension | None = None
    trace_id: Text | None = None


class LlmCall(_EventBase):
    """One model call (``type`` absent or ``llm_call``)."""

    type: Literal["llm_call"] = "llm_call"
    provider: Dimension | None = Field(
        None, validation_alias=_aliases("provider", "gen_ai.provider.name", "gen_ai.system")
    )
    operation: Dimension | None = Field(
        None, validation_alias=_aliases("operation", "gen_ai.operation.name")
    )
    input_tokens: Tokens | None = Field(
        None,
        validation_alias=_aliases(
            "input_tokens",
            "prompt_tokens",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            AliasPath("usage", "prompt_tokens"),
            AliasPath("usage", "input_tokens"),
        ),
    )
    output_tokens: Tokens | None = Field(
        None,
        validation_alias=_aliases(
            "output_tokens",
            "completion_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            AliasPath("usage", "completion_tokens"),
            AliasPath("usage", "output_tokens"),
        ),
    )
    total_tokens: Tokens | None = Field(
        None,
        validation_alias=_aliases(
            "total_tokens", "llm.usage.total_tokens", AliasPath("usage", "total_tokens")
        ),
    )
    cache_read_tokens: Tokens | None = Field(
        None,
        validation_alias=_aliases(
            "cache_read_tokens",
            "cached_tokens",
            "gen_ai.usage.cache_read.input_tokens",
            AliasPath("usage", "prompt_tokens_details", "cached_tokens"),
            AliasPath("usage", "input_tokens_details", "cached_tokens"),
        ),
    )
    cache_write_tokens: Tokens | None = Field(
        None,
        validation_alias=_aliases("cache_write_tokens", "gen_ai.usage.cache_creation.input_tokens"),
    )
    reasoning_tokens: Tokens | None = Field(
        None,
        validation_alias=_aliases(
            "reasoning_tokens",
            AliasPath("usage", "completion_tokens_details", "reasoning_tokens"),
            AliasPath("usage", "output_tokens_details", "reasoning_tokens"),
        ),
    )
    cost_usd: Cost | None = Field(None, validation_alias=_aliases("cost_usd", "cost"))
    latency_ms: Milliseconds | None = Field(
        None, validation_alias=_aliases("latency_ms", "duration_ms")
    )
    latency_s: Seconds | None = Field(
        None, validation_alias=_aliases("latency_s", "duration_seconds", "duration_s")
    )
    status: Text | None = None
    # A dimension, but repaired by `collector.ingest.parsing`, which also takes it from ``error``.
    error_type: Text | None = Field(None, validation_alias=_aliases("error_type", "error.type"))
    error: Any = None
    user_id: Text | None = None
    session_id: Text | None = None
    agent_name: Dimension | None = None
    call_id: Text | None = None
    quality_score: Fraction | None = None
    prompt: Any = None
    response: Any = None


class ScoreEvent(_EventBase):
    """A quality or feedback value attached to a trace, task or model (``type: score``)."""

    type: Literal["score"]
    name: Dimension
    value: ScoreValue
    scenario: Text | None = None


EventType = Literal["llm_call", "score"]
