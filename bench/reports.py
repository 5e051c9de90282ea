"""Report benchmark: the monthly report over 30 days of 1,000,000 calls a day, from the tiers.

    python bench/reports.py [--per-day 1000000] [--out DIR]

30M raw events are not generated: a report never reads raw events of a closed month, it reads
tier rows. So the tiers are filled as the rollup would leave them: a few real hours of
``--per-day / 24`` calls (times a diurnal factor; the same generator as bench/rollup.py) are
ingested into a scratch ledger and rolled by `collector.tiers.rollup.Roller` into 1h rows with their
latency sketches; those rows, hour after hour, fill the 1h tier from August to November 2026
(each local hour takes the sampled hour of its time of day) through `collector.tiers.store
.write_window`; the Roller rolls them into 1d and 1mo, and retention deletes what its defaults
would have (1h older than 30 days). Then ``llm-collector report monthly --date 2026-11-15`` runs
as a child process: its wall clock and peak RSS are printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

# the repository first: this directory's reports.py would shadow the reports package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollup import template  # bench/rollup.py (this script's directory is on sys.path)

from collector.ledger.connection import Batch, Ledger
from collector.tiers.marks import mark_dirty, mark_written
from collector.tiers.retention import Retention
from collector.tiers.rollup import ROLLED_TIERS, Roller
from collector.tiers.store import (
    Aggregate,
    Group,
    count_after,
    merge_rows,
    read_window_rows,
    write_window,
)
from collector.tiers.windows import HOUR_US, Calendar
from collector.timespec import to_us
from schemas.config import CollectorConfig

ZONE = ZoneInfo("Europe/Berlin")
DIMENSIONS = CollectorConfig().dimensions
FIRST, END = date(2026, 8, 1), date(2026, 12, 1)
"""Four months of tiers: November is reported, August to October are its trailing average."""
DIURNAL = (0.35, 0.25, 0.2, 0.2, 0.25, 0.4, 0.7, 1.0, 1.3, 1.5, 1.6, 1.6,
           1.5, 1.55, 1.6, 1.55, 1.45, 1.3, 1.1, 0.95, 0.8, 0.65, 0.5, 0.4)  # fmt: skip
"""Calls in each local hour of the day, relative to the mean (they average to 1)."""
SAMPLED = (0, 3, 6, 9, 12, 15, 18, 21)
"""Hours of the day that are generated and rolled for real; the others reuse the nearest."""
ROOT = Path(__file__).resolve().parent.parent

Window = dict[str, tuple[Group, Aggregate]]


def sample_hours(workdir: Path, per_day: int, seed: int) -> dict[int, Window]:
    """The 1h rows the rollup writes for one real hour at each `SAMPLED` hour of the day."""
    ledger = Ledger(workdir / "sample.db")
    stream = ledger.add_stream("bench", "trace.jsonl", 0, 0, 0, b"")
    roller = Roller(ledger.db, ZONE, DIMENSIONS)
    rng = random.Random(seed)
    windows: dict[int, Window] = {}
    for offset, hour in enumerate(SAMPLED):
        start = to_us(datetime(2026, 7, 1, hour, tzinfo=ZONE))
        calls, scores = template(rng, round(per_day / 24 * DIURNAL[hour]), HOUR_US)
        calls = [(start + row[0], *row[1:]) for row in calls]
        scores = [(start + ts, name, value, model, task, None, None, None, None, 1)
                  for ts, name, value, model, task in scores]  # fmt: skip
        ledger.commit(stream, Batch(calls=calls, scores=scores), offset + 1, mark_written)
        roller.roll(start + HOUR_US)
        windows[hour] = merge_rows(read_window_rows(ledger.db, "1h", start, start + HOUR_US))
    ledger.close()
    return windows


def fill(path: Path, windows: dict[int, Window]) -> dict[str, int]:
    """1h rows for every hour from FIRST to END, then 1d and 1mo rolled, then retention."""
    ledger = Ledger(path)
    db = ledger.db
    calendar = Calendar(ZONE)
    day = FIRST
    while day < END:
        start = to_us(datetime(day.year, day.month, day.day, tzinfo=ZONE))
        with ledger.transaction():
            window = calendar.hour(start)
            while window.start_us < calendar.day(start).end_us:
                local = datetime.fromtimestamp(window.start_us / 1e6, ZONE).hour
                nearest = max(h for h in SAMPLED if h <= local)
                write_window(db, "1h", window.start_us, window.end_us, windows[nearest])
                window = calendar.hour(window.end_us)
            mark_dirty(db, "1d", start)
        day += timedelta(days=1)
    roller = Roller(db, ZONE, DIMENSIONS)
    now = to_us(datetime(END.year, END.month, END.day, 3, tzinfo=ZONE))
    roller.roll(now)
    Retention(roller, CollectorConfig().tiers.retention).expire(now)
    counts = {tier: rows for tier in ROLLED_TIERS if (rows := count_after(db, tier, 0))}
    ledger.close()
    return counts


def run_report(workdir: Path, ledger: Path) -> dict[str, float]:
    """``llm-collector report monthly`` for November as a child: wall s, CPU s, peak RSS MB."""
    config = workdir / "collector.yaml"
    config.write_text(f"timezone: {ZONE.key}\nledger: {{path: '{ledger}'}}\n")
    command = [sys.executable, "-c", "from collector.cli.main import main; main()", "report",
               "monthly", "--date", "2026-11-15", "--config", str(config),
               "--out", str(workdir / "out")]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)  # not child.wait(): wait4 gives its rusage
    wall = time.perf_counter() - started
    if status != 0 or b"2026-11.md" not in output:
        raise SystemExit(f"report failed (status {status}): {output.decode()}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024}  # fmt: skip


def build(workdir: Path, per_day: int, seed: int) -> None:
    """Sample and fill, in a child process so that this one stays small (a child's peak RSS
    starts at its parent's); the row counts go to ``counts.json``."""
    windows = sample_hours(workdir, per_day, seed)
    counts = {"tiers": fill(workdir / "ledger.db", windows)}
    counts["per_hour"] = sorted(len(w) for w in windows.values())
    (workdir / "counts.json").write_text(json.dumps(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--out", type=Path, help="keep the ledger and the report here")
    parser.add_argument("--runs", type=int, default=3, help="report runs (the median is shown)")
    args = parser.parse_args()
    workdir = args.out or Path(tempfile.mkdtemp(prefix="bench-reports-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        builder = multiprocessing.get_context("spawn").Process(
            target=build, args=(workdir, args.per_day, args.seed)
        )
        builder.start()
        builder.join()
        built_counts = json.loads((workdir / "counts.json").read_text())
        counts, per_hour = built_counts["tiers"], built_counts["per_hour"]
        built = time.perf_counter() - started
        runs = sorted((run_report(workdir, workdir / "ledger.db") for _ in range(args.runs)),
                      key=lambda r: r["wall_s"])  # fmt: skip
    finally:
        if args.out is None:
            shutil.rmtree(workdir)
    result = runs[len(runs) // 2]
    print(f"{args.per_day:,} calls a day (+~2% scores), zone {ZONE.key}, dimensions {DIMENSIONS}")
    print(f"1h rows per hour (rolled from real hours): {per_hour[0]}..{per_hour[-1]}")
    print("tier rows in the ledger: " + ", ".join(f"{t} {n:,}" for t, n in sorted(counts.items())))
    print(f"tiers filled in {built:.1f} s\n")
    print("llm-collector report monthly --date 2026-11-15 (November 2026: 30 days),"
          f" median of {len(runs)} runs (fastest {runs[0]['wall_s']:.2f} s)")  # fmt: skip
    print(f"  wall clock  {result['wall_s']:6.2f} s  (child process, start-up and charts included)")
    print(f"  CPU         {result['cpu_s']:6.2f} s")
    print(f"  peak RSS    {result['rss_mb']:6.1f} MB")


if __name__ == "__main__":
    main()
