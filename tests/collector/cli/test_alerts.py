"""The alerting commands: rules test, alerts, silence add|list|expire, notify test."""

from datetime import UTC, datetime

import orjson
from click.testing import CliRunner

from alerting.outbox import Outbox
from collector.cli.main import main
from collector.ledger.connection import Ledger
from schemas.alerting import RootRoute
from tests.alerting.alert_harness import T0, add_calls, engine_for, rules_of
from tests.paths import EXAMPLES


def write_config(tmp_path):
    path = tmp_path / "collector.yaml"
    path.write_text(
        f"ledger: {{path: '{tmp_path}/ledger.db'}}\n"
        "alerting:\n  receivers: [{name: desk, console: {}}]\n"
        "  external_url: http://grafana.example/d/llm\n"
    )
    return str(path)


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_rules_test_passes_on_the_shipped_tests():
    result = run("rules", "test", str(EXAMPLES / "rules.test.yaml"))
    assert result.exit_code == 0, result.output
    assert result.output.endswith("rules.test.yaml: all rule tests passed\n")


def test_rules_test_reports_a_wrong_expectation(tmp_path):
    (tmp_path / "rules.yaml").write_text("rules:\n  - {name: Quiet, kind: absence, window: 2m}\n")
    (tmp_path / "t.yaml").write_text(
        "rule_files: [rules.yaml]\ntests:\n  - name: quiet\n"
        "    events: [{at: 0m}]\n"
        "    alerts: [{at: 3m}]\n"
    )
    result = run("rules", "test", str(tmp_path / "t.yaml"))
    assert result.exit_code == 1
    assert result.output == (
        "FAILED quiet: at 3m: firing: expected [], got [{alertname=Quiet, severity=warning}]\n"
    )


def test_alerts_lists_pending_and_firing(tmp_path):
    config = write_config(tmp_path)
    rules = rules_of("rules:\n  - {name: Errors, kind: threshold, metric: errors, threshold: 0}\n")
    engine, ledger = engine_for(tmp_path / "ledger.db", rules)
    add_calls(ledger, T0 - 1, 2, status="error")
    engine.evaluate(T0)
    ledger.close()
    result = run("alerts", "--config", config, "--json")
    assert result.exit_code == 0, result.output
    [alert] = orjson.loads(result.output)["alerts"]
    assert (alert["rule"], alert["state"], alert["value"]) == ("Errors", "firing", 2.0)
    text = run("alerts", "--config", config).output
    assert text.startswith("firing   Errors {severity=warning} value=2.0 since ")


def test_silence_add_list_expire_and_the_outbox_honours_it(tmp_path):
    config = write_config(tmp_path)
    added = run(
        "silence",
        "add",
        "--config",
        config,
        "--match",
        "model=m1",
        "--for",
        "1h",
        "--comment",
        "deploy",
    )
    assert added.exit_code == 0, added.output
    assert added.output.startswith("silence 1 until ")
    listed = run("silence", "list", "--config", config).output
    assert listed.startswith("1  {model=m1}  until ") and listed.endswith("  deploy\n")
    ledger = Ledger(tmp_path / "ledger.db")
    outbox = Outbox(RootRoute())
    now = ledger.db.execute("SELECT starts_us FROM silences").fetchone()[0] + 1
    assert outbox.silenced(ledger.db, {"model": "m1", "alertname": "X"}, now)
    assert not outbox.silenced(ledger.db, {"model": "m2"}, now)
    assert run("silence", "expire", "--config", config, "1").output == "silence 1 expired\n"
    assert run("silence", "list", "--config", config).output == "no silences\n"
    assert run("silence", "expire", "--config", config, "1").exit_code == 1


def test_notify_test_sends_through_the_receiver(tmp_path):
    config = write_config(tmp_path)
    result = run("notify", "test", "--config", config, "desk")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "[FIRING:1] TestNotification"
    assert "http://grafana.example/d/llm" in result.output
    assert result.output.endswith("sent a test notification to desk\n")
    missing = run("notify", "test", "--config", config, "nobody")
    assert missing.exit_code == 1
    assert "no receiver named 'nobody'" in missing.output


def test_notify_log_shows_when_each_receiver_acknowledged(tmp_path):
    from schemas.alerting import AlertingConfig
    from tests.alerting.alert_harness import SECOND, deliver, delivery_for

    config = write_config(tmp_path)
    alerting = AlertingConfig.model_validate(
        {
            "receivers": [{"name": "desk", "console": {}}],
            "route": {"receiver": "desk", "group_wait": "0s"},
        }
    )
    rules = rules_of("rules:\n  - {name: Errors, kind: threshold, metric: errors, threshold: 0}\n")
    engine, ledger = engine_for(tmp_path / "ledger.db", rules, alerting)
    add_calls(ledger, T0 - 1, 2, status="error")
    engine.evaluate(T0)
    assert run("notify", "log", "--config", config).output.endswith(": waiting\n")
    acked = T0 + 3 * SECOND
    deliver(delivery_for(ledger, {"desk": _Console()}), acked)
    ledger.close()
    [entry] = orjson.loads(run("notify", "log", "--config", config, "--json").output)[
        "notifications"
    ]
    assert (entry["receiver"], entry["status"], entry["alertname"]) == ("desk", "firing", "Errors")
    assert entry["acknowledged"] == datetime.fromtimestamp(acked / 1e6, UTC).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    text = run("notify", "log", "--config", config).output
    assert f"acknowledged {entry['acknowledged']} (attempt 1)" in text


class _Console:
    async def send(self, message):
        return None
