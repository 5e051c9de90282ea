"""Opt-in: the InfluxDB sink against a real InfluxDB 2.x (buckets, retention, writes, Flux).

Skipped unless ``LLM_COLLECTOR_TEST_INFLUX_URL``, ``LLM_COLLECTOR_TEST_INFLUX_TOKEN`` and
``LLM_COLLECTOR_TEST_INFLUX_ORG`` are set. The token must read, create, update and delete
buckets and write to them (an operator or all-access token of a scratch org). Every test
creates its own four tier buckets, named with a prefix unique to the run, and deletes them.
With a throw-away server::

    docker run -d -p 8086:8086 -e DOCKER_INFLUXDB_INIT_MODE=setup \\
      -e DOCKER_INFLUXDB_INIT_USERNAME=admin -e DOCKER_INFLUXDB_INIT_PASSWORD=change-me-please \\
      -e DOCKER_INFLUXDB_INIT_ORG=llm -e DOCKER_INFLUXDB_INIT_BUCKET=scratch \\
      -e DOCKER_INFLUXDB_INIT_ADMIN_TOKEN=dev-token influxdb:2
    LLM_COLLECTOR_TEST_INFLUX_URL=http://127.0.0.1:8086 LLM_COLLECTOR_TEST_INFLUX_TOKEN=dev-token \\
      LLM_COLLECTOR_TEST_INFLUX_ORG=llm python -m pytest tests/live -v
"""

import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import yaml

ENV = (
    "LLM_COLLECTOR_TEST_INFLUX_URL",
    "LLM_COLLECTOR_TEST_INFLUX_TOKEN",
    "LLM_COLLECTOR_TEST_INFLUX_ORG",
)
URL, TOKEN, ORG = (os.environ.get(name, "") for name in ENV)

pytestmark = pytest.mark.skipif(
    not (URL and TOKEN and ORG),
    reason="live InfluxDB suite: set " + ", ".join(ENV),
)

CLI = [sys.executable, "-c", "from collector.cli.main import main; main()"]
TIERS = ("raw", "1h", "1d", "1mo")
DAY = 86400
DEFAULT_RETENTION = {"raw": 7 * DAY, "1h": 30 * DAY, "1d": 365 * DAY, "1mo": 0}
DIMENSIONS = ("model", "provider", "task_type", "status")
INSTANCE = "live-test"
FLUX_COLUMNS = {"result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def influx(tmp_path):
    """(bucket names per tier, a client); the buckets are deleted afterwards."""
    from influxdb_client import InfluxDBClient

    prefix = f"llmc_test_{uuid.uuid4().hex[:10]}"
    buckets = {tier: f"{prefix}_{tier}" for tier in TIERS}
    client = InfluxDBClient(url=URL, token=TOKEN, org=ORG, timeout=30_000)
    try:
        yield buckets, client
    finally:
        api = client.buckets_api()
        for name in buckets.values():
            bucket = api.find_bucket_by_name(name)
            if bucket is not None:
                api.delete_bucket(bucket)
        client.close()


def write_config(tmp_path, buckets, instance=INSTANCE, **tiers):
    config = {
        "sources": [{"path": str(tmp_path / "logs" / "*.jsonl")}],
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "quarantine": {"path": str(tmp_path / "quarantine.jsonl")},
        "ingest": {"parse_workers": 0},
        "influx": {
            "url": URL,
            "org": ORG,
            "token": TOKEN,
            "buckets": buckets,
            "batch_size": 50,
            "instance": instance,
        },
    }
    if tiers:
        config["tiers"] = {"retention": tiers}
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_COLLECTOR_")}
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)
    assert TOKEN not in result.stdout + result.stderr
    return result


def retention(client, name):
    bucket = client.buckets_api().find_bucket_by_name(name)
    assert bucket is not None, f"bucket {name} missing"
    return next((r.every_seconds for r in bucket.retention_rules or [] if r.every_seconds), 0)


def test_setup_creates_the_tier_buckets_and_leaves_retention_alone_unless_asked(tmp_path, influx):
    buckets, client = influx
    config = write_config(tmp_path, buckets)

    result = cli("influx", "setup", "--config", config)

    assert result.returncode == 0, result.stderr
    assert {t: retention(client, buckets[t]) for t in TIERS} == DEFAULT_RETENTION

    api = client.buckets_api()
    hourly = api.find_bucket_by_name(buckets["1h"])
    hourly.retention_rules[0].every_seconds = 2 * DAY
    api.update_bucket(hourly)
    result = cli("influx", "setup", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "retention differs" in result.stdout
    assert retention(client, buckets["1h"]) == 2 * DAY

    result = cli("influx", "setup", "--apply-retention", "--config", config)
    assert result.returncode == 0, result.stderr
    assert retention(client, buckets["1h"]) == 30 * DAY
    assert {t: retention(client, buckets[t]) for t in TIERS} == DEFAULT_RETENTION


def events(now):
    """Recent calls (inside the raw retention), a same-instant same-tag pair, and scores."""
    start = now - timedelta(minutes=30)
    calls = []
    for i in range(120):
        model, provider = (("gpt-4o-mini", "openai"), ("acme-finetune-v3", "self-hosted"))[i % 2]
        call = {
            "timestamp": (start + timedelta(milliseconds=i * 700, microseconds=i)).isoformat(),
            "model": model,
            "provider": provider,
            "task_type": ("chat", "summarize", "classify")[i % 3],
            "input_tokens": 100 + i,
            "output_tokens": 7 + i % 50,
            "latency_ms": 100.0 + i,
            "user_id": f"user-{i % 9}",
            "trace_id": f"trace-{i}",
            "call_id": f"call-{i}",
        }
        if model == "gpt-4o-mini":
            call["cost_usd"] = 0.0001 * (i + 1)
        if i % 10 == 0:
            call["status"] = "error"
        calls.append(call)
    same = (start + timedelta(minutes=5, microseconds=123_456)).isoformat()
    for n, tokens in enumerate((5000, 6000)):
        calls.append(
            {
                "timestamp": same,
                "model": "gpt-4o-mini",
                "provider": "openai",
                "task_type": "chat",
                "input_tokens": tokens,
                "output_tokens": 1,
                "cost_usd": 0.01,
                "call_id": f"same-{n}",
            }
        )
    scores = [
        {
            "type": "score",
            "timestamp": (start + timedelta(seconds=i * 11)).isoformat(),
            "name": "user_feedback",
            "value": i / 10,
            "task_type": "chat",
            "trace_id": f"trace-{i}",
        }
        for i in range(10)
    ]
    return calls, scores


def us(ts):
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    return (ts - EPOCH) // timedelta(microseconds=1)


def query(client, flux):
    return [record for table in client.query_api().query(flux, org=ORG) for record in table]


def test_ingest_writes_every_event_and_flux_reads_them_back(tmp_path, influx):
    buckets, client = influx
    config = write_config(tmp_path, buckets)
    assert cli("influx", "setup", "--config", config).returncode == 0
    calls, scores = events(datetime.now(UTC))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "trace.jsonl").write_bytes(
        b"".join(orjson.dumps(e) + b"\n" for e in calls + scores)
    )

    result = cli("ingest", "--config", config, "--json")

    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["events"] == len(calls) + len(scores)
    raw = buckets["raw"]
    tokens = query(
        client,
        f'from(bucket: "{raw}") |> range(start: -2h) '
        '|> filter(fn: (r) => r._measurement == "llm_call" and r._field == "input_tokens")',
    )
    assert len(tokens) == len(calls)  # the same-instant pair included
    assert Counter((us(r.get_time()), r.get_value()) for r in tokens) == Counter(
        (us(c["timestamp"]), c["input_tokens"]) for c in calls
    )
    for record in tokens:
        assert isinstance(record.get_value(), int)
        assert set(record.values) - FLUX_COLUMNS == {*DIMENSIONS, "instance"}  # never an id
        assert record.values["instance"] == INSTANCE

    fields = query(
        client,
        f'from(bucket: "{raw}") |> range(start: -2h) '
        '|> filter(fn: (r) => r._measurement == "llm_call") '
        '|> group(columns: ["_field"]) |> count()',
    )
    counts = {r.values["_field"]: r.get_value() for r in fields}
    assert counts["error"] == counts["total_tokens"] == len(calls)
    assert counts["unpriced"] == sum("cost_usd" not in c for c in calls)
    assert counts["cost_usd"] == sum("cost_usd" in c for c in calls)
    errors = query(
        client,
        f'from(bucket: "{raw}") |> range(start: -2h) '
        '|> filter(fn: (r) => r._measurement == "llm_call" and r._field == "error") '
        "|> group() |> sum()",
    )
    assert errors[0].get_value() == sum(c.get("status") == "error" for c in calls)

    score_points = query(
        client,
        f'from(bucket: "{raw}") |> range(start: -2h) '
        '|> filter(fn: (r) => r._measurement == "llm_score" and r._field == "value")',
    )
    assert sorted((us(r.get_time()), r.get_value()) for r in score_points) == sorted(
        (us(s["timestamp"]), s["value"]) for s in scores
    )
    assert {r.values["name"] for r in score_points} == {"user_feedback"}

    # a replay (backfill, then ingest) overwrites: still one point per event
    assert cli("influx", "backfill", "--since", "-3h", "--config", config).returncode == 0
    assert cli("ingest", "--config", config, "--json").returncode == 0
    again = query(
        client,
        f'from(bucket: "{raw}") |> range(start: -2h) '
        '|> filter(fn: (r) => r._measurement == "llm_call" and r._field == "input_tokens") '
        "|> group() |> count()",
    )
    assert again[0].get_value() == len(calls)


def test_two_collectors_writing_the_same_buckets_keep_each_others_points(tmp_path, influx):
    """Same timestamps, tags, rollup windows and ledger row ids: only the instance tag tells
    the two collectors' points apart, and InfluxDB keeps one point per tag set and time."""
    buckets, client = influx
    now = datetime.now(UTC)
    calls, _ = events(now)
    until = (now + timedelta(days=40)).isoformat()  # every window of the trace has ended
    sent = {}
    for instance, extra in (("live-a", 0), ("live-b", 1000)):
        home = tmp_path / instance
        (home / "logs").mkdir(parents=True)
        config = write_config(home, buckets, instance=instance)
        assert cli("influx", "setup", "--config", config).returncode == 0
        trace = [{**c, "input_tokens": c["input_tokens"] + extra} for c in calls]
        (home / "logs" / "trace.jsonl").write_bytes(
            b"".join(orjson.dumps(e) + b"\n" for e in trace)
        )
        assert cli("ingest", "--config", config).returncode == 0
        assert cli("rollup", "--config", config, "--until", until).returncode == 0
        assert cli("ingest", "--config", config).returncode == 0  # sends the rollups
        sent[instance] = sum(e["input_tokens"] for e in trace)

    def total(bucket, measurement, field, start):
        rows = query(
            client,
            f'from(bucket: "{bucket}") |> range(start: {start}) '
            f'|> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "{field}") '
            "|> group() |> sum()",
        )
        return rows[0].get_value()

    raw = query(
        client,
        f'from(bucket: "{buckets["raw"]}") |> range(start: -2h) '
        '|> filter(fn: (r) => r._measurement == "llm_call" and r._field == "input_tokens") '
        '|> group(columns: ["instance"]) |> count()',
    )
    assert {r.values["instance"]: r.get_value() for r in raw} == dict.fromkeys(sent, len(calls))
    assert total(buckets["raw"], "llm_call", "input_tokens", "-2h") == sum(sent.values())
    for tier in ("1h", "1d", "1mo"):
        assert total(buckets[tier], "llm_rollup", "count", "-40d") == 2 * len(calls), tier
        assert total(buckets[tier], "llm_rollup", "input_tokens", "-40d") == sum(sent.values())
