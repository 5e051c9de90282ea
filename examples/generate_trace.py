"""Writes a realistic synthetic trace: `python examples/generate_trace.py OUT [--lines N]`.

Two days of traffic with a daily rhythm, several models, providers, task types and tenants,
some errors and rate limits, cached tokens, quality scores, producer aliases (OpenAI ``usage``,
OpenTelemetry ``gen_ai.*``, second-based durations) and a few malformed lines. The same seed
gives the same file; ``examples/trace.jsonl`` is its output with the defaults.
"""

from __future__ import annotations

import argparse
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

MODELS = (
    # model, provider, share, mean latency ms, mean input tokens, mean output tokens
    ("gpt-4o-mini", "openai", 0.34, 700, 900, 180),
    ("gpt-4o", "openai", 0.14, 1600, 1800, 350),
    ("claude-sonnet-4-5", "anthropic", 0.16, 2100, 2400, 500),
    ("claude-3-5-haiku-latest", "anthropic", 0.12, 800, 1100, 200),
    ("gemini-2.5-flash", "google", 0.14, 600, 1500, 260),
    ("gemini-2.5-pro", "google", 0.06, 2600, 3000, 700),
    ("acme-finetune-v3", "self-hosted", 0.04, 450, 600, 120),
)
TASKS = ("chat_reply", "summarize", "classify", "extract", "agent_step")
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
ERRORS = (("rate_limit", 0.5), ("timeout", 0.3), ("server_error", 0.2))
MALFORMED = (
    '{"timestamp": "2026-11-18T03:00:00Z", "model": "gpt-4o-mini", "input_tokens": 12',
    '{"timestamp": "2026-11-18T09:00:00Z", "model": "gpt-4o", "input_tokens": -40}',
    '{"timestamp": "yesterday-ish", "model": "gpt-4o-mini"}',
    '{"timestamp": "2026-11-18T15:00:00Z", "model": "gpt-4o", "latency_ms": NaN}',
    '["not", "an", "object"]',
)


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def _event(rng: random.Random, when: datetime, index: int) -> dict[str, object]:
    model, provider, _, latency, mean_in, mean_out = rng.choices(MODELS, [m[2] for m in MODELS])[0]
    task = rng.choice(TASKS)
    tokens_in = max(1, int(rng.lognormvariate(math.log(mean_in), 0.6)))
    tokens_out = max(1, int(rng.lognormvariate(math.log(mean_out), 0.5)))
    event: dict[str, object] = {
        "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "model": model,
        "provider": provider,
        "task_type": task,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "latency_ms": round(rng.lognormvariate(math.log(latency), 0.45), 1),
        "tenant_id": rng.choice(TENANTS),
        "user_id": f"u{rng.randrange(400)}",
        "trace_id": f"t{index:07d}",
        "call_id": f"c{index:07d}",
    }
    if rng.random() < 0.3:
        event["cache_read_tokens"] = int(tokens_in * rng.uniform(0.2, 0.9))
    if rng.random() < 0.035:
        event["error_type"] = _pick(rng, ERRORS)
        event["status"] = "error"
        event["output_tokens"] = 0
    if rng.random() < 0.25:
        event["quality_score"] = round(min(1.0, max(0.0, rng.gauss(0.86, 0.08))), 3)
    if task == "agent_step":
        event["agent_name"] = rng.choice(("planner", "researcher"))
    if rng.random() < 0.1:
        event["config"] = {"temperature": rng.choice((0, 0.2, 0.7)), "max_tokens": 1024}
    return _alias(rng, event)


def _alias(rng: random.Random, event: dict[str, object]) -> dict[str, object]:
    """Rewrite some events the way other producers write them."""
    roll = rng.random()
    if roll < 0.08 and event["provider"] == "openai":
        usage = {
            "prompt_tokens": event.pop("input_tokens"),
            "completion_tokens": event.pop("output_tokens"),
        }
        if "cache_read_tokens" in event:
            usage["prompt_tokens_details"] = {"cached_tokens": event.pop("cache_read_tokens")}
        event["usage"] = usage
    elif roll < 0.14:
        event["gen_ai.request.model"] = event.pop("model")
        event["gen_ai.provider.name"] = event.pop("provider")
        event["gen_ai.usage.input_tokens"] = event.pop("input_tokens")
        event["gen_ai.usage.output_tokens"] = event.pop("output_tokens")
        event["duration_seconds"] = round(float(event.pop("latency_ms")) / 1000, 4)  # type: ignore[arg-type]
    return event


def _arrivals(rng: random.Random, start: datetime, lines: int, days: float) -> list[datetime]:
    """Timestamps in order, busier in the (UTC) afternoon than at night."""
    span = days * 86400
    times = []
    while len(times) < lines:
        offset = rng.uniform(0, span)
        hour = (offset / 3600) % 24
        if rng.random() < 0.35 + 0.65 * math.sin(math.pi * hour / 24) ** 2:
            times.append(offset)
    return [start + timedelta(seconds=t) for t in sorted(times)]


def generate(
    path: Path,
    lines: int = 4000,
    days: float = 2.0,
    seed: int = 7,
    start: datetime = datetime(2026, 11, 18, tzinfo=UTC),
) -> None:
    """Write ``lines`` events (plus scores and malformed lines) to ``path``."""
    rng = random.Random(seed)
    malformed_every = max(1, lines // len(MALFORMED))
    with path.open("wb") as out:
        for index, when in enumerate(_arrivals(rng, start, lines, days)):
            out.write(orjson.dumps(_event(rng, when, index)) + b"\n")
            if index % 97 == 0:
                score = {
                    "type": "score",
                    "timestamp": when.isoformat(),
                    "name": "user_feedback",
                    "value": rng.choice((0.0, 1.0, 1.0, 1.0)),
                    "trace_id": f"t{index:07d}",
                    "task_type": "chat_reply",
                }
                out.write(orjson.dumps(score) + b"\n")
            if index % malformed_every == malformed_every // 2:
                out.write(MALFORMED[(index // malformed_every) % len(MALFORMED)].encode() + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--lines", type=int, default=4000)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    generate(args.out, args.lines, args.days, args.seed)


if __name__ == "__main__":
    main()
