"""The InfluxDB write path against a real server: VictoriaMetrics serves ``/api/v2/write`` and
we read every point back through its export API (series ``<measurement>_<field>``, millisecond
timestamps, same-timestamp duplicates kept, bucket ignored).

Sleeps here only wait for a server to come up or poll a condition with a deadline."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml

from collector.configfile import load_config
from collector.ingest.pipeline import build_tailer
from collector.ingest.tailing import Source, TailEnd
from collector.ledger.connection import Ledger
from collector.sinks.influx.lineprotocol import LineEncoder
from collector.sinks.influx.outbox import Outbox, raw_feeds
from collector.sinks.influx.writer import InfluxWriter
from tests.collector.victoria import VictoriaMetrics, export, metric_names

CLI = [sys.executable, "-c", "from collector.cli.main import main; main()"]
TOKEN = "vm-test-token"
INSTANCE = "collector-vm"
DIMENSIONS = ("model", "provider", "task_type", "status")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MODELS = (
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("acme-finetune-v3", "self-hosted"),  # not in any price list: unpriced
)
TASKS = ("chat", "summarize", "classify", "extract")
ID_FIELDS = ("user_id", "trace_id", "session_id", "tenant_id", "call_id")
SAME_INSTANT = T0 + timedelta(days=1, microseconds=123_999)
SAME_TAGS = {
    "instance": INSTANCE,
    "model": "gpt-4o-mini",
    "provider": "openai",
    "task_type": "chat",
    "status": "ok",
}


# ----- the trace and what it must become -------------------------------------------------


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def ts_ms(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(microseconds=1) // 1000


def call_event(i: int, **extra) -> dict:
    """A realistic llm_call with a unique call_id (and a unique timestamp unless given)."""
    model, provider = MODELS[i % len(MODELS)]
    event = {
        "timestamp": iso(T0 + timedelta(microseconds=i * 1_234_567 + i % 1000)),
        "model": model,
        "provider": provider,
        "task_type": TASKS[i % len(TASKS)],
        "input_tokens": 200 + (i * 37) % 4000,
        "output_tokens": 10 + (i * 13) % 700,
        "latency_ms": 100.0 + (i * 7919) % 5000 / 4,
        "user_id": f"user-{i % 23}",
        "trace_id": f"trace-{i:06d}",
        "session_id": f"sess-{i % 17}",
        "tenant_id": f"tenant-{i % 5}",
        "call_id": f"call-{i:06d}",
    }
    if model != "acme-finetune-v3":
        event["cost_usd"] = round(0.00001 * (1 + i % 997), 8)
    if i % 11 == 0:
        event.update(status="error", error_type="rate_limit")
    if i % 4 == 0:
        event.update(cache_read_tokens=(i * 3) % 150, reasoning_tokens=i % 90)
    if i % 8 == 0:
        event["cache_write_tokens"] = 25
    if i % 6 == 0:
        event["quality_score"] = round(i % 100 / 100, 2)
    event.update(extra)
    return event


def score_event(i: int) -> dict:
    event = {
        "type": "score",
        "timestamp": iso(T0 + timedelta(seconds=i * 7, microseconds=i)),
        "name": ("user_feedback", "helpfulness")[i % 2],
        "value": round((i % 10) / 10, 1),
        "task_type": TASKS[i % len(TASKS)],
        "trace_id": f"trace-{i:06d}",
        "tenant_id": f"tenant-{i % 5}",
        "scenario": f"scenario-{i % 3}",
    }
    if i % 2:
        event["model"] = MODELS[i % len(MODELS)][0]
    return event


def same_instant_pair() -> list[dict]:
    """Two calls at the same microsecond with the same tag values: both must survive."""
    base = {
        "timestamp": iso(SAME_INSTANT),
        "model": "gpt-4o-mini",
        "provider": "openai",
        "task_type": "chat",
        "output_tokens": 5,
        "cost_usd": 0.001,
        "latency_ms": 250.0,
    }
    return [
        {**base, "input_tokens": 111, "call_id": "same-1", "user_id": "u-1"},
        {**base, "input_tokens": 222, "call_id": "same-2", "user_id": "u-2"},
    ]


def norm(value) -> float:
    """VictoriaMetrics stores float64 through a decimal encoding: compare 12 digits."""
    return float(f"{float(value):.12g}")


def call_fields(event: dict) -> dict:
    """The llm_call fields a point must carry, as the collector derives them."""
    fields = {
        name: event[name]
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
            "latency_ms",
            "quality_score",
        )
        if name in event
    }
    fields["total_tokens"] = event["input_tokens"] + event["output_tokens"]
    fields["error"] = int(event.get("status") == "error")
    if "cost_usd" not in event:
        fields["unpriced"] = 1
    return fields


def expected_points(events: list[dict]) -> dict[str, Counter]:
    """Per VictoriaMetrics series name, the multiset of (labels, ms, value) to find there."""
    expected: dict[str, Counter] = {}
    for event in events:
        ms = ts_ms(datetime.fromisoformat(event["timestamp"]))
        if event.get("type") == "score":
            labels = {k: event[k] for k in ("name", "model", "task_type") if k in event}
            labels["instance"] = INSTANCE
            key = (tuple(sorted(labels.items())), ms, norm(event["value"]))
            expected.setdefault("llm_score_value", Counter())[key] += 1
            continue
        labels = {d: event[d] for d in DIMENSIONS if d != "status"}
        labels["status"] = event.get("status", "ok")
        labels["instance"] = INSTANCE
        for name, value in call_fields(event).items():
            key = (tuple(sorted(labels.items())), ms, norm(value))
            expected.setdefault(f"llm_call_{name}", Counter())[key] += 1
    return expected


def found(url: str, metric: str) -> Counter:
    return Counter(
        (tuple(sorted(p.labels.items())), p.ts_ms, norm(p.value)) for p in export(url, metric)
    )


def ts_and_tokens(events: list[dict]) -> Counter:
    return Counter(
        (ts_ms(datetime.fromisoformat(e["timestamp"])), e["input_tokens"]) for e in events
    )


def found_ts_and_tokens(url: str) -> Counter:
    return Counter((p.ts_ms, p.value) for p in export(url, "llm_call_input_tokens"))


# ----- files, processes, the ledger -------------------------------------------------------


def write_lines(path, events, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode + "b") as file:
        file.writelines(orjson.dumps(e) + b"\n" for e in events)


def write_config(tmp_path, influx_url, **influx):
    config = {
        "sources": [{"path": str(tmp_path / "logs" / "*.jsonl")}],
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "quarantine": {"path": str(tmp_path / "quarantine.jsonl")},
        "ingest": {
            "parse_workers": 0,
            "poll_interval": "50ms",
            "rescan_interval": "100ms",
            "status_interval": "200ms",
        },
        "tiers": {"retention": {"raw": "forever"}},  # the trace is old: send it all
        "influx": {
            "url": influx_url,
            "org": "llm",
            "token": TOKEN,
            "create_buckets": False,  # VictoriaMetrics has no buckets API
            "batch_size": 200,
            "timeout": "5s",
            "instance": INSTANCE,
            **influx,
        },
    }
    path = tmp_path / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def env():
    return {k: v for k, v in os.environ.items() if not k.startswith("LLM_COLLECTOR_")}


def cli(*args, timeout=60):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env(), timeout=timeout)


def ledger_state(path) -> dict:
    """Rows per table and each outbox cursor (0 before the first acknowledgement)."""
    if not path.exists():
        return {"calls": 0, "scores": 0}
    db = sqlite3.connect(path)
    try:
        state = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("calls", "scores")
        }
        state.update(db.execute("SELECT name, position FROM sink_cursors").fetchall())
        state["dead_letters"] = db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        return state
    except sqlite3.OperationalError:  # not created yet
        return {"calls": 0, "scores": 0}
    finally:
        db.close()


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def vm(tmp_path):
    with VictoriaMetrics(tmp_path / "vm") as server:
        yield server


@pytest.fixture
def dead_url():
    """A loopback port held bound but never listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


# ----- 1. ingest -> every event is a point ------------------------------------------------


def test_ingest_sends_every_event_with_its_tags_fields_and_timestamp(tmp_path, vm):
    calls = [call_event(i) for i in range(240)] + same_instant_pair()
    scores = [score_event(i) for i in range(30)]
    events = calls[:100] + scores[:15] + calls[100:] + scores[15:]
    write_lines(tmp_path / "logs" / "trace.jsonl", events)
    config = write_config(tmp_path, vm.url, batch_size=37)

    result = cli("ingest", "--config", str(config), "--json")

    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["events"] == len(events)
    state = ledger_state(tmp_path / "ledger.db")
    assert state["influx:calls"] == state["calls"] == len(calls)  # all acknowledged
    assert state["influx:scores"] == state["scores"] == len(scores)
    assert state["dead_letters"] == 0

    expected = expected_points(events)
    assert metric_names(vm.url) == set(expected)
    for metric, points in expected.items():
        assert found(vm.url, metric) == points, metric
    # N events -> N points: every call has an error flag, every score a value
    assert len(export(vm.url, "llm_call_error")) == len(calls)
    assert len(export(vm.url, "llm_score_value")) == len(scores)
    assert sum(p.value for p in export(vm.url, "llm_call_error")) == sum(
        e.get("status") == "error" for e in calls
    )
    unpriced = [e for e in calls if "cost_usd" not in e]
    assert unpriced and len(export(vm.url, "llm_call_unpriced")) == len(unpriced)

    # tags: the configured dimensions and the instance only, never an id (series cardinality)
    call_series = [
        p for name in expected if name.startswith("llm_call_") for p in export(vm.url, name)
    ]
    tag_keys = {tuple(sorted(p.labels)) for p in call_series}
    assert tag_keys == {tuple(sorted((*DIMENSIONS, "instance")))}
    score_labels = {tuple(sorted(p.labels)) for p in export(vm.url, "llm_score_value")}
    assert score_labels == {
        ("instance", "name", "task_type"),
        ("instance", "model", "name", "task_type"),
    }
    ids = {str(e[f]) for e in events for f in ID_FIELDS if f in e}
    ids |= {e["scenario"] for e in scores}
    for point in call_series + export(vm.url, "llm_score_value"):
        assert not ids & set(point.labels.values()), point

    # the two same-instant, same-tag calls are two points at that millisecond
    same = [
        p
        for p in export(vm.url, "llm_call_input_tokens")
        if p.ts_ms == ts_ms(SAME_INSTANT) and p.labels == SAME_TAGS
    ]
    assert sorted(p.value for p in same) == [111, 222]


# ----- 2. the server goes away mid-drain and comes back -----------------------------------


def test_server_stopped_mid_drain_then_restarted_loses_nothing(tmp_path, vm):
    trace = tmp_path / "logs" / "trace.jsonl"
    first, second = [call_event(i) for i in range(400)], [call_event(i) for i in range(400, 600)]
    write_lines(trace, first)
    config = load_config(write_config(tmp_path, vm.url))
    ledger = Ledger(config.ledger.path)
    clock = FakeClock()
    writer = InfluxWriter(config.influx)
    encoder = LineEncoder(config.dimensions, config.influx.instance)
    feeds = raw_feeds(config.influx.buckets.raw, encoder, None)
    outbox = Outbox(ledger, writer, feeds, batch_size=50, clock=clock)
    tailer = build_tailer(config, ledger, [Source(str(trace), ZoneInfo("UTC"))])
    acked = 0

    def pending_is_what_is_not_acknowledged():
        rows = ledger.db.execute("SELECT count(*) FROM calls").fetchone()[0]
        assert outbox.pending() == {"influx:calls": rows - acked, "influx:scores": 0}
        assert outbox.cursor(feeds[0]) == acked

    try:
        tailer.scan()
        tailer.poll(TailEnd.IF_COMPLETE)
        pending_is_what_is_not_acknowledged()
        for _ in range(3):
            acked += outbox.drain_once()
        assert acked == 150
        pending_is_what_is_not_acknowledged()

        vm.stop()
        assert outbox.drain_once() == 0
        assert outbox.stats.retry_at == clock.now + 1  # own backoff, first step
        assert "unreachable" in outbox.stats.last_error and vm.url in outbox.stats.last_error
        pending_is_what_is_not_acknowledged()

        # the collector keeps reading meanwhile; the queue is the ledger, not memory
        write_lines(trace, second, mode="a")
        tailer.poll(TailEnd.IF_COMPLETE)
        pending_is_what_is_not_acknowledged()
        clock.now = outbox.stats.retry_at
        assert outbox.drain_once() == 0
        assert outbox.stats.retry_at == clock.now + 2  # doubled
        assert outbox.stats.failed_attempts == 2
        pending_is_what_is_not_acknowledged()

        vm.start()  # same port, same storage
        for _ in range(100):
            if not sum(outbox.pending().values()):
                break
            clock.now = max(clock.now, outbox.stats.retry_at)
            acked += outbox.drain_once()
            pending_is_what_is_not_acknowledged()
        assert acked == 600
        assert outbox.stats.last_error is None
    finally:
        tailer.close()
        writer.close()
        ledger.close()

    assert found_ts_and_tokens(vm.url) == ts_and_tokens(first + second)  # none missing, no copy
    assert (
        found(vm.url, "llm_call_latency_ms")
        == expected_points(first + second)["llm_call_latency_ms"]
    )


def test_ingest_exits_3_while_the_server_is_unreachable_and_the_next_ingest_sends_it(
    tmp_path, vm, dead_url
):
    events = [call_event(i) for i in range(120)]
    write_lines(tmp_path / "logs" / "trace.jsonl", events)
    config = write_config(tmp_path, dead_url)

    result = cli("ingest", "--config", str(config), "--json", "--wait-timeout", "0.3")

    assert result.returncode == 3, result.stderr
    message = " ".join(result.stderr.split())
    assert "120 points still pending" in message
    assert dead_url in message and "unreachable" in message
    assert TOKEN not in result.stderr + result.stdout
    state = ledger_state(tmp_path / "ledger.db")
    assert (state["calls"], state["influx:calls"]) == (120, 0)  # in the ledger, not acked

    config = write_config(tmp_path, vm.url)
    result = cli("ingest", "--config", str(config), "--json")  # nothing new to read

    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["events"] == 0
    assert ledger_state(tmp_path / "ledger.db")["influx:calls"] == 120
    assert found_ts_and_tokens(vm.url) == ts_and_tokens(events)


# ----- 3. kill -9 of the daemon while the outbox holds data -------------------------------


def start_daemon(config, log_path):
    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            [*CLI, "run", "--config", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env(),
        )
    finally:
        log.close()


def read(path):
    return path.read_text(errors="replace") if path.exists() else ""


def test_kill_9_with_a_full_outbox_then_restart_delivers_every_point_once(tmp_path, vm, dead_url):
    trace = tmp_path / "logs" / "trace.jsonl"
    ledger_path = tmp_path / "ledger.db"
    first, second = [call_event(i) for i in range(1200)], [call_event(i) for i in range(1200, 1500)]
    write_lines(trace, first)
    config = write_config(tmp_path, dead_url, max_pending=1000)
    log1 = tmp_path / "run1.log"
    daemon = start_daemon(config, log1)
    try:
        assert wait_for(lambda: ledger_state(ledger_path)["calls"] == 1200), read(log1)
        assert wait_for(lambda: "reading paused" in read(log1)), read(log1)
        assert "outbox full (1200 points pending)" in read(log1)
        assert dead_url in read(log1)
        # at the bound, reading pauses: new lines wait in the file, not in memory or the ledger
        size = trace.stat().st_size
        write_lines(trace, second, mode="a")
        waiting = f"lag_bytes={trace.stat().st_size - size} lines=1200 "
        assert wait_for(lambda: read(log1).count(waiting) >= 3), read(log1)  # three status lines
        assert read(log1).count("reading paused") == 1  # said once
        state = ledger_state(ledger_path)
        assert (state["calls"], state["influx:calls"]) == (1200, 0)
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    assert daemon.returncode == -signal.SIGKILL
    assert TOKEN not in read(log1)

    config = write_config(tmp_path, vm.url, max_pending=1000)
    log2 = tmp_path / "run2.log"
    daemon = start_daemon(config, log2)
    try:
        assert wait_for(
            lambda: ledger_state(ledger_path).get("influx:calls") == 1500, timeout=30
        ), read(log2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    assert daemon.returncode == 0, read(log2)
    state = ledger_state(ledger_path)
    assert (state["calls"], state["dead_letters"]) == (1500, 0)

    points = export(vm.url, "llm_call_input_tokens")
    assert len(points) == 1500  # exactly once: nothing was sent before the kill
    assert found_ts_and_tokens(vm.url) == ts_and_tokens(first + second)
