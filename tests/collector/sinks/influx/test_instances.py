"""Two collectors on two ledgers write one server: the ``instance`` tag keeps every point of both.

VictoriaMetrics runs with ``-dedup.minScrapeInterval=1ms``: one sample per series and
millisecond survives, as InfluxDB keeps one point per measurement, tag set and timestamp. The
two traces collide on purpose (same timestamps, tag values, rollup windows and ledger row ids);
only their values and lengths differ.
"""

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import yaml

from collector.tiers.store import tier_rows_after
from tests.collector.victoria import VictoriaMetrics, export

CLI = [sys.executable, "-c", "from collector.cli.main import main; main()"]
ROLLUP_TIERS = ("1h", "1d", "1mo")
HOUR_START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
T0 = HOUR_START - timedelta(days=100, minutes=30)  # the calls cross an hour's end
MODELS = (("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic"))
TASKS = ("chat", "summarize", "classify")


def calls(count: int, base_tokens: int) -> list[dict]:
    """A call every 61 s from T0; another trace of the same length collides with it."""
    events = []
    for i in range(count):
        model, provider = MODELS[i % len(MODELS)]
        events.append(
            {
                "timestamp": (T0 + timedelta(seconds=61 * i)).isoformat(),
                "model": model,
                "provider": provider,
                "task_type": TASKS[i % len(TASKS)],
                "input_tokens": base_tokens + i,
                "output_tokens": 10,
                "cost_usd": 0.001,
                "latency_ms": 100.0 + i,
                "call_id": f"call-{i}",
            }
        )
    return events


def run(*args: str, cwd) -> str:
    done = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def ship(tmp_path, instance: str, url: str, events: list[dict]) -> sqlite3.Connection:
    """One collector: ingest its trace, roll every tier, send it all; returns its ledger."""
    home = tmp_path / instance
    home.mkdir()
    (home / "trace.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    config = {
        "sources": [{"path": "trace.jsonl"}],
        "ledger": {"path": "ledger.db"},
        "quarantine": {"path": "quarantine.jsonl"},
        "ingest": {"parse_workers": 0},
        "tiers": {"retention": {"raw": "forever"}},
        "influx": {
            "url": url,
            "org": "llm",
            "token": "t",
            "create_buckets": False,
            "instance": instance,
        },
    }
    (home / "c.yaml").write_text(yaml.safe_dump(config))
    run("ingest", "--config", "c.yaml", cwd=home)
    until = (T0 + timedelta(days=40)).isoformat()  # every window of the trace has ended
    rolled = json.loads(run("rollup", "--config", "c.yaml", "--until", until, "--json", cwd=home))
    assert all(rolled[tier]["rows"] for tier in ROLLUP_TIERS)
    run("ingest", "--config", "c.yaml", cwd=home)  # waits until the outbox is empty
    state = json.loads(run("status", "--config", "c.yaml", "--json", cwd=home))
    assert set(state["influx"]["pending"].values()) == {0}
    return sqlite3.connect(home / "ledger.db")


def tier_sums(db: sqlite3.Connection, tier: str) -> Counter:
    """count and input_tokens summed over a ledger tier's rows."""
    sums: Counter = Counter()
    for row in tier_rows_after(db, tier, 0, 100_000):
        sums.update({name: row["metrics"][name] for name in ("count", "input_tokens")})
    return sums


def server_sums(url: str, tier: str) -> Counter:
    """The same sums over the server's ``llm_rollup`` points of a tier, every instance."""
    return Counter(
        {
            name: int(
                sum(p.value for p in export(url, f"llm_rollup_{name}") if p.labels["tier"] == tier)
            )
            for name in ("count", "input_tokens")
        }
    )


def test_two_collectors_sharing_a_server_keep_each_others_points(tmp_path):
    first, second = calls(60, 100), calls(80, 5000)  # the first 60 collide
    with VictoriaMetrics(tmp_path / "vm", flags=("-dedup.minScrapeInterval=1ms",)) as vm:
        ledgers = [
            ship(tmp_path, "host-a", vm.url, first),
            ship(tmp_path, "host-b", vm.url, second),
        ]
        try:
            for tier in ROLLUP_TIERS:
                both = tier_sums(ledgers[0], tier) + tier_sums(ledgers[1], tier)
                assert both["count"] == len(first) + len(second)
                assert server_sums(vm.url, tier) == both, tier
            rollups = export(vm.url, "llm_rollup_count")
            assert {p.labels["instance"] for p in rollups} == {"host-a", "host-b"}

            raw = export(vm.url, "llm_call_input_tokens")  # no raw point lost to a collision
            assert len(raw) == len(first) + len(second)
            assert Counter((p.labels["instance"], p.value) for p in raw) == Counter(
                [("host-a", e["input_tokens"]) for e in first]
                + [("host-b", e["input_tokens"]) for e in second]
            )
        finally:
            for ledger in ledgers:
                ledger.close()
