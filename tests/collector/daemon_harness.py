"""Shared by the daemon operation tests: a config on a free port, `llm-collector run` as a real
subprocess, polling with a deadline, and HTTP GETs against /healthz and /metrics."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
"""The event time of the daemon tests: a daemon expires raw rows against the real clock, so a
fixed date ages past retention (a test once failed 5 of 14 fresh runs for that)."""


def recent(seconds: float = 0) -> str:
    """RECENT plus ``seconds``, as a trace line's ISO 8601 timestamp."""
    return (RECENT + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def trace_line(call_id: str, seconds: float = 0, model: str = "m") -> str:
    """One llm_call line at ``recent(seconds)``."""
    return json.dumps({"timestamp": recent(seconds), "model": model, "call_id": call_id}) + "\n"


def line_template(seconds: float = 0) -> str:
    """`trace_line` with ``{i}`` for the call id, for ``str.format`` and `Appender`."""
    return f'{{{{"timestamp": "{recent(seconds)}", "model": "m", "call_id": "{{i}}"}}}}\n'


INGEST = "{poll_interval: 50ms, rescan_interval: 100ms, status_interval: 1s}"


def write_config(tmp_path: Path, port: int, extra: str = "", ingest: str = INGEST) -> Path:
    (tmp_path / "logs").mkdir(exist_ok=True)
    config = tmp_path / "collector.yaml"
    config.write_text(
        f"sources: [{{path: '{tmp_path}/logs/*.jsonl'}}]\n"
        f"ledger: {{path: '{tmp_path}/ledger.db'}}\n"
        f"quarantine: {{path: '{tmp_path}/quarantine.jsonl'}}\n"
        f"ingest: {ingest}\n"
        f"server: {{listen: '127.0.0.1:{port}'}}\n" + extra
    )
    return config


def command(*args: str) -> list[str]:
    """``llm-collector ARGS`` with this interpreter."""
    return [sys.executable, "-c", "from collector.cli.main import main; main()", *args]


class Daemon:
    """``llm-collector run`` in a subprocess; stdout and stderr collected in the background."""

    def __init__(
        self,
        config: Path,
        *args: str,
        env: dict[str, str] | None = None,
        wrap: Callable[[list[str]], list[str]] = list,
    ) -> None:
        """``wrap`` may put the command inside another (a mount namespace)."""
        # Files, not pipes: a chatty DEBUG log can never fill a pipe and stall the daemon.
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the daemon)
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            wrap(command(*args, "run", "--config", str(config))),
            stdout=self._out,
            stderr=self._err,
            env=env,
        )

    def output(self) -> str:
        """Everything written so far to stdout and stderr."""
        text = []
        for file in (self._out, self._err):
            file.seek(0)
            text.append(file.read().decode(errors="replace"))
        return "".join(text)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until exit)."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code, time.monotonic() - started


def wait_for(condition, timeout: float = 20.0, process: Daemon | None = None) -> bool:
    """Poll ``condition`` until true or the deadline; False at once if the daemon died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is not None and process.process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def get(port: int, path: str) -> tuple[int, bytes]:
    """(status, body); (0, b"") while nothing listens yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def health(port: int) -> tuple[int, dict]:
    status, body = get(port, "/healthz")
    return status, json.loads(body) if status else {}


def samples(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics keyed by (name, sorted labels)."""
    status, body = get(port, "/metrics")
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found: dict, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in found.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


class Appender:
    """Appends trace lines to a file from a thread until stopped (a growing trace)."""

    def __init__(self, path: Path, line: str, every: float = 0.002) -> None:
        self.path, self.line, self.every = path, line, every
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Appender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with self.path.open("a") as trace:
            while not self._stop.is_set():
                trace.write(self.line.format(i=self.written))
                trace.flush()
                self.written += 1
                time.sleep(self.every)


def query(tmp_path, sql, *args):
    try:
        db = sqlite3.connect(tmp_path / "ledger.db")
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return []


RULE_ERRORS = (
    "  - {name: Errors, kind: threshold, metric: errors, window: 1h, op: '>', threshold: 0}\n"
)
RULE_VOLUME = (
    "  - {name: Volume, kind: threshold, metric: requests, window: 1h, op: '>=', threshold: 1}\n"
)


def alerting_config(tmp_path, port, slack_url=None):
    receivers = (
        f"[{{name: team, slack: {{webhook_url: '{slack_url}/hook'}}}}]" if slack_url else "[]"
    )
    routes = "[{match: {alertname: Volume}, receiver: team}]" if slack_url else "[]"
    return write_config(
        tmp_path,
        port,
        "alerting:\n"
        f"  rules_file: {tmp_path}/rules.yaml\n"
        "  evaluation_interval: 200ms\n"
        "  delivery_interval: 100ms\n"
        f"  receivers: {receivers}\n"
        f"  route: {{receiver: console, group_wait: 0s, routes: {routes}}}\n",
    )


def state(tmp_path):
    return {
        rule: (status, fired)
        for rule, status, fired in query(tmp_path, "SELECT rule, state, fired_us FROM alert_state")
    }


def notices(tmp_path, rule):
    return query(
        tmp_path,
        "SELECT receiver, sent_us FROM notifications WHERE alert_key LIKE ?",
        f"%{rule}%",
    )


@contextmanager
def firing(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    """A daemon whose rule Errors fires and was notified once (console); stopped after."""
    (tmp_path / "rules.yaml").write_text("rules:\n" + RULE_ERRORS)
    port = free_port()
    config = alerting_config(tmp_path, port)
    now = datetime.now(UTC).isoformat()
    (tmp_path / "logs" / "trace.jsonl").write_text(
        json.dumps({"timestamp": now, "model": "m", "status": "error"}) + "\n"
    )
    daemon = Daemon(config)
    try:
        assert wait_for(
            lambda: (
                state(tmp_path).get("Errors", ("",))[0] == "firing"
                and all(sent for _, sent in notices(tmp_path, "Errors"))
            ),
            process=daemon,
        ), daemon.output()
        yield daemon, port
    finally:
        daemon.stop()
