"""Structured logs and redaction: secrets never reach the output, even at DEBUG, against a
Slack answering 500, an SMTP server refusing the login and an InfluxDB answering 401."""

import json
import logging
import socket
import ssl
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from collector.logs import MASK, JsonFormatter, Redactor
from tests.alerting.fake_slack import FakeSlack
from tests.collector.daemon_harness import Daemon, command, free_port, wait_for, write_config

INFLUX_TOKEN = "influx-T0KEN-4b1c9e7d2a"
OTLP_TOKEN = "otlp-S3CRET-bearer-token"
SMTP_PASSWORD = "smtp-PASSW0RD-77f3"
BOT_TOKEN = "xoxb-1111-2222-botS3CRETtoken"
WEBHOOK_PATH = "/services/T0SECRET/B0SECRET/webhookS3CRETpath"


class Unauthorized(BaseHTTPRequestHandler):
    """InfluxDB refusing the token on every call."""

    requests = 0

    def _refuse(self) -> None:
        type(self).requests += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"code":"unauthorized","message":"unauthorized access"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def influx_401():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Refuser:
    """Counts login attempts; refuses every one."""

    attempts = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):
        Refuser.attempts += 1
        return AuthResult(success=False)


class Inbox:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.fixture
def smtp_refusing(tmp_path):
    """STARTTLS with a private CA, AUTH required and always refused."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(
        Inbox(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=Refuser(),
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield port
    controller.stop()


def secret_config(tmp_path, slack_url, smtp_port, influx_url):
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: Errors, kind: threshold, metric: errors, window: 1d, op: '>',"
        " threshold: 0}\n"
    )
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "trace.jsonl").write_text(
        json.dumps({"timestamp": datetime.now(UTC).isoformat(), "model": "m", "status": "error"})
        + "\n"
    )
    return write_config(
        tmp_path,
        free_port(),
        f"influx: {{url: '{influx_url}', org: llm, token: '{INFLUX_TOKEN}', timeout: 2s}}\n"
        f"receivers: {{otlp: {{listen: '127.0.0.1:0', token: '{OTLP_TOKEN}'}}}}\n"
        "alerting:\n"
        f"  rules_file: {tmp_path}/rules.yaml\n"
        "  evaluation_interval: 200ms\n"
        "  delivery_interval: 100ms\n"
        "  receivers:\n"
        f"    - {{name: hook, slack: {{webhook_url: '{slack_url}{WEBHOOK_PATH}', timeout: 2s}}}}\n"
        f"    - {{name: bot, slack: {{bot_token: '{BOT_TOKEN}', channel: '#x',"
        f" base_url: '{slack_url}/api/', timeout: 2s}}}}\n"
        f"    - {{name: mail, email: {{host: 127.0.0.1, port: {smtp_port},"
        f" ca_file: {tmp_path}/ca.pem,"
        f" username: alerts, password: '{SMTP_PASSWORD}', sender: a@example.com,"
        " to: [b@example.com], timeout: 2s}}\n"
        "  route:\n"
        "    group_wait: 0s\n"
        "    routes: [{receiver: hook, continue: true}, {receiver: bot, continue: true},"
        " {receiver: mail}]\n",
    )


def failed_receivers(tmp_path):
    import sqlite3

    try:
        db = sqlite3.connect(tmp_path / "ledger.db")
        rows = db.execute(
            "SELECT DISTINCT receiver FROM notifications WHERE last_error IS NOT NULL"
        ).fetchall()
        db.close()
    except sqlite3.OperationalError:
        return set()
    return {row[0] for row in rows}


def cli_outputs(config, *commands):
    """stdout + stderr of each CLI command, run side by side."""
    processes = [
        subprocess.Popen(
            command(*args, "--config", str(config)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in commands
    ]
    return [process.communicate(timeout=60)[0] for process in processes]


def assert_no_secret(text):
    for secret in (
        INFLUX_TOKEN,
        OTLP_TOKEN,
        SMTP_PASSWORD,
        BOT_TOKEN,
        WEBHOOK_PATH,
        "S3CRET",
        "PASSW0RD",
    ):
        assert secret not in text, f"{secret!r} leaked:\n{text}"


def test_secrets_never_reach_logs_or_error_messages(tmp_path, influx_401, smtp_refusing):
    failing = [(500, {}, "internal_error")] * 100
    with FakeSlack(failing) as slack:
        config = secret_config(tmp_path, slack.url, smtp_refusing, influx_401)
        daemon = Daemon(config, "--log-level", "DEBUG", "--log-format", "json")
        try:
            assert wait_for(
                lambda: (
                    failed_receivers(tmp_path) == {"hook", "bot", "mail"}
                    and Unauthorized.requests > 0
                ),
                timeout=90,  # three receivers in turn, slack-sdk retrying the 500s
                process=daemon,
            ), daemon.output()
        finally:
            code, _ = daemon.stop()
        paths = {path for _, path, _ in slack.requests}
        commands = [("notify", "test", name) for name in ("hook", "bot", "mail")]
        commands += [("influx", "setup"), ("config", "check"), ("alerts", "--json")]
        outputs = [daemon.output(), *cli_outputs(config, *commands)]
    assert code == 0
    assert paths == {WEBHOOK_PATH, "/api/chat.postMessage"}  # both Slack ways were tried
    assert Refuser.attempts > 0
    log_lines = [json.loads(line) for line in outputs[0].splitlines() if line.startswith("{")]
    assert any(MASK in line["message"] for line in log_lines)  # there was something to mask
    assert any("notification to mail failed" in line["message"] for line in log_lines)
    for text in outputs:
        assert_no_secret(text)
    # The errors still say what failed. (aiosmtplib falls back from the refused PLAIN to LOGIN,
    # which aiosmtpd leaves waiting: a timeout.)
    assert "slack webhook: HTTP 500" in outputs[1]
    assert "slack chat.postMessage" in outputs[2] and "smtp 127.0.0.1" in outputs[3]
    assert "HTTP 401" in outputs[0] and "401" in outputs[4]


def record(message, *args, exc_info=None):
    return logging.LogRecord("x", logging.ERROR, __file__, 1, message, args, exc_info)


def test_the_redactor_masks_values_url_paths_and_slack_shapes():
    redactor = Redactor()
    redactor.add_secrets(["sk-live-123456", "https://chat.example/hooks/abcdef123", "abc"])
    rec = record("token %s at %s", "sk-live-123456", "POST /hooks/abcdef123 HTTP/1.1")
    redactor.filter(rec)
    assert rec.getMessage() == f"token {MASK} at POST {MASK} HTTP/1.1"
    rec = record("hook https://hooks.slack.com/services/T1/B2/xyz and xoxp-9-9-abc, abc stays")
    redactor.filter(rec)
    assert rec.getMessage() == f"hook {MASK} and {MASK}, abc stays"
    try:
        raise ValueError("bad token sk-live-123456")
    except ValueError:
        rec = record("failed", exc_info=sys.exc_info())
    redactor.filter(rec)
    assert "sk-live-123456" not in rec.exc_text and f"bad token {MASK}" in rec.exc_text


def test_json_lines_have_ts_level_logger_message_and_exception():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record("job %s failed", "rollup", exc_info=sys.exc_info())
    data = json.loads(JsonFormatter().format(rec))
    assert set(data) == {"ts", "level", "logger", "message", "exception"}
    assert (data["level"], data["logger"], data["message"]) == ("ERROR", "x", "job rollup failed")
    assert data["exception"].endswith("RuntimeError: boom")
    assert data["ts"].endswith("+00:00")


def test_log_format_from_the_environment(tmp_path):
    result = subprocess.run(
        command("status", "--config", str(tmp_path / "missing.yaml")),
        capture_output=True,
        text=True,
        env={"LLM_COLLECTOR_LOG_FORMAT": "yaml", "PATH": "/usr/bin"},
    )
    assert result.returncode == 2
    assert "'yaml' is not one of 'console', 'json'" in result.stderr
