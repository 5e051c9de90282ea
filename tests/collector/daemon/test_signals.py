"""Signals to a real `llm-collector run`: SIGTERM commits and exits 0 within 5 s while reading a
growing trace with parse workers and a hanging InfluxDB; SIGHUP reloads rules and receivers,
keeping alert state; a bad file on SIGHUP keeps the old configuration running."""

import signal
import socket
import subprocess
import sys
import threading

import pytest

from tests.alerting.fake_slack import FakeSlack
from tests.collector.daemon_harness import (
    RULE_ERRORS,
    RULE_VOLUME,
    Appender,
    Daemon,
    alerting_config,
    firing,
    free_port,
    line_template,
    notices,
    query,
    state,
    wait_for,
    write_config,
)

LINE = line_template()


class BlackHole:
    """A TCP server that accepts and reads but never answers: InfluxDB hanging mid-request."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_sigterm_mid_backlog_with_workers_and_a_hanging_influxdb_exits_0_within_5_s(tmp_path):
    hole = BlackHole()
    config = write_config(
        tmp_path,
        free_port(),
        f"influx: {{url: '{hole.url}', org: llm, token: t0ken-xyz, timeout: 10s}}\n",
        ingest="{poll_interval: 50ms, rescan_interval: 100ms, parse_workers: 2}",
    )
    trace = tmp_path / "logs" / "trace.jsonl"
    backlog = 300_000
    with trace.open("w") as out:
        out.writelines(LINE.format(i=f"b{i}") for i in range(backlog))
    daemon = Daemon(config)
    try:
        with Appender(trace, LINE.replace('"{i}"', '"g{i}"'), every=0.001):
            assert wait_for(
                lambda: (
                    query(tmp_path, "SELECT count(*) FROM calls") > [(0,)]
                    and len(hole.accepted) > 0
                ),  # the shipper's request in flight, unanswered
                process=daemon,
            ), daemon.output()
            code, seconds = daemon.stop()
    finally:
        hole.close()
    assert code == 0, daemon.output()
    assert seconds < 5, daemon.output()
    assert "collector stopped" in daemon.output()
    ids = [row[0] for row in query(tmp_path, "SELECT call_id FROM calls")]
    assert len(ids) == len(set(ids))
    [(offset,)] = query(tmp_path, "SELECT offset FROM streams")
    committed_lines = trace.read_bytes()[:offset].count(b"\n")
    assert committed_lines == len(ids)  # the offset and the events committed together
    print(f"SIGTERM to exit: {seconds:.2f} s with {len(ids)} of {backlog}+ lines committed")


@pytest.fixture
def firing_daemon(tmp_path):
    with firing(tmp_path) as running:
        yield running


def test_sighup_reloads_rules_and_receivers_and_keeps_alert_state(tmp_path, firing_daemon):
    daemon, port = firing_daemon
    before = state(tmp_path)["Errors"]
    with FakeSlack() as slack:
        alerting_config(tmp_path, port, slack.url)
        (tmp_path / "rules.yaml").write_text("rules:\n" + RULE_ERRORS + RULE_VOLUME)
        daemon.signal(signal.SIGHUP)
        assert slack.arrived.wait(10), daemon.output()  # new rule, new receiver
        assert wait_for(lambda: "Volume" in state(tmp_path), process=daemon)
    code, _ = daemon.stop()
    assert code == 0, daemon.output()
    assert "reloaded 2 rule(s)" in daemon.output()
    [(_, path, body)] = slack.requests
    assert (path, body["text"]) == ("/hook", "[FIRING:1] Volume")
    assert state(tmp_path)["Errors"] == before  # still firing since the same moment
    assert len(notices(tmp_path, "Errors")) == 1  # not notified again


def test_a_bad_file_on_sighup_keeps_the_running_configuration(tmp_path, firing_daemon):
    daemon, _ = firing_daemon
    (tmp_path / "rules.yaml").write_text("rules:\n  - {name: Bad, kind: absence, windw: 1m}\n")
    daemon.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload failed" in daemon.output(), process=daemon)
    evaluated = query(tmp_path, "SELECT evaluated_us FROM alert_rules WHERE rule = 'Errors'")[0][0]
    assert wait_for(
        lambda: (
            query(tmp_path, "SELECT evaluated_us FROM alert_rules WHERE rule = 'Errors'")[0][0]
            > evaluated
        ),
        process=daemon,
    )  # the old rules are still evaluated
    (tmp_path / "collector.yaml").write_text("ingest: {poll_interval: 1 minute}\n")
    daemon.signal(signal.SIGHUP)
    assert wait_for(lambda: daemon.output().count("reload failed") == 2, process=daemon)
    code, _ = daemon.stop()
    assert code == 0
    output = daemon.output()
    assert f"{tmp_path}/rules.yaml: rule Bad: windw: unknown key" in output
    assert "the previous rules and receivers stay in force" in output
    assert "ingest.poll_interval" in output and "still running the previous configuration" in output
    assert state(tmp_path)["Errors"][0] == "firing"


def test_a_stop_asked_for_while_starting_is_honoured_once_started(tmp_path):
    config = write_config(tmp_path, free_port())
    (tmp_path / "logs" / "trace.jsonl").write_text(LINE.format(i="x"))
    script = (
        "import signal, sys; from collector.configfile import load_config;"
        " from collector.daemon.service import Daemon; from collector.logs import setup;"
        " setup('INFO', 'console');"
        " Daemon(load_config(sys.argv[1]), early_stop=[signal.SIGTERM]).run()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "collector started" in done.stderr and "collector stopped" in done.stderr
