"""A damaged or unwritable ledger, an unwritable quarantine, a full disk: every command says so
in one line naming the file and what to do (never a traceback), and the daemon, on a full disk,
logs once per backoff step, loses nothing and goes on when space is back."""

import itertools
import json
import re
import subprocess
import sys

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
from tests.collector.mount_namespace import beside, needs_mounts, read_only, small_disk, within

LINE = line_template()
BAD = '{"timestamp": "not a time", "model": "m"}\n'
COMMANDS = (
    ("run",),
    ("ingest",),
    ("summary",),
    ("status",),
    ("alerts",),
    ("export",),
    ("backup", "copy.db"),
    ("report", "daily", "--out", "reports"),
    ("silence", "list"),
    ("rollup",),
)


def _one_line_error(result, *needles):
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    (line,) = [text for text in output.splitlines() if text.strip()]
    assert line.startswith("Error: "), line
    for needle in needles:
        assert needle in line, line
    return line


def _cli(config, *args, wrap=list):
    argv = wrap(command(*args, "--config", str(config)))
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=config.parent)


def _damage(ledger):
    """Overwrite pages in the middle of a ledger with 5,000 rows."""
    import sqlite3

    db = sqlite3.connect(ledger)
    db.executescript("CREATE TABLE filler (x TEXT); PRAGMA user_version = 0;")
    db.executemany("INSERT INTO filler VALUES (?)", [("x" * 200,) for _ in range(5000)])
    db.commit()
    db.close()
    with ledger.open("r+b") as file:
        file.seek(8 * 4096)
        file.write(b"\xff" * 3 * 4096)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_ledger_path_that_is_a_directory_is_one_line_from_every_command(tmp_path, args):
    config = write_config(tmp_path, free_port())
    (tmp_path / "ledger.db").mkdir()
    _one_line_error(_cli(config, *args), f"the ledger {tmp_path / 'ledger.db'}")


@pytest.mark.parametrize("args", [("run",), ("ingest",)], ids=lambda args: args[0])
def test_a_damaged_ledger_stops_a_writer_at_start_with_what_to_do(tmp_path, args):
    config = write_config(tmp_path, free_port())
    _damage(tmp_path / "ledger.db")
    _one_line_error(
        _cli(config, *args),
        f"the ledger {tmp_path / 'ledger.db'} is damaged",
        "restore the last backup",
    )


@needs_mounts
@pytest.mark.parametrize("args", [("run",), ("ingest",)], ids=lambda args: args[0])
def test_an_unwritable_quarantine_stops_a_writer_at_start(tmp_path, args):
    config = write_config(tmp_path, free_port())
    (tmp_path / "logs" / "trace.jsonl").write_text(LINE.format(i=1) + BAD)
    locked = tmp_path / "locked"
    locked.mkdir()
    config.write_text(config.read_text().replace("quarantine.jsonl", "locked/quarantine.jsonl"))
    result = _cli(config, *args, wrap=lambda argv: within([read_only(locked)], argv))
    _one_line_error(
        result, f"cannot write the quarantine file: {locked / 'quarantine.jsonl'}", "file system"
    )
    assert query(tmp_path, "SELECT count(*) FROM calls") == [(0,)]


@needs_mounts
@pytest.mark.parametrize("args", [("run",), ("ingest",), ("summary",)], ids=lambda a: a[0])
def test_an_unwritable_ledger_directory_is_one_line(tmp_path, args):
    config = write_config(tmp_path, free_port())
    locked = tmp_path / "locked"
    locked.mkdir()
    config.write_text(config.read_text().replace("ledger.db", "locked/ledger.db"))
    result = _cli(config, *args, wrap=lambda argv: within([read_only(locked)], argv))
    _one_line_error(result, str(locked))


@needs_mounts
def test_a_full_disk_logs_once_per_backoff_step_and_loses_nothing(tmp_path):
    """The ledger's disk fills while the daemon reads; freeing space lets it go on, and every
    line lands once. The reviewer saw 199 tracebacks in 80 s."""
    disk = tmp_path / "disk"
    daemon = _daemon_on_a_small_disk(tmp_path, "ledger.db", kilobytes=8192, free=512)
    trace = tmp_path / "logs" / "trace.jsonl"
    try:
        assert wait_for(lambda: "collector started" in daemon.output(), process=daemon)
        trace.write_text("".join(LINE.format(i=i) for i in range(20_000)))
        full = re.compile(r"reading failed: .*database or disk is full.*retrying in ([\d.]+) s")
        assert wait_for(lambda: len(full.findall(daemon.output())) >= 5, process=daemon), (
            daemon.output()
        )
        delays = [float(d) for d in full.findall(daemon.output())]
        # Each wait doubles up to the cap, or starts over when a batch got through meanwhile.
        steps = itertools.pairwise(delays)
        assert delays[0] == 0.05, delays
        assert all(after in (min(before * 2, 0.4), 0.05) for before, after in steps), delays
        pid = daemon.process.pid
        assert beside(pid, ["rm", f"{disk}/ballast"]).returncode == 0
        assert wait_for(lambda: _rows(pid, disk / "ledger.db") == [20_000, 20_000], 60, daemon), (
            daemon.output()
        )
    finally:
        code, _ = daemon.stop()
    assert code == 0, daemon.output()
    assert "Traceback" not in daemon.output()


def _daemon_on_a_small_disk(tmp_path, name, kilobytes, free):
    """A daemon whose file ``name`` (the ledger or the quarantine) is on a tmpfs of its own at
    tmp_path/disk, of ``kilobytes`` with only ``free`` of them left beside a file 'ballast'."""
    disk = tmp_path / "disk"
    disk.mkdir()
    config = write_config(
        tmp_path,
        free_port(),
        ingest="{poll_interval: 50ms, rescan_interval: 100ms, retry_max_interval: 400ms}",
    )
    config.write_text(config.read_text().replace(f"{tmp_path}/{name}", f"{disk}/{name}"))
    ballast = f"dd if=/dev/zero of={disk}/ballast bs=1k count={kilobytes - free} status=none"
    return Daemon(config, wrap=lambda argv: within([small_disk(disk, kilobytes), ballast], argv))


def _rows(pid, ledger):
    """Calls and distinct call ids in the ledger as the daemon sees it."""
    sql = "SELECT count(*), count(DISTINCT call_id) FROM calls"
    script = f"import sqlite3; print(*sqlite3.connect('{ledger}').execute('{sql}').fetchone())"
    result = beside(pid, [sys.executable, "-c", script])
    return [int(n) for n in result.stdout.split()] if result.returncode == 0 else None


@needs_mounts
def test_a_full_quarantine_disk_keeps_whole_lines_and_loses_none(tmp_path):
    """Bad lines fill the quarantine's disk: no half entry is left behind to be followed by a
    retry, and once space is back every bad line is in the file, once."""
    disk = tmp_path / "disk"
    daemon = _daemon_on_a_small_disk(tmp_path, "quarantine.jsonl", kilobytes=4096, free=196)
    bad = [
        f'{{"timestamp": "bad {i:05d}", "model": "m", "pad": "{"x" * 100}"}}\n' for i in range(3000)
    ]
    try:
        assert wait_for(lambda: "collector started" in daemon.output(), process=daemon)
        (tmp_path / "logs" / "trace.jsonl").write_text("".join(bad))
        assert wait_for(lambda: "No space left on device" in daemon.output(), process=daemon)
        pid = daemon.process.pid
        assert beside(pid, ["rm", f"{disk}/ballast"]).returncode == 0
        counted = "SELECT sum(quarantined) FROM streams"
        assert wait_for(lambda: query(tmp_path, counted) == [(3000,)], 30, daemon), daemon.output()
        kept = beside(pid, ["cat", f"{disk}/quarantine.jsonl"]).stdout.splitlines()
    finally:
        code, _ = daemon.stop()
    assert code == 0, daemon.output()
    offsets = [json.loads(entry)["offset"] for entry in kept]  # every entry whole JSON
    assert sorted(offsets) == [sum(map(len, bad[:i])) for i in range(3000)]


NO_FILE_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
"""Root without the capabilities that let it ignore file modes: a 000 file is unreadable."""


def test_an_unreadable_trace_file_is_named_once_and_the_others_are_read(tmp_path):
    config = write_config(tmp_path, free_port())
    logs = tmp_path / "logs"
    (logs / "a.jsonl").write_text("".join(LINE.format(i=i) for i in range(10)))
    (logs / "b.jsonl").write_text(LINE.format(i="secret"))
    (logs / "b.jsonl").chmod(0)
    result = _cli(config, "ingest", "--json", wrap=lambda argv: [*NO_FILE_OVERRIDE, *argv])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events"] == 10
    warnings = [line for line in result.stderr.splitlines() if "cannot read" in line]
    assert len(warnings) == 1 and f"{logs / 'b.jsonl'} (Permission denied)" in warnings[0]
    assert "Traceback" not in result.stderr
