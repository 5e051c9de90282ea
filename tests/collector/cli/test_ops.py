"""``llm-collector backup`` while the daemon ingests, and ``export`` of raw and tier rows."""

import csv
import io
import json
import shutil
import sqlite3
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from collector.cli.main import main
from collector.ledger.events import CALL_COLUMNS, SCORE_COLUMNS
from collector.tiers.store import EXPORT_COLUMNS
from tests.collector.daemon_harness import (
    Appender,
    Daemon,
    free_port,
    line_template,
    wait_for,
    write_config,
)
from tests.paths import EXAMPLES

LINE = line_template()


def cli(config, *args, check=True):
    """The command in-process (CliRunner): (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, [*args, "--config", str(config)])
    assert not check or result.exit_code == 0, result.output + str(result.exception)
    return result


def count(path, sql="SELECT count(*) FROM calls"):
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_backup_while_the_daemon_ingests_is_consistent_and_complete(tmp_path):
    config = write_config(tmp_path, free_port())
    trace = tmp_path / "logs" / "trace.jsonl"
    with trace.open("w") as out:
        out.writelines(LINE.format(i=f"b{i}") for i in range(20_000))
    daemon = Daemon(config)
    ledger = tmp_path / "ledger.db"
    try:
        with Appender(trace, LINE.replace('"{i}"', '"g{i}"')):
            assert wait_for(lambda: count(ledger) > 0, process=daemon), daemon.output()
            at_start = count(ledger)
            started = time.monotonic()
            result = cli(str(config), "backup", str(tmp_path / "copy.db"))
            seconds = time.monotonic() - started
            assert result.exit_code == 0, result.output
            after = count(ledger)
    finally:
        code, _ = daemon.stop()
    assert code == 0
    copy = tmp_path / "copy.db"
    assert "integrity ok" in result.stdout
    assert count(copy, "PRAGMA integrity_check") == "ok"
    rows = count(copy)
    assert at_start <= rows <= after
    # One snapshot: the copied read position covers exactly the copied events.
    offset = count(copy, "SELECT offset FROM streams")
    assert trace.read_bytes()[:offset].count(b"\n") == rows
    assert not (tmp_path / "copy.db.partial").exists()
    size = copy.stat().st_size / 2**20
    print(
        f"backup of {size:.1f} MiB ({rows} calls) while ingesting: {seconds:.2f} s (in-process CLI)"
    )


def test_backup_refuses_to_overwrite_without_force(tmp_path):
    config = write_config(tmp_path, free_port())
    (tmp_path / "logs" / "trace.jsonl").write_text(LINE.format(i="x"))
    cli(str(config), "ingest")
    (tmp_path / "copy.db").write_text("keep me")
    refused = cli(str(config), "backup", str(tmp_path / "copy.db"), check=False)
    assert refused.exit_code == 1
    assert "exists; choose another path or pass --force" in refused.stderr
    assert (tmp_path / "copy.db").read_text() == "keep me"
    cli(str(config), "backup", str(tmp_path / "copy.db"), "--force")
    assert count(tmp_path / "copy.db") == 1


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example trace ingested and rolled up."""
    workdir = tmp_path_factory.mktemp("export")
    shutil.copy(EXAMPLES / "trace.jsonl", workdir / "trace.jsonl")
    config = workdir / "collector.yaml"
    config.write_text(
        f"sources: [{{path: '{workdir}/trace*.jsonl'}}]\n"
        f"ledger: {{path: '{workdir}/ledger.db'}}\n"
        f"quarantine: {{path: '{workdir}/quarantine.jsonl'}}\n"
    )
    cli(str(config), "ingest")
    cli(str(config), "rollup", "--until", "2026-12-01")
    return config, workdir / "ledger.db"


SPAN = ("--since", "2026-11-18T06:00:00Z", "--until", "2026-11-19T06:00:00Z")
START, END = (int(datetime.fromisoformat(t).timestamp() * 1e6) for t in (SPAN[1], SPAN[3]))


def ledger_rows(ledger, sql, *args):
    db = sqlite3.connect(ledger)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def events(ledger, table, columns):
    """The rows `export` should give for SPAN: id and columns, oldest first."""
    return ledger_rows(
        ledger,
        f"SELECT id, {', '.join(columns)} FROM {table} WHERE ts_us >= ? AND ts_us < ?"
        " ORDER BY ts_us, id",
        START,
        END,
    )


def us(text):
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1_000_000)


def test_export_calls_as_csv_and_jsonl_equal_the_ledger_rows(example):
    config, ledger = example
    columns = [c for c in CALL_COLUMNS if c != "stream_id"]
    expected = events(ledger, "calls", columns)
    assert len(expected) > 1000
    as_jsonl = [
        json.loads(line)
        for line in cli(str(config), "export", *SPAN, "--format", "jsonl").stdout.splitlines()
    ]
    assert [
        (row["id"], us(row["timestamp"]), *(row[c] for c in columns[1:])) for row in as_jsonl
    ] == expected
    out = config.parent / "calls.csv"
    cli(str(config), "export", *SPAN, "--out", str(out))
    with out.open(newline="") as file:
        header, *rows = list(csv.reader(file))
    assert header == ["id", "timestamp", *columns[1:]]
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert int(row[0]) == want[0] and us(row[1]) == want[1]
        assert row[2:] == ["" if v is None else str(v) for v in want[2:]]


def test_export_scores_and_a_tier(example):
    config, ledger = example
    scores = cli(str(config), "export", *SPAN, "--scores", "--format", "jsonl").stdout.splitlines()
    columns = [c for c in SCORE_COLUMNS if c != "stream_id"]
    expected = events(ledger, "scores", columns)
    assert len(scores) == len(expected) > 0
    assert [json.loads(line)["value"] for line in scores] == [row[3] for row in expected]

    tier = cli(str(config), "export", *SPAN, "--tier", "1h", "--format", "jsonl").stdout
    # A group with no priced call has no cost (null), not $0.
    columns = [
        "CASE WHEN unpriced < requests THEN cost_usd END" if c == "cost_usd" else c
        for c in EXPORT_COLUMNS
    ]
    expected = ledger_rows(
        ledger,
        f"SELECT {', '.join(columns)} FROM rollups WHERE tier = '1h'"
        " AND window_start_us >= ? AND window_start_us < ? ORDER BY window_start_us, group_key",
        START,
        END,
    )
    rows = [json.loads(line) for line in tier.splitlines()]
    assert len(rows) == len(expected) > 24
    assert [
        (us(r["window_start"]), us(r["window_end"]), *(r[c] for c in EXPORT_COLUMNS[2:]))
        for r in rows
    ] == expected
    assert (
        sum(r["requests"] for r in rows)
        == ledger_rows(
            ledger, "SELECT count(*) FROM calls WHERE ts_us >= ? AND ts_us < ?", START, END
        )[0][0]
    )
    unpriced = [r for r in rows if r["unpriced"] == r["requests"]]
    assert unpriced and all(r["cost_usd"] is None for r in unpriced)
    day = cli(str(config), "export", *SPAN, "--tier", "1d").stdout
    assert next(csv.reader(io.StringIO(day)))[:3] == ["window_start", "window_end", "model"]


def test_export_refuses_scores_from_a_tier(example):
    config, _ = example
    result = cli(str(config), "export", "--tier", "1h", "--scores", check=False)
    assert result.exit_code == 2
    assert "--scores exports raw score events; drop --tier" in result.stderr
