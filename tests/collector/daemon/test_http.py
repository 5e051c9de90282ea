"""/healthz and /metrics: on a real `llm-collector run`, and 503s from the in-process server
with an injected clock (a stale job) and a ledger another connection keeps locked."""

import asyncio
import json
import sqlite3
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from collector.daemon.health import Health, JobRegistry, TailState, trigger_interval
from collector.daemon.http import HttpServer
from collector.daemon.metrics import DaemonMetrics, LlmCounters
from collector.ingest.tailing import TailCounts
from collector.ledger.connection import Ledger
from collector.ledger.events import CALL_COLUMNS
from collector.sinks.influx.build import build_outbox
from schemas.config import CollectorConfig
from tests.alerting.fake_slack import FakeSlack
from tests.collector.daemon_harness import (
    RULE_VOLUME,
    Daemon,
    alerting_config,
    free_port,
    health,
    recent,
    samples,
    total,
    wait_for,
    write_config,
)

MODELS = ("gpt-4o-mini", "claude-sonnet-4-5")


def trace_line(i: int) -> dict:
    return {
        "timestamp": recent(i),
        "model": MODELS[i % 2],
        "provider": "openai" if i % 2 == 0 else "anthropic",
        "task_type": "chat",
        "status": "error" if i % 7 == 0 else "ok",
        "input_tokens": 100 + i,
        "output_tokens": 10 + i % 5,
        "cache_read_tokens": 50 if i % 3 == 0 else 0,
        "cost_usd": 0.001 * (i % 4),
        "latency_ms": 200.0 + 40 * i,
    }


def test_healthz_and_metrics_of_a_running_daemon(tmp_path):
    lines = [trace_line(i) for i in range(120)]
    port = free_port()
    config = write_config(tmp_path, port)
    (tmp_path / "logs" / "trace.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    daemon = Daemon(config)
    try:
        assert wait_for(
            lambda: total(samples(port), "llm_requests_total") == 120 if health(port)[0] else False,
            process=daemon,
        ), daemon.output()
        status, body = health(port)
        found = samples(port)
    finally:
        code, _ = daemon.stop()
    assert code == 0
    assert status == 200, body
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["lag_bytes"] == {str(tmp_path / "logs" / "trace.jsonl"): 0}
    assert body["outbox_pending"] is None  # no influx section
    assert body["last_rollup"] is not None and body["last_evaluation"] is None
    assert body["jobs"]["rollup"]["interval_s"] == 60

    errors = [x for x in lines if x["status"] == "error"]
    assert total(found, "llm_requests_total", model="gpt-4o-mini") == 60
    assert total(found, "llm_requests_total", status="error") == len(errors)
    assert total(found, "llm_requests_failed_total") == len(errors)
    assert total(found, "llm_tokens_used_total", type="input") == sum(
        x["input_tokens"] for x in lines
    )
    assert total(found, "llm_tokens_used_total", type="output") == sum(
        x["output_tokens"] for x in lines
    )
    assert total(found, "llm_tokens_used_total", type="cached") == 50 * 40
    assert abs(total(found, "llm_cost_usd_total") - sum(x["cost_usd"] for x in lines)) < 1e-9
    latencies = [x["latency_ms"] / 1000 for x in lines]
    assert total(found, "llm_response_latency_seconds_count") == 120
    assert abs(total(found, "llm_response_latency_seconds_sum") - sum(latencies)) < 1e-6
    for bound in ("0.25", "1", "2", "5"):
        expected = sum(1 for s in latencies if s <= float(bound))
        assert total(found, "llm_response_latency_seconds_bucket", le=bound) == expected
    assert total(found, "llm_collector_lines_read_total") == 120
    assert total(found, "llm_collector_events_total") == 120
    assert total(found, "llm_collector_quarantined_total") == 0
    assert total(found, "llm_collector_lag_bytes") == 0
    assert total(found, "llm_collector_job_last_success_timestamp_seconds", job="rollup") > 0


def test_a_receiver_that_keeps_failing_is_the_deliver_jobs_last_error(tmp_path):
    (tmp_path / "rules.yaml").write_text("rules:\n" + RULE_VOLUME)
    refusals = [(400, {}, "invalid_payload")] * 5
    with FakeSlack(refusals) as slack:
        port = free_port()
        config = alerting_config(tmp_path, port, slack.url)  # Volume goes to Slack "team"
        (tmp_path / "logs" / "trace.jsonl").write_text(json.dumps(trace_line(1)) + "\n")
        daemon = Daemon(config)

        def deliver_error() -> str | None:
            return health(port)[1].get("jobs", {}).get("deliver", {}).get("last_error")

        try:
            assert wait_for(lambda: deliver_error() is not None, process=daemon), daemon.output()
            error = deliver_error()
        finally:
            code, _ = daemon.stop()
    assert code == 0
    assert error == "team: slack webhook: HTTP 400: invalid_payload"
    assert "Traceback" not in daemon.output()


def test_the_labels_are_the_configured_dimensions(tmp_path):
    port = free_port()
    config = write_config(tmp_path, port, "dimensions: [model]\n")
    (tmp_path / "logs" / "trace.jsonl").write_text(
        "".join(json.dumps(trace_line(i)) + "\n" for i in range(10))
    )
    daemon = Daemon(config)
    try:
        assert wait_for(
            lambda: health(port)[0] and total(samples(port), "llm_requests_total") == 10,
            process=daemon,
        ), daemon.output()
        found = samples(port)
    finally:
        daemon.stop()
    assert {labels for name, labels in found if name == "llm_requests_total"} == {
        (("model", "claude-sonnet-4-5"),),
        (("model", "gpt-4o-mini"),),
    }


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def serve(tmp_path, clock, *, write_timeout=2.0, **settings):
    """An in-process Health + HttpServer on a ledger in tmp_path; returns (config, jobs, tail,
    run) where run(coro_fn) runs ``coro_fn(port)`` with the server up."""
    config = CollectorConfig(ledger={"path": str(tmp_path / "ledger.db")}, **settings)
    Ledger(config.ledger.path).close()
    jobs = JobRegistry(clock=clock, started=clock.now)
    tail = TailState(lag=lambda: {"trace.jsonl": 5}, stale_after=30)
    tail.last_progress = clock.now

    def run(check):
        async def main():
            health = Health(config, tail, jobs, write_timeout=write_timeout)
            metrics = DaemonMetrics(LlmCounters(["model"], 100), TailCounts, health.state, jobs)
            server = HttpServer(health, metrics)
            await server.start("127.0.0.1", 0)
            try:
                return await asyncio.to_thread(check, server.port)
            finally:
                await server.close()
                health.close()

        return asyncio.run(main())

    return config, jobs, tail, run


def fetch(port, path, method="GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_stale_job_and_a_stale_tail_make_healthz_503_with_the_reasons(tmp_path):
    clock = Clock(1_800_000_000.0)
    _, jobs, tail, run = serve(tmp_path, clock)
    jobs.register("rollup", 60)
    jobs.register("report_daily", 86400)
    jobs.ran("rollup")
    jobs.ran("report_daily")
    assert run(lambda port: fetch(port, "/healthz"))[0] == 200

    clock.now += 150  # rollup: 2.5 intervals late is still within 3 x 60 s
    tail.last_progress = clock.now
    assert run(lambda port: fetch(port, "/healthz"))[0] == 200
    clock.now += 31  # 181 s since the rollup; no read for 31 s
    status, body = run(lambda port: fetch(port, "/healthz"))
    data = json.loads(body)
    assert status == 503
    assert data["status"] == "unhealthy"
    assert data["reasons"] == [
        "tailing: no read finished for 31 s",
        "job rollup last ran 181 s ago (every 60 s)",
    ]
    assert data["lag_bytes"] == {"trace.jsonl": 5}
    assert data["last_report"] == datetime.fromtimestamp(1_800_000_000, UTC).isoformat()


def test_a_ledger_locked_by_another_writer_makes_healthz_503(tmp_path):
    clock = Clock(1_800_000_000.0)
    config, _, _, run = serve(tmp_path, clock, write_timeout=0.1)
    other = sqlite3.connect(config.ledger.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        status, body = run(lambda port: fetch(port, "/healthz"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert status == 503
    assert json.loads(body)["reasons"] == [
        f"ledger {config.ledger.path} not writable: database is locked"
    ]
    assert run(lambda port: fetch(port, "/healthz"))[0] == 200


def test_a_full_influx_outbox_makes_healthz_503(tmp_path):
    influx = {"url": "http://127.0.0.1:9", "org": "llm", "token": "t", "max_pending": 1000}
    config, _, _, run = serve(tmp_path, Clock(1_800_000_000.0), influx=influx)
    ledger = Ledger(config.ledger.path)
    with ledger.transaction() as db:
        db.execute("INSERT INTO sink_cursors (name, position) VALUES ('influx:calls', 0)")
        db.executemany(
            "INSERT INTO calls (ts_us, model, status, stream_id) VALUES (?, 'm', 'ok', 1)",
            [(i,) for i in range(999)],
        )
    assert json.loads(run(lambda port: fetch(port, "/healthz"))[1])["outbox_pending"] == {
        "influx:calls": 999
    }
    with ledger.transaction() as db:
        db.execute("INSERT INTO calls (ts_us, model, status, stream_id) VALUES (1, 'm', 'ok', 1)")
    ledger.close()
    status, body = run(lambda port: fetch(port, "/healthz"))
    assert status == 503
    assert json.loads(body)["reasons"] == [
        "reading paused: 1000 points wait for InfluxDB (influx.max_pending 1000);"
        " is InfluxDB reachable?"
    ]
    found = run(lambda port: fetch(port, "/metrics"))[1].decode()
    assert 'llm_collector_outbox_pending_points{feed="influx:calls"} 1000.0' in found


def test_health_counts_the_feeds_the_outbox_sends(tmp_path):
    """One construction of the feeds: the same names and buckets, and the calls feed encodes
    as the outbox's does (instance tag, and the configured ahead of 2h: 3h ahead is out)."""
    influx = {"url": "http://127.0.0.1:9", "org": "llm", "token": "t", "instance": "eu-1"}
    ingest = {"timestamps": {"earliest": "2020-01-01", "ahead": "2h"}}
    config, jobs, tail, _ = serve(tmp_path, Clock(1_800_000_000.0), influx=influx, ingest=ingest)
    ledger = Ledger(config.ledger.path)
    health = Health(config, tail, jobs)
    try:
        outbox = build_outbox(config, ledger)
        assert outbox is not None
        named = {feed.name: feed for feed in outbox.feeds}
        assert [(f.name, f.bucket) for f in health.feeds] == [
            (n, f.bucket) for n, f in named.items()
        ]
        now_us = time.time_ns() // 1000
        rows = [{"ts_us": now_us - 3_600_000_000}, {"ts_us": now_us + 3 * 3_600_000_000}]
        rows = [
            tuple({"model": "m", "status": "ok", **r}.get(c) for c in CALL_COLUMNS) for r in rows
        ]
        (calls,) = [f for f in health.feeds if f.name == "influx:calls"]
        sent = [calls.encode(1, row) for row in rows]
        assert sent == [named["influx:calls"].encode(1, row) for row in rows]
        assert sent[0].startswith("llm_call,instance=eu-1,") and sent[1] is None
    finally:
        health.close()
        ledger.close()


def test_unknown_paths_and_methods_and_head(tmp_path):
    _, _, _, run = serve(tmp_path, Clock(1_800_000_000.0))

    def check(port):
        return (
            fetch(port, "/nope")[0],
            fetch(port, "/metrics", method="POST")[0],
            fetch(port, "/healthz?verbose=1")[0],
            fetch(port, "/metrics", method="HEAD"),
        )

    missing, post, query, head = run(check)
    assert (missing, post, query) == (404, 405, 200)
    assert head == (200, b"")


def test_interval_and_cron_triggers_give_the_job_interval():
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    now = datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert trigger_interval(IntervalTrigger(seconds=15), now) == 15
    assert trigger_interval(CronTrigger(hour=1, timezone="UTC"), now) == 86400
    assert trigger_interval(CronTrigger(day_of_week="mon", hour=2, timezone="UTC"), now) == 604800
    assert trigger_interval(DateTrigger(now), now) is None


def test_server_listen_from_the_environment_and_a_clear_error(tmp_path, monkeypatch):
    from collector.configfile import ConfigError, load_config

    monkeypatch.chdir(tmp_path)  # no ./collector.yaml
    monkeypatch.setenv("LLM_COLLECTOR_SERVER__LISTEN", "0.0.0.0:9464")
    assert load_config(None).server.address() == ("0.0.0.0", 9464)
    monkeypatch.setenv("LLM_COLLECTOR_SERVER__LISTEN", "9464")
    with pytest.raises(ConfigError) as error:
        load_config(None)
    assert (
        "environment LLM_COLLECTOR_SERVER__LISTEN: server.listen: '9464' is not host:port;"
        " write e.g. 127.0.0.1:9464" in str(error.value)
    )
