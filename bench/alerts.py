"""Alert evaluation: 50 rules over a ledger holding N events in the last hour.

The first pass loads the rules' spans into the alert cache; each later pass adds the events of
its 15 s (N per hour) first, as the daemon sees them. Prints seconds per pass (best and median
of --passes) against the 1 s target, the first pass, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.engine import Engine
from alerting.outbox import Outbox
from alerting.rules import load_rules
from collector.ledger.connection import Ledger
from collector.ledger.events import CALL_COLUMNS, insert
from collector.readers.alerts.cache import AlertCache
from schemas.alerting import RootRoute
from schemas.rules import RulesFile

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "gemini-pro", "local"]
TASKS = ["chat", "search", "summarise", "classify", "extract", "agent"]
PASS_US = 15_000_000
HOUR_US = 3_600_000_000
SHIPPED = Path(__file__).resolve().parent.parent / "examples" / "rules.yaml"


def fill(ledger: Ledger, events: int, now_us: int, seed: int, span_us: int = 3_600_000_000) -> None:
    """``events`` calls spread over ``span_us`` before ``now_us``, in time order as a trace is."""
    rng = random.Random(seed)
    times = sorted(now_us - rng.randrange(span_us) for _ in range(events))
    batch = []
    for ts in times:
        model = rng.choice(MODELS)
        error = rng.random() < 0.03
        tokens_in, tokens_out = rng.randint(50, 4000), rng.randint(10, 1000)
        row = dict.fromkeys(CALL_COLUMNS)
        row.update(
            ts_us=ts,
            model=model,
            provider="p",
            task_type=rng.choice(TASKS),
            status="error" if error else "ok",
            error_type="rate_limit" if error else None,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            total_tokens=tokens_in + tokens_out,
            cost_usd=None if model == "local" else tokens_in * 2e-6,
            price_source=None if model == "local" else 1,
            latency_ms=rng.lognormvariate(6.5, 0.6),
            quality_score=rng.random() if rng.random() < 0.15 else None,
            tenant_id=f"t{rng.randrange(12)}",
            stream_id=0,
        )
        batch.append(tuple(row.values()))
        if len(batch) == 50_000:
            with ledger.transaction() as db:
                insert(db, "calls", batch)
            batch.clear()
    with ledger.transaction() as db:
        insert(db, "calls", batch)


def fifty_rules() -> RulesFile:
    """The 12 shipped rules, and variants of them per task type, to 50."""
    shipped = load_rules(SHIPPED).rules
    rules = list(shipped)
    index = 0
    while len(rules) < 50:
        base = shipped[index % len(shipped)]
        task = TASKS[(index // len(shipped)) % len(TASKS)]
        rules.append(
            base.model_copy(
                update={
                    "name": f"{base.name}_{task}_{index}",
                    "where": base.where | {"task_type": task},
                }
            )
        )
        index += 1
    return RulesFile(rules=rules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20260302)
    args = parser.parse_args()
    now_us = time.time_ns() // 1000
    with tempfile.TemporaryDirectory() as directory:
        ledger = Ledger(Path(directory) / "ledger.db")
        started = time.perf_counter()
        fill(ledger, args.events, now_us, args.seed)
        filled = time.perf_counter() - started
        rules = fifty_rules().rules
        engine = Engine(
            rules, ledger.db, AlertCache(ledger.db), Outbox(RootRoute()), ZoneInfo("UTC")
        )
        started = time.perf_counter()
        engine.evaluate(now_us)
        first = time.perf_counter() - started
        seconds = []
        for n in range(1, args.passes + 1):
            now = now_us + n * PASS_US
            fill(ledger, args.events * PASS_US // HOUR_US, now, args.seed + n, PASS_US)
            started = time.perf_counter()
            result = engine.evaluate(now)
            seconds.append(time.perf_counter() - started)
        ledger.close()
    best, median = min(seconds), statistics.median(seconds)
    print(f"ledger: {args.events:,} events in the last hour (written in {filled:.1f} s)")
    print(
        f"rules: {len(rules)}; last pass: {len(result.firing)} firing, "
        f"{len(result.pending)} pending, {len(result.errors)} errors"
    )
    print(f"{'metric':30} {'value':>10}  target   result")
    print(f"{'evaluation pass, best':30} {best:>8.2f} s  <= 1 s   {'OK' if best <= 1 else 'MISS'}")
    print(f"{'evaluation pass, median':30} {median:>8.2f} s")
    print(f"{'first pass (loads the spans)':30} {first:>8.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak RSS':30} {peak:>8.1f} MB")


if __name__ == "__main__":
    main()
