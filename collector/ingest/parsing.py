"""One trace line -> a ledger row, a skip, or a rejection with its reason.

This is the ingest hot path: JSON by orjson, validation by pydantic-core, the rest is a few
dictionary look-ups per event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from pydantic import ValidationError

from collector.clock import DEFAULT_RANGE, TimeRange, iso_us
from collector.ingest.content import ContentPolicy
from collector.ingest.pricing import SOURCE_TRACE, Pricer
from collector.timespec import to_us
from schemas.events import (
    ERROR_STATUSES,
    OK_STATUSES,
    LlmCall,
    ScoreEvent,
    without_control_characters,
)

BOM = b"\xef\xbb\xbf"
_MIN_US = to_us(datetime.min.replace(tzinfo=UTC))
_MAX_US = to_us(datetime.max.replace(tzinfo=UTC))


class Rejected(Exception):
    """A line that is not a valid event; the message is the quarantine reason."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one line became: ``kind`` is ``call``, ``score`` or ``skipped`` (row is None)."""

    kind: str
    row: tuple[Any, ...] | None


SKIPPED = Parsed("skipped", None)


def _validation_reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "line"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _timestamp_us(value: datetime, zone: ZoneInfo) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    ts_us = to_us(value)
    if not _MIN_US <= ts_us <= _MAX_US:  # e.g. 9999-12-31T23:59:59-14:00 is year 10000 in UTC
        raise Rejected(f"timestamp: {value.isoformat()} is outside the years 1 to 9999 in UTC")
    return ts_us


def _status(call: LlmCall) -> tuple[str, str | None]:
    """(ok or error, error_type): the field, else the ``error`` object's type or code, with
    control characters replaced here for both (the one place, whatever the source)."""
    error_type = call.error_type
    if error_type is None and isinstance(call.error, dict):
        error_type = call.error.get("type") or call.error.get("code")
        error_type = None if error_type is None else str(error_type)[:512]
    if error_type is not None:
        error_type = without_control_characters(error_type)
    if call.status is None:
        failed = error_type is not None or bool(call.error)
        return ("error" if failed else "ok"), error_type
    status = call.status.lower()
    if status in OK_STATUSES:
        return "ok", error_type
    if status in ERROR_STATUSES:
        return "error", error_type or (status if status in ("timeout", "cancelled") else None)
    raise Rejected(f"status: {call.status!r} is neither ok nor error (write ok or error)")


def _extra_json(extra: dict[str, Any] | None, error: Any) -> str | None:
    if error is not None and not isinstance(error, bool):
        extra = {**(extra or {}), "error": error}
    if not extra:
        return None
    return orjson.dumps(extra).decode()


class LineParser:
    """Turns raw lines into rows for one ingest process (holds the pricing cache)."""

    def __init__(
        self, pricer: Pricer, content: ContentPolicy, times: TimeRange = DEFAULT_RANGE
    ) -> None:
        self._pricer = pricer
        self._content = content
        self.times = times

    def parse(self, line: bytes, zone: ZoneInfo, stream_id: int) -> Parsed:
        """Parse one line (without its newline); raises `Rejected` with the reason."""
        if line.startswith(BOM):
            line = line[3:]
        if not line.strip():
            return SKIPPED
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise Rejected(f"invalid JSON: {error}") from None
        if not isinstance(data, dict):
            raise Rejected(f"not a JSON object but {type(data).__name__}")
        return self.parse_object(data, zone, stream_id)

    def parse_object(self, data: dict[str, Any], zone: ZoneInfo, stream_id: int) -> Parsed:
        """Parse one decoded event (a trace line's object, or one a receiver built from the
        same field names); raises `Rejected` with the reason."""
        kind = data.get("type", "llm_call")
        try:
            if kind == "llm_call":
                return Parsed("call", self._call_row(LlmCall.model_validate(data), zone, stream_id))
            if kind == "score":
                return Parsed(
                    "score", self._score_row(ScoreEvent.model_validate(data), zone, stream_id)
                )
        except ValidationError as error:
            raise Rejected(_validation_reason(error)) from None
        return SKIPPED

    def _call_row(self, call: LlmCall, zone: ZoneInfo, stream_id: int) -> tuple[Any, ...]:
        """The ledger's call row (`collector.ledger.events.CALL_COLUMNS`)."""
        if call.model is None:
            raise Rejected("model: required for an llm_call event")
        ts_us = self._accepted_us(call.timestamp, zone)
        status, error_type = _status(call)
        tokens_in = call.input_tokens
        tokens_out = call.output_tokens
        cache_read = call.cache_read_tokens
        cache_write = call.cache_write_tokens
        cached = (cache_read or 0) + (cache_write or 0)
        if cached and cached > (tokens_in or 0):
            raise Rejected(
                f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens "
                f"({tokens_in}); input_tokens must include cached tokens"
            )
        total = call.total_tokens
        if total is None and (tokens_in is not None or tokens_out is not None):
            total = (tokens_in or 0) + (tokens_out or 0)
        cost = call.cost_usd
        price_source: int | None = SOURCE_TRACE
        if cost is None and tokens_in is None and tokens_out is None:
            price_source = None  # nothing to price: unpriced, never a made-up $0
        elif cost is None:
            cost, price_source = self._pricer.cost(
                call.model,
                call.provider,
                ts_us,
                tokens_in or 0,
                tokens_out or 0,
                cache_read or 0,
                cache_write or 0,
            )
        latency = call.latency_ms
        if latency is None and call.latency_s is not None:
            latency = call.latency_s * 1000.0
        prompt, response = self._content.keep(call.prompt), self._content.keep(call.response)
        return (
            ts_us,
            call.model,
            call.provider,
            call.task_type,
            call.operation,
            status,
            error_type,
            tokens_in,
            tokens_out,
            total,
            cache_read,
            cache_write,
            call.reasoning_tokens,
            cost,
            price_source,
            latency,
            call.quality_score,
            call.tenant_id,
            call.user_id,
            call.session_id,
            call.agent_name,
            call.trace_id,
            call.call_id,
            _extra_json(self._content.apply(call.model_extra or {}), call.error),
            prompt,
            response,
            stream_id,
        )

    def _score_row(self, score: ScoreEvent, zone: ZoneInfo, stream_id: int) -> tuple[Any, ...]:
        """The ledger's score row (`collector.ledger.events.SCORE_COLUMNS`)."""
        return (
            self._accepted_us(score.timestamp, zone),
            score.name,
            score.value,
            score.model,
            score.task_type,
            score.scenario,
            score.tenant_id,
            score.trace_id,
            _extra_json(self._content.apply(score.model_extra or {}), None),
            stream_id,
        )

    def _accepted_us(self, value: datetime, zone: ZoneInfo) -> int:
        """The event time in UTC microseconds if the range accepts it; `Rejected` otherwise."""
        ts_us = _timestamp_us(value, zone)
        problem = self.times.outside(ts_us)
        if problem is not None:
            raise Rejected(f"timestamp: {iso_us(ts_us)} {problem}")
        return ts_us
