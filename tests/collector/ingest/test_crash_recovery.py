"""kill -9 of `llm-collector ingest` and of the daemon at random moments, then a run to the end:
the ledger holds every line exactly once, because a batch's events and its file's new offset
commit in one SQLite transaction. Sleeps here only choose when to kill, never what to assert."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.collector.tailing_harness import cid, line

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from collector.cli.main import main; main()"]
BAD_LINE = b'{"timestamp": "yesterday-ish", "model": "gpt-4o", "call_id": "bad"}\n'


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith("LLM_COLLECTOR_")}


def _config(tmp_path, **ingest):
    path = tmp_path / "collector.yaml"
    path.write_text(
        orjson.dumps(
            {
                "sources": [{"path": str(tmp_path / "logs" / "trace.jsonl")}],
                "ledger": {"path": str(tmp_path / "state" / "ledger.db")},
                "quarantine": {"path": str(tmp_path / "state" / "quarantine.jsonl")},
                "ingest": ingest,
                "tiers": {"retention": {"raw": "forever"}},  # old trace: keep every raw row
            }
        ).decode()  # JSON is YAML
    )
    return path


def _query(db_path, sql):
    """One row, read like any reader while the collector may be writing (WAL)."""
    if not db_path.exists():
        return None
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchone()
    except sqlite3.OperationalError as error:  # killed before the schema was created
        if "no such table" in str(error):
            return None
        raise
    finally:
        db.close()


def _progress(db_path):
    row = _query(db_path, "SELECT coalesce(max(id), 0) FROM calls")
    return row[0] if row else 0


def _check_consistent(db_path):
    """No call twice, and the stream counters agree with the rows: returns the call count."""
    row = _query(
        db_path,
        "SELECT (SELECT count(*) FROM calls), (SELECT count(DISTINCT call_id) FROM calls),"
        " coalesce(sum(lines), 0), coalesce(sum(events), 0), coalesce(sum(quarantined), 0),"
        " coalesce(sum(skipped), 0) FROM streams",
    )
    if row is None:
        return 0
    calls, distinct, lines, events, quarantined, skipped = row
    assert calls == distinct
    assert events == calls
    assert lines == events + quarantined + skipped
    return calls


def _call_ids(db_path):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return Counter(row[0] for row in db.execute("SELECT call_id FROM calls"))
    finally:
        db.close()


def _write_trace(path, total, bad_every):
    """``total`` lines, every ``bad_every``-th one invalid: returns (good call ids, bad offsets)."""
    chunks, good, bad_offsets, offset = [], Counter(), set(), 0
    for n in range(total):
        data = BAD_LINE if n % bad_every == bad_every - 1 else line(n)
        if data is BAD_LINE:
            bad_offsets.add(offset)
        else:
            good[cid(n)] += 1
        chunks.append(data)
        offset += len(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(chunks))
    return good, bad_offsets


def _wait_for_a_commit(db_path, daemon, timeout=30.0):
    """Until a daemon just started has committed a batch (or the trace is all in): a slow
    start on a loaded machine must not turn every kill into a kill before the first commit."""
    before, deadline = _progress(db_path), time.monotonic() + timeout
    while _progress(db_path) == before and time.monotonic() < deadline:
        assert daemon.poll() is None, "the daemon exited"
        time.sleep(0.02)


def _started(log_path) -> int:
    """How many daemons logged that they started."""
    return log_path.read_text(errors="replace").count("collector started")


def _children(pid):
    """The processes ``pid`` started (its parse workers and their resource tracker)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return {int(line) for line in found.stdout.split()}


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_and_reap(process):
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=30)


def test_ingest_killed_repeatedly_then_completed_has_every_line_once(tmp_path):
    total, bad_every = 200_000, 9_973
    trace = tmp_path / "logs" / "trace.jsonl"
    good, bad_offsets = _write_trace(trace, total, bad_every)
    config = _config(tmp_path)
    db_path = tmp_path / "state" / "ledger.db"
    rng = random.Random(20260101)
    command = [*CLI, "ingest", "--config", str(config), "--json"]

    log_path = tmp_path / "ingest.log"
    step = 0.8 * len(good) / 7
    exits, orphans = [], set()
    for k in range(7):
        target = rng.randint(int(k * step), int((k + 1) * step))
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=log
            )
            # The kill moment: once the ledger has reached a random row count (spread over the
            # file), a random bit later: mid-read, mid-parse or mid-commit.
            while process.poll() is None and _progress(db_path) < target:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.3))
            workers = _children(process.pid)
            exits.append(_kill_and_reap(process))
            orphans.update(workers)
        _check_consistent(db_path)
    assert set(exits) <= {-signal.SIGKILL, 0}, log_path.read_text()
    assert exits.count(-signal.SIGKILL) >= 5, exits
    assert 0 < _check_consistent(db_path) < len(good)
    assert orphans, "no parse worker ever started: the orphan check proves nothing"
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in orphans) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in orphans if _alive(pid)], "parse workers outlived a killed ingest"

    final = subprocess.run(
        command, cwd=tmp_path, env=_env(), capture_output=True, timeout=120, check=False
    )
    assert final.returncode == 0, final.stderr.decode()
    counts = orjson.loads(final.stdout)
    assert counts["lines"] == counts["events"] + counts["quarantined"]
    assert counts["lines"] > 0

    assert _call_ids(db_path) == good
    assert _check_consistent(db_path) == len(good)
    lines, quarantined = _query(db_path, "SELECT sum(lines), sum(quarantined) FROM streams")
    assert (lines, quarantined) == (total, len(bad_offsets))
    # A crash between the quarantine write and the commit may repeat an entry, never lose one.
    entries = [orjson.loads(raw) for raw in (tmp_path / "state" / "quarantine.jsonl").open("rb")]
    assert {entry["offset"] for entry in entries} == bad_offsets
    assert {entry["source"] for entry in entries} == {str(trace)}

    again = subprocess.run(
        command, cwd=tmp_path, env=_env(), capture_output=True, timeout=60, check=False
    )
    assert orjson.loads(again.stdout) == {"lines": 0, "events": 0, "quarantined": 0, "skipped": 0}
    assert _call_ids(db_path) == good


class _Writer(threading.Thread):
    """An application appending lines in pieces cut anywhere, rotating (rename+create) once."""

    def __init__(self, logs, total, rotate_after, db_path, seed):
        super().__init__(daemon=True)
        self.trace = logs / "trace.jsonl"
        self.total, self.rotate_after, self.db_path = total, rotate_after, db_path
        self.rng = random.Random(seed)
        self.error = None

    def run(self):
        try:
            self._write()
        except BaseException as error:  # reported by the test
            self.error = error

    def _write(self):
        file = self.trace.open("ab", buffering=0)
        pending, n, rotate_at = b"", 0, self.rotate_after
        while n < self.total or pending:
            if n == rotate_at and not pending:
                file, rotate_at = self._rotate(file), None
            size = self.rng.randint(1, 20_000)
            while len(pending) < size and n < self.total and n != rotate_at:
                pending += line(n)
                n += 1
            file.write(pending[:size])
            pending = pending[size:]
            time.sleep(self.rng.uniform(0, 0.012))  # some 8 s of writing
        file.close()

    def _rotate(self, file):
        # A file renamed away before the collector ever saw it cannot be followed: rotate once
        # the collector has read some of it, as it would have in a long-running setup.
        while _progress(self.db_path) == 0:
            time.sleep(0.01)
        file.close()
        os.rename(self.trace, self.trace.with_name("trace.jsonl.1"))
        return self.trace.open("ab", buffering=0)


def test_daemon_killed_while_the_writer_appends_then_restarted_has_every_line_once(tmp_path):
    total = 60_000
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "trace.jsonl").touch()
    config = _config(tmp_path, poll_interval="50ms", rescan_interval="250ms")
    db_path = tmp_path / "state" / "ledger.db"
    rng = random.Random(20260102)
    log = (tmp_path / "daemon.log").open("ab")

    def start():
        return subprocess.Popen(
            [*CLI, "run", "--config", str(config)],
            cwd=tmp_path,
            env=_env(),
            stdout=log,
            stderr=log,
        )

    writer = _Writer(logs, total, total // 2, db_path, seed=rng.random())
    daemon = start()
    try:
        writer.start()
        at_kill = []
        for _ in range(5):
            _wait_for_a_commit(db_path, daemon)
            time.sleep(rng.uniform(0, 0.5))
            assert _kill_and_reap(daemon) == -signal.SIGKILL
            at_kill.append(_check_consistent(db_path))
            time.sleep(rng.uniform(0, 0.5))  # down for a while; the writer goes on (may rotate)
            daemon = start()
        writer.join(timeout=60)
        assert writer.error is None
        assert not writer.is_alive()
        assert any(0 < calls < total for calls in at_kill), at_kill

        deadline = time.monotonic() + 60
        while _check_consistent(db_path) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        # All may have been read before the last kill: stop the new daemon once it is up.
        while _started(tmp_path / "daemon.log") < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:  # a failed assertion must not leave a daemon behind
            daemon.kill()
            daemon.wait()
        log.close()

    assert _call_ids(db_path) == Counter(cid(n) for n in range(total))
    assert _check_consistent(db_path) == total
    rotated = str(logs / "trace.jsonl.1")
    state = _query(db_path, f"SELECT state FROM streams WHERE path = '{rotated}'")
    assert state == ("done",)
    assert _query(db_path, "SELECT sum(quarantined), sum(skipped) FROM streams") == (0, 0)
