"""Rollup benchmark: days of backfilled history rolled into the 1h, 1d and 1mo tiers.

    python bench/rollup.py [--days 30] [--per-day 1000000] [--small-days 10] [--out DIR]

For each of two ledgers (``--small-days`` and ``--days`` of history, ``--per-day`` calls a day
plus ~2% score events, ending two days into a month so that a month closes), it backfills the
rows into the ledger as ingest commits them (their hours marked pending), then runs
``llm-collector rollup --json`` as a child process and reports seconds per day of data for the
1h tier and for 1d + 1mo (target <= 10 s), and the child's peak RSS: the same for both sizes
means memory does not grow with the number of days.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

# the repository first: this directory's reports.py would shadow the reports package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.ledger.connection import Batch, Ledger
from collector.ledger.events import CALL_COLUMNS
from collector.tiers.marks import mark_written
from collector.timespec import to_us

TARGET_S_PER_DAY = 10.0
ZONE = "Europe/Berlin"
END = datetime(2026, 3, 3, tzinfo=ZoneInfo(ZONE))
DAY_US = 86_400_000_000
SLICES = 10
"""A day is generated as one slice, copied this many times."""

# provider, model, weight, median input tokens, median output tokens, median latency ms, $/Mtok
MODELS = (
    ("openai", "gpt-4o", 20, 1800, 350, 1400, 2.5),
    ("openai", "gpt-4o-mini", 26, 1200, 250, 700, 0.15),
    ("openai", "o3-mini", 6, 2500, 900, 6000, 1.1),
    ("anthropic", "claude-sonnet-4-20250514", 15, 3000, 500, 2200, 3.0),
    ("anthropic", "claude-3-5-haiku-20241022", 10, 1500, 300, 900, 0.8),
    ("google", "gemini-2.0-flash", 13, 2000, 300, 600, 0.1),
    ("google", "gemini-2.5-pro", 5, 4000, 700, 3500, 1.25),
    ("acme", "acme-llm-70b-instruct", 5, 1000, 250, 1800, None),  # unpriced
)
TASKS = ("chat", "summarize", "classify", "extract", "rag_answer", "code_review")
TASK_WEIGHTS = (35, 15, 15, 10, 20, 5)
TENANTS = tuple(f"tenant-{i:02d}" for i in range(12))
ERRORS = ("rate_limit", "timeout", "server_error")


def template(rng: random.Random, calls: int, span_us: int) -> tuple[list[tuple], list[tuple]]:
    """``calls`` calls over ``span_us`` (plus ~2% scores): realistic mixes and distributions."""
    rows, scores = [], []
    models = rng.choices(MODELS, [m[2] for m in MODELS], k=calls)
    for i, (provider, model, _, t_in, t_out, latency, price) in enumerate(models):
        ts = i * span_us // calls + rng.randrange(max(span_us // calls, 1))
        failed = rng.random() < 0.03
        tokens_in = int(rng.lognormvariate(math.log(t_in), 0.6))
        tokens_out = 0 if failed else int(rng.lognormvariate(math.log(t_out), 0.7))
        cost = None if price is None else (tokens_in * price + tokens_out * price * 4) / 1e6
        row = dict.fromkeys(CALL_COLUMNS)
        row.update(
            ts_us=ts,
            model=model,
            provider=provider,
            task_type=rng.choices(TASKS, TASK_WEIGHTS)[0],
            status="error" if failed else "ok",
            error_type=rng.choice(ERRORS) if failed else None,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            total_tokens=tokens_in + tokens_out,
            cache_read_tokens=int(tokens_in * rng.random()) if rng.random() < 0.3 else None,
            cost_usd=cost,
            price_source=None if cost is None else 1,
            latency_ms=rng.lognormvariate(math.log(latency), 0.5),
            quality_score=rng.random() if rng.random() < 0.15 else None,
            tenant_id=rng.choice(TENANTS),
            trace_id=f"t{i:08x}",
            call_id=f"c{i:08x}",
            stream_id=1,
        )
        rows.append(tuple(row[c] for c in CALL_COLUMNS))
        if rng.random() < 0.02:
            scores.append((ts + 1, "helpful", rng.random(), model, row["task_type"]))
    return rows, scores


def build(path: Path, days: int, per_day: int, seed: int) -> None:
    """Backfill ``days`` days ending at END as ingest writes them (`Ledger.commit`, which marks
    their hours pending): a generated slice of a day, copied with every copy's latencies
    jittered (so days differ)."""
    ledger = Ledger(path)
    stream = ledger.add_stream("bench", "trace.jsonl", 0, 0, 0, b"")
    span = DAY_US // SLICES
    rng = random.Random(seed)
    calls, scores = template(rng, max(per_day // SLICES, 1), span)
    latency = CALL_COLUMNS.index("latency_ms")
    first = to_us(END) - days * DAY_US
    for start in range(first, first + days * DAY_US, span):
        copied = [
            (row[0] + start, *row[1:latency],
             row[latency] * math.exp(rng.randrange(-999, 1000) / 5000), *row[latency + 1 :])
            for row in calls
        ]  # fmt: skip
        rated = [(ts + start, name, value, model, task, None, None, None, None, stream.id)
                 for ts, name, value, model, task in scores]  # fmt: skip
        batch = Batch(calls=copied, scores=rated)
        ledger.commit(stream, batch, stream.offset + 1, mark_written)
    ledger.close()


def measure(workdir: Path, days: int, per_day: int, seed: int) -> dict:
    """Build a ledger of ``days`` days in a child, then time ``llm-collector rollup`` on it."""
    ledger = workdir / f"ledger-{days}d.db"
    config = workdir / f"collector-{days}d.yaml"
    config.write_text(f"timezone: {ZONE}\nledger: {{path: '{ledger}'}}\n")
    started = time.perf_counter()
    builder = multiprocessing.get_context("spawn").Process(
        target=build, args=(ledger, days, per_day, seed)
    )
    builder.start()
    builder.join()
    backfill = time.perf_counter() - started
    command = [
        sys.executable,
        "-c",
        "from collector.cli.main import main; main()",
        "rollup",
        "--json",
        "--config",
        str(config),
        "--until",
        END.isoformat(),
    ]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"rollup failed with status {status}")
    tiers = orjson.loads(output)
    return {
        "days": days,
        "backfill_s": backfill,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "ledger_mb": ledger.stat().st_size / 1e6,
        "tiers": tiers,
    }


def report(results: list[dict], per_day: int) -> None:
    print(f"{per_day:,} calls a day (+~2% scores), zone {ZONE}, dimensions: config defaults\n")
    print(
        f"{'days':>5} {'backfill s':>11} {'1h s/day':>9} {'1d+1mo s/day':>13} {'wall s':>8}"
        f" {'CPU s':>7} {'peak RSS MB':>12} {'ledger MB':>10}  windows 1h/1d/1mo"
    )
    for r in results:
        t = r["tiers"]
        hourly = t["1h"]["seconds"] / r["days"]
        upper = (t["1d"]["seconds"] + t["1mo"]["seconds"]) / r["days"]
        windows = "/".join(str(t[tier]["windows"]) for tier in ("1h", "1d", "1mo"))
        print(
            f"{r['days']:>5} {r['backfill_s']:>11.1f} {hourly:>9.2f} {upper:>13.3f}"
            f" {r['wall_s']:>8.1f} {r['cpu_s']:>7.1f} {r['rss_mb']:>12.1f}"
            f" {r['ledger_mb']:>10.0f}  {windows}"
        )
    largest = results[-1]["tiers"]
    per_day_s = sum(largest[t]["seconds"] for t in largest) / results[-1]["days"]
    verdict = "PASS" if per_day_s <= TARGET_S_PER_DAY else "MISS"
    print(
        f"\nall tiers: {per_day_s:.2f} s per day of data (target <= {TARGET_S_PER_DAY}): {verdict}"
    )
    print("wall and CPU s include the child's start-up (imports, ~1 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--small-days", type=int, default=10, help="0 to skip the small run")
    parser.add_argument("--per-day", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--out", type=Path, help="keep the ledgers and configs in this directory")
    args = parser.parse_args()
    workdir = args.out or Path(tempfile.mkdtemp(prefix="bench-rollup-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = [d for d in (args.small_days, args.days) if d]
    try:
        results = [measure(workdir, days, args.per_day, args.seed) for days in sizes]
    finally:
        if args.out is None:
            shutil.rmtree(workdir)
    report(results, args.per_day)


if __name__ == "__main__":
    main()
