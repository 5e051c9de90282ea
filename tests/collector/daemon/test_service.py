"""`llm-collector run` as a process: it tails, and SIGTERM stops it cleanly and quickly."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.collector.daemon_harness import trace_line


def line(s: int, call_id: str) -> str:
    return trace_line(call_id, s, model="gpt-4o-mini")


def start_daemon(tmp_path):
    config = tmp_path / "collector.yaml"
    config.write_text(
        f"sources: [{{path: '{tmp_path}/logs/*.jsonl'}}]\n"
        f"ledger: {{path: '{tmp_path}/ledger.db'}}\n"
        f"quarantine: {{path: '{tmp_path}/quarantine.jsonl'}}\n"
        "ingest: {poll_interval: 50ms, rescan_interval: 100ms, status_interval: 1s}\n"
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from collector.cli.main import main; main()",
            "run",
            "--config",
            str(config),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def call_ids(tmp_path):
    if not (tmp_path / "ledger.db").exists():
        return []
    db = sqlite3.connect(tmp_path / "ledger.db")
    try:
        return [row[0] for row in db.execute("SELECT call_id FROM calls ORDER BY id")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def stop(process):
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=10)
    return code, time.monotonic() - started


def test_tails_new_files_and_appends_then_stops_on_sigterm(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    process = start_daemon(tmp_path)
    try:
        with (logs / "a.jsonl").open("w") as trace:
            trace.writelines(line(i, f"a{i}") for i in range(10))
        assert wait_for(lambda: len(call_ids(tmp_path)) == 10)
        with (logs / "a.jsonl").open("a") as trace:
            trace.write(line(11, "a11"))
            trace.write(line(12, "a12")[:50])  # still writing
        (logs / "b.jsonl").write_text(line(1, "b1"))
        assert wait_for(lambda: len(call_ids(tmp_path)) == 12)
        with (logs / "a.jsonl").open("a") as trace:
            trace.write(line(12, "a12")[50:])
        assert wait_for(lambda: len(call_ids(tmp_path)) == 13)
    finally:
        code, seconds = stop(process)
    assert code == 0
    assert seconds < 5
    assert sorted(call_ids(tmp_path)) == sorted([f"a{i}" for i in range(10)] + ["a11", "a12", "b1"])
    assert "collector stopped" in process.stderr.read()


@pytest.mark.slow
def test_sigterm_during_a_large_backlog_commits_and_exits_fast(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = 400_000
    with (logs / "big.jsonl").open("w") as trace:
        trace.writelines(line(i % 60, str(i)) for i in range(lines))
    process = start_daemon(tmp_path)
    try:
        assert wait_for(lambda: len(call_ids(tmp_path)) > 0)
    finally:
        code, seconds = stop(process)
    assert code == 0
    assert seconds < 5
    first_run = call_ids(tmp_path)
    assert len(first_run) == len(set(first_run))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from collector.cli.main import main; main()",
            "ingest",
            "--json",
            "--config",
            str(tmp_path / "collector.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["events"] == lines - len(first_run)
    assert sorted(map(int, call_ids(tmp_path))) == list(range(lines))


def test_no_absence_alert_while_the_start_up_backlog_is_read(tmp_path):
    """The first passes wait for the backlog: before it is read, every window looks empty."""
    from datetime import UTC, datetime, timedelta

    from tests.collector.daemon_harness import Daemon, alerting_config, free_port, query, wait_for

    port = free_port()
    (tmp_path / "rules.yaml").write_text("rules:\n  - {name: Silent, kind: absence, window: 15m}\n")
    config = alerting_config(tmp_path, port)
    now = datetime.now(UTC)
    lines = [
        json.dumps(
            {
                "timestamp": (now - timedelta(seconds=600 - i * 0.02)).isoformat(),
                "model": "m",
                "input_tokens": 10,
                "output_tokens": 5,
            }
        )
        for i in range(20_000)
    ]
    (tmp_path / "logs" / "trace.jsonl").write_text("\n".join(lines) + "\n")
    daemon = Daemon(config)
    try:
        read = wait_for(
            lambda: query(tmp_path, "SELECT count(*) FROM calls") == [(20_000,)], 60, daemon
        )
        assert read, daemon.output()
        evaluated = query(tmp_path, "SELECT evaluated_us FROM alert_rules")
        assert wait_for(
            lambda: query(tmp_path, "SELECT evaluated_us FROM alert_rules") != evaluated, 20, daemon
        ), daemon.output()
    finally:
        code, _ = daemon.stop()
    assert code == 0
    assert query(tmp_path, "SELECT count(*) FROM notifications") == [(0,)]
    assert "Silent" not in daemon.output().split("collector started", 1)[-1]
