"""End to end: a line appended to a trace file reaches a Slack receiver through the daemon."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

from tests.alerting.fake_slack import FakeSlack

EVALUATION_INTERVAL = 1.0


def start(tmp_path, slack_url):
    write_config(tmp_path, slack_url)
    return spawn(tmp_path)


def write_config(tmp_path, slack_url):
    (tmp_path / "logs").mkdir()
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: Errors, kind: threshold, metric: errors, window: 5m, op: '>',"
        " threshold: 0, severity: critical}\n"
    )
    (tmp_path / "collector.yaml").write_text(
        f"sources: [{{path: '{tmp_path}/logs/*.jsonl'}}]\n"
        f"ledger: {{path: '{tmp_path}/ledger.db'}}\n"
        f"quarantine: {{path: '{tmp_path}/quarantine.jsonl'}}\n"
        "ingest: {poll_interval: 50ms, rescan_interval: 100ms}\n"
        "alerting:\n"
        f"  rules_file: {tmp_path}/rules.yaml\n"
        f"  evaluation_interval: {EVALUATION_INTERVAL}s\n"
        "  delivery_interval: 100ms\n"
        "  external_url: http://grafana.example/d/llm\n"
        f"  receivers: [{{name: oncall, slack: {{webhook_url: '{slack_url}/hook'}}}}]\n"
        "  route: {receiver: oncall, group_wait: 0s}\n"
    )


def spawn(tmp_path):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from collector.cli.main import main; main()",
            "run",
            "--config",
            str(tmp_path / "collector.yaml"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def evaluated(tmp_path):
    try:
        db = sqlite3.connect(tmp_path / "ledger.db")
        return db.execute("SELECT count(*) FROM alert_rules").fetchone()[0] > 0
    except sqlite3.OperationalError:
        return False


def test_line_to_slack_within_the_evaluation_interval_plus_two_seconds(tmp_path):
    with FakeSlack() as slack:
        daemon = start(tmp_path, slack.url)
        try:
            deadline = time.monotonic() + 30
            while not evaluated(tmp_path):  # the daemon is up and has run one pass
                assert time.monotonic() < deadline and daemon.poll() is None
                time.sleep(0.05)
            line = {"timestamp": datetime.now(UTC).isoformat(), "model": "m", "status": "error"}
            appended = time.monotonic()
            (tmp_path / "logs" / "trace.jsonl").write_text(json.dumps(line) + "\n")
            assert slack.arrived.wait(EVALUATION_INTERVAL + 2)
            latency = slack.requests[0][0] - appended
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(10) == 0
    assert latency <= EVALUATION_INTERVAL + 2
    [(_, path, body)] = slack.requests
    assert path == "/hook"
    assert body["text"] == "[FIRING:1] Errors"


def test_a_bad_rules_file_stops_the_daemon_with_the_message(tmp_path):
    write_config(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "rules.yaml").write_text("rules:\n  - {name: Bad, kind: absence, windw: 1m}\n")
    daemon = spawn(tmp_path)
    _, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 2
    assert f"{tmp_path}/rules.yaml: rule Bad: windw: unknown key" in stderr
