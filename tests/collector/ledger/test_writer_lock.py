"""One writer per ledger, between real processes: a second ``run`` or an ``ingest`` beside the
daemon is refused with the holder's pid (they used to double every line), read-only commands
work beside it, and the lock goes with its holder, even after kill -9."""

import signal
import sqlite3
import subprocess

import pytest

from tests.collector.daemon_harness import (
    Daemon,
    command,
    free_port,
    line_template,
    query,
    wait_for,
    write_config,
)

LINE = line_template()


def _calls(tmp_path):
    return query(tmp_path, "SELECT count(*), count(DISTINCT call_id) FROM calls")


def _cli(config, *args, timeout=60):
    return subprocess.run(
        command(*args, "--config", str(config)), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def daemon(tmp_path):
    """A daemon that has read 1,000 lines of logs/trace.jsonl, and its config."""
    config = write_config(tmp_path, free_port())
    (tmp_path / "logs" / "trace.jsonl").write_text("".join(LINE.format(i=i) for i in range(1000)))
    running = Daemon(config)
    try:
        assert wait_for(lambda: _calls(tmp_path) == [(1000, 1000)], process=running), (
            running.output()
        )
        assert wait_for(lambda: "collector started" in running.output(), process=running)
        yield running, config
    finally:
        running.stop()


def _refusal(result, holder):
    """The one line a refused writer prints, checked for what it must say."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (message,) = result.stderr.strip().splitlines()
    assert f"is in use by pid {holder.process.pid} (llm-collector run)" in message
    return message


def test_a_second_daemon_on_the_same_ledger_exits_naming_the_first(tmp_path, daemon):
    first, config = daemon
    second = _cli(config, "run", timeout=30)
    _refusal(second, first)
    with (tmp_path / "logs" / "trace.jsonl").open("a") as trace:
        trace.writelines(LINE.format(i=i) for i in range(1000, 2000))
    assert wait_for(lambda: _calls(tmp_path) == [(2000, 2000)], process=first)


def test_ingest_beside_the_daemon_is_refused_and_duplicates_nothing(tmp_path, daemon):
    first, config = daemon
    message = _refusal(_cli(config, "ingest"), first)
    assert "read-only commands (summary, status, alerts, report, export, backup)" in message
    assert _calls(tmp_path) == [(1000, 1000)]


def test_read_only_commands_work_beside_the_daemon(tmp_path, daemon):
    _, config = daemon
    for args in (
        ("summary", "--since", "-2h"),
        ("status",),
        ("alerts",),
        ("export", "--since", "-2h", "--out", str(tmp_path / "calls.csv")),
        ("backup", str(tmp_path / "copy.db")),
        ("report", "daily", "--out", str(tmp_path / "reports")),
    ):
        result = _cli(config, *args)
        assert result.returncode == 0, (args, result.stdout + result.stderr)
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("SELECT count(*) FROM calls").fetchone() == (1000,)
    copy.close()
    assert len((tmp_path / "calls.csv").read_text().splitlines()) == 1001


def test_the_lock_goes_with_a_killed_holder(tmp_path, daemon):
    first, config = daemon
    first.signal(signal.SIGKILL)
    first.process.wait()
    with (tmp_path / "logs" / "trace.jsonl").open("a") as trace:
        trace.writelines(LINE.format(i=i) for i in range(1000, 1500))
    result = _cli(config, "ingest", "--json")
    assert result.returncode == 0, result.stderr
    assert _calls(tmp_path) == [(1500, 1500)]


def test_the_same_ledger_through_a_symlink_is_the_same_lock(tmp_path, daemon):
    first, config = daemon
    (tmp_path / "alias").symlink_to(tmp_path)
    aliased = tmp_path / "aliased.yaml"
    aliased.write_text(
        config.read_text().replace(f"{tmp_path}/ledger.db", f"{tmp_path}/alias/ledger.db")
    )
    _refusal(_cli(aliased, "ingest"), first)
    assert _calls(tmp_path) == [(1000, 1000)]
