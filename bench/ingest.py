"""Ingest benchmark: a realistic trace, orjson parse-only speed, then `llm-collector ingest`.

    python bench/ingest.py [--lines N] [--out DIR] [--trace FILE] [--seed S]

Generates a seeded trace of N lines (default 1,000,000; ~2 days of ordered timestamps), times
reading it with bare ``orjson.loads`` (best of 3), then runs ``llm-collector ingest --json`` on
it as a child process against a fresh ledger and reports events/s, the ingest/parse ratio and
the child's peak RSS against the targets. With ``--out`` the trace, config, ledger and
quarantine stay in DIR (``--trace`` reuses a trace instead of generating one); without it
everything goes to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

TARGET_EVENTS_PER_S = 100_000
TARGET_RATIO = 0.09
TARGET_RSS_MB = 200
START = datetime(2025, 6, 2, tzinfo=UTC).timestamp()
SPAN_S = 2 * 86_400

# provider, model, weight, median input tokens, median output tokens, median latency ms
MODELS = (
    ("openai", "gpt-4o", 20, 1800, 350, 1400),
    ("openai", "gpt-4o-mini", 26, 1200, 250, 700),
    ("openai", "o3-mini", 6, 2500, 900, 6000),
    ("anthropic", "claude-sonnet-4-20250514", 15, 3000, 500, 2200),
    ("anthropic", "claude-3-5-haiku-20241022", 10, 1500, 300, 900),
    ("google", "gemini-2.0-flash", 13, 2000, 300, 600),
    ("google", "gemini-2.5-pro", 5, 4000, 700, 3500),
    ("acme", "acme-llm-70b-instruct", 5, 1000, 250, 1800),  # unknown to genai-prices
)
MODEL_WEIGHTS = [m[2] for m in MODELS]
TASKS = ("chat", "summarize", "classify", "extract", "rag_answer", "code_review")
TASK_WEIGHTS = (35, 15, 15, 10, 20, 5)
TENANTS = tuple(f"tenant-{i:02d}" for i in range(12))
TENANT_WEIGHTS = tuple(1 / (i + 1) for i in range(12))
ERROR_TYPES = ("rate_limit", "timeout", "server_error", "context_length_exceeded")
AGENTS = ("planner", "retriever", "writer", None, None)


@dataclass
class Expected:
    """What the generator wrote, so the ingest counts can be checked."""

    lines: int = 0
    events: int = 0
    quarantined: int = 0
    skipped: int = 0


@dataclass
class Generator:
    """A seeded producer of trace lines in three dialects plus scores, skips and bad lines."""

    rng: random.Random
    lines: int
    expected: Expected = field(default_factory=Expected)

    def _iso(self, ts: float, *, naive: bool = False) -> str:
        text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
        return text[:-6] if naive else text[:-6] + "Z"

    def _call(self, ts: float) -> dict:
        rng = self.rng
        provider, model, _, med_in, med_out, med_lat = rng.choices(MODELS, MODEL_WEIGHTS)[0]
        failed = rng.random() < 0.03
        tokens_in = max(1, int(rng.lognormvariate(0, 0.8) * med_in))
        tokens_out = 0 if failed else max(1, int(rng.lognormvariate(0, 0.7) * med_out))
        cached = int(tokens_in * rng.uniform(0.2, 0.9)) if rng.random() < 0.3 else 0
        return {
            "ts": ts,
            "provider": provider,
            "model": model,
            "task_type": rng.choices(TASKS, TASK_WEIGHTS)[0],
            "tenant_id": rng.choices(TENANTS, TENANT_WEIGHTS)[0],
            "user_id": f"u-{rng.randrange(5000):05d}",
            "session_id": f"s-{rng.randrange(200_000):06x}",
            "trace_id": f"{rng.getrandbits(128):032x}",
            "agent": rng.choice(AGENTS),
            "failed": failed,
            "error_type": rng.choice(ERROR_TYPES) if failed else None,
            "in": tokens_in,
            "out": tokens_out,
            "cached": cached,
            "reasoning": int(tokens_out * 0.6) if model == "o3-mini" else None,
            "latency_ms": round(rng.lognormvariate(0, 0.5) * med_lat, 1),
            "quality": round(rng.betavariate(8, 2), 3) if rng.random() < 0.15 else None,
        }

    def _canonical(self, c: dict) -> dict:
        line = {
            "timestamp": self._iso(c["ts"], naive=self.rng.random() < 0.05),
            "type": "llm_call",
            "model": c["model"],
            "provider": c["provider"],
            "task_type": c["task_type"],
            "operation": "chat",
            "status": "error" if c["failed"] else ("ok" if self.rng.random() < 0.9 else "success"),
            "input_tokens": c["in"],
            "output_tokens": c["out"],
            "latency_ms": c["latency_ms"],
            "tenant_id": c["tenant_id"],
            "user_id": c["user_id"],
            "session_id": c["session_id"],
            "trace_id": c["trace_id"],
            "call_id": f"{c['trace_id'][:16]}-{self.rng.randrange(8)}",
        }
        if c["cached"]:
            line["cache_read_tokens"] = c["cached"]
        if c["error_type"]:
            line["error_type"] = c["error_type"]
        if c["reasoning"] is not None:
            line["reasoning_tokens"] = c["reasoning"]
        if c["quality"] is not None:
            line["quality_score"] = c["quality"]
        if c["agent"]:
            line["agent_name"] = c["agent"]
        if self.rng.random() < 0.05:
            line["cost_usd"] = round(c["in"] * 2.5e-6 + c["out"] * 1e-5, 6)
        if self.rng.random() < 0.2:
            line["app_version"] = "2.14.1"
            line["region"] = self.rng.choice(("eu-west-1", "us-east-1"))
        return line

    def _openai_usage(self, c: dict) -> dict:
        usage = {
            "prompt_tokens": c["in"],
            "completion_tokens": c["out"],
            "total_tokens": c["in"] + c["out"],
        }
        if c["cached"]:
            usage["prompt_tokens_details"] = {"cached_tokens": c["cached"]}
        if c["reasoning"] is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": c["reasoning"]}
        line = {
            "time": self._iso(c["ts"]),
            "model": c["model"],
            "provider": c["provider"],
            "task_type": c["task_type"],
            "usage": usage,
            "duration_ms": c["latency_ms"],
            "tenant_id": c["tenant_id"],
            "trace_id": c["trace_id"],
        }
        if c["failed"]:
            line["error"] = {"type": c["error_type"], "message": "upstream request failed"}
        return line

    def _gen_ai(self, c: dict) -> dict:
        line = {
            "start_time": self._iso(c["ts"]),
            "gen_ai.system": c["provider"],
            "gen_ai.request.model": c["model"],
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": c["in"],
            "gen_ai.usage.output_tokens": c["out"],
            "duration_seconds": round(c["latency_ms"] / 1000, 4),
            "task_type": c["task_type"],
            "tenant_id": c["tenant_id"],
            "trace_id": c["trace_id"],
            "status": "failed" if c["failed"] else "completed",
        }
        if c["cached"]:
            line["gen_ai.usage.cache_read.input_tokens"] = c["cached"]
        if c["failed"]:
            line["error.type"] = c["error_type"]
        return line

    def _score(self, ts: float) -> dict:
        rng = self.rng
        return {
            "type": "score",
            "timestamp": self._iso(ts),
            "name": rng.choice(("user_feedback", "groundedness", "helpfulness")),
            "value": round(rng.random(), 3),
            "model": rng.choices(MODELS, MODEL_WEIGHTS)[0][1],
            "task_type": rng.choices(TASKS, TASK_WEIGHTS)[0],
            "tenant_id": rng.choices(TENANTS, TENANT_WEIGHTS)[0],
            "trace_id": f"{rng.getrandbits(128):032x}",
        }

    def _malformed(self, ts: float, number: int) -> bytes:
        """One of seven kinds of bad line, each quarantined with its own reason."""
        good = self._canonical(self._call(ts))
        kind = number % 7
        if kind == 0:
            raw = orjson.dumps(good)
            return raw[: len(raw) // 2]
        if kind == 1:
            return b'["not", "an", "object"]'
        if kind == 2:
            del good["timestamp"]
        elif kind == 3:
            good["input_tokens"] = -5
        elif kind == 4:
            good["cache_read_tokens"] = good["input_tokens"] + 10
        elif kind == 5:
            good["status"] = "maybe"
        else:
            del good["model"]
        return orjson.dumps(good)

    def line(self, ts: float) -> bytes:
        roll = self.rng.random()
        if roll < 0.00025:
            self.expected.quarantined += 1
            return self._malformed(ts, self.expected.quarantined)
        if roll < 0.0015:
            self.expected.skipped += 1
            return b"" if roll < 0.0005 else orjson.dumps({"type": "span", "timestamp": ts})
        self.expected.events += 1
        if roll < 0.02:
            return orjson.dumps(self._score(ts))
        call = self._call(ts)
        if roll < 0.12:
            return orjson.dumps(self._openai_usage(call))
        if roll < 0.22:
            return orjson.dumps(self._gen_ai(call))
        return orjson.dumps(self._canonical(call))

    def write(self, path: Path) -> Expected:
        step = SPAN_S / self.lines
        ts = START
        with path.open("wb") as file:
            chunk: list[bytes] = []
            for _ in range(self.lines):
                ts += self.rng.expovariate(1 / step)
                chunk.append(self.line(ts))
                if len(chunk) == 10_000:
                    file.write(b"\n".join(chunk) + b"\n")
                    chunk.clear()
            if chunk:
                file.write(b"\n".join(chunk) + b"\n")
        self.expected.lines = self.lines
        return self.expected


@dataclass
class ParseRun:
    lines: int
    seconds: float  # best wall clock of the repeats
    cpu_seconds: float  # best CPU time (user + system) of the repeats

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


def parse_only(path: Path, repeat: int = 3) -> ParseRun:
    """Read the file line by line and `orjson.loads` each line; the best of ``repeat`` runs."""
    best = ParseRun(0, float("inf"), float("inf"))
    for _ in range(repeat):
        lines = 0
        started, started_cpu = time.perf_counter(), time.process_time()
        with path.open("rb") as file:
            for line in file:
                lines += 1
                try:  # noqa: SIM105 - contextlib.suppress would slow the loop being measured
                    orjson.loads(line)
                except orjson.JSONDecodeError:
                    pass
        seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        best = ParseRun(lines, min(best.seconds, seconds), min(best.cpu_seconds, cpu))
    return best


def _command() -> list[str]:
    script = Path(sys.executable).with_name("llm-collector")
    if script.exists():
        return [str(script)]
    found = shutil.which("llm-collector")
    if found:
        return [found]
    return [sys.executable, "-c", "from collector.cli.main import main; main()"]


@dataclass
class IngestRun:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    counts: dict[str, int]


def run_ingest(trace: Path, work: Path) -> IngestRun:
    """`llm-collector ingest --json` on a fresh ledger; wall clock and the child's peak RSS."""
    ledger, quarantine = work / "ledger.db", work / "quarantine.jsonl"
    for stale in (ledger, quarantine, Path(f"{ledger}-wal"), Path(f"{ledger}-shm")):
        stale.unlink(missing_ok=True)
    config = work / "bench-collector.yaml"
    config.write_text(
        f"timezone: UTC\nsources: []\nledger:\n  path: {ledger}\n"
        f"quarantine:\n  path: {quarantine}\n"
    )
    stdout, stderr = work / "ingest.stdout", work / "ingest.stderr"
    command = [*_command(), "ingest", "--json", "--config", str(config), str(trace)]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"ingest failed ({child.returncode}):\n{stderr.read_text()[-4000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return IngestRun(seconds, cpu, usage.ru_maxrss / 1024, orjson.loads(stdout.read_bytes()))


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(parse: ParseRun, run: IngestRun, expected: Expected | None) -> None:
    events = run.counts["events"]
    rate = events / run.seconds
    ratio = rate / parse.rate
    cpu_rate = events / run.cpu_seconds
    cpu_ratio = cpu_rate / (parse.lines / parse.cpu_seconds)
    rss = run.peak_rss_mb
    rows = [
        ("parse-only (orjson)", f"{parse.rate:,.0f} lines/s", ""),
        ("ingest", f"{rate:,.0f} events/s", f">= {TARGET_EVENTS_PER_S:,}"),
        ("ratio ingest/parse", f"{ratio:.3f}", f">= {TARGET_RATIO}"),
        ("peak RSS", f"{rss:,.1f} MB", f"<= {TARGET_RSS_MB} MB"),
        ("ingest wall clock", f"{run.seconds:,.2f} s", ""),
        ("ingest CPU (usr+sys)", f"{run.cpu_seconds:,.2f} s", ""),
        ("ingest per CPU-s", f"{cpu_rate:,.0f} events/s", ""),
        ("ratio by CPU time", f"{cpu_ratio:.3f}", ""),
    ]
    verdicts = {
        "ingest": rate >= TARGET_EVENTS_PER_S,
        "ratio ingest/parse": ratio >= TARGET_RATIO,
        "peak RSS": rss <= TARGET_RSS_MB,
    }
    print(f"\n{'metric':<22}{'value':>20}  {'target':<12}result")
    for name, value, target in rows:
        verdict = _verdict(verdicts[name]) if name in verdicts else ""
        print(f"{name:<22}{value:>20}  {target:<12}{verdict}")
    print()
    for key in ("lines", "events", "quarantined", "skipped"):
        want = "" if expected is None else f"  (generated {getattr(expected, key):,})"
        print(f"{key:<22}{run.counts[key]:>20,}{want}")


def generate(lines: int, seed: int, path: Path) -> Expected:
    """Write the trace from a child process so this one stays small.

    A child starts with its parent's resident pages, and its peak RSS with them: spawned from a
    parent that had just generated a million lines, `llm-collector` would be charged ~95 MB.
    """
    command = [sys.executable, __file__, "--generate-only", "--trace", str(path)]
    command += ["--lines", str(lines), "--seed", str(seed)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE)
    return Expected(**orjson.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, help="keep the trace, ledger etc. here")
    parser.add_argument("--trace", type=Path, help="reuse this trace instead of generating")
    parser.add_argument("--seed", type=int, default=20250602)
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        expected = Generator(random.Random(args.seed), args.lines).write(args.trace)
        print(orjson.dumps(asdict(expected)).decode())
        return
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        expected = None
        trace = args.trace
        if trace is None:
            trace = work / "trace.jsonl"
            started = time.perf_counter()
            expected = generate(args.lines, args.seed, trace)
            took = time.perf_counter() - started
            print(f"generated {args.lines:,} lines in {took:.1f} s -> {trace}")
        print(f"trace: {trace.stat().st_size / 2**20:,.1f} MiB")
        parse = parse_only(trace)
        run = run_ingest(trace, work)
        report(parse, run, expected)
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
