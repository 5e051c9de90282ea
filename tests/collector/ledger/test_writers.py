"""A batch commits only from the offset it was read at (compare-and-set), so two readers of one
ledger never count a line twice even without the writer lock; a damaged or unusable ledger is
refused with one line that names it."""

import sqlite3

import pytest

from collector.ingest.pipeline import open_for_writing
from collector.ledger.connection import Batch, Ledger, LedgerError, OffsetMoved
from collector.tiers.marks import mark_written
from schemas.config import CollectorConfig
from tests.collector.tailing_harness import Rig, append, cids, lines, make_tailer


def test_commit_refuses_an_offset_another_connection_moved(tmp_path):
    first, second = Ledger(tmp_path / "ledger.db"), Ledger(tmp_path / "ledger.db")
    stream = first.add_stream("s", "/x", 1, 2, 3, b"fp")
    stale = second.streams()[0]
    first.commit(stream, Batch(lines=5, skipped=5), 500, mark_written)
    with pytest.raises(OffsetMoved, match="no longer 0"):
        second.commit(stale, Batch(lines=5, skipped=5), 500, mark_written)
    assert first.totals()["lines"] == 5
    second.reload(stale)
    assert (stale.offset, stale.counts["lines"]) == (500, 5)
    second.commit(stale, Batch(lines=1, skipped=1), 600, mark_written)
    assert first.totals()["lines"] == 6
    first.close()
    second.close()


def test_a_second_connection_adding_the_same_file_gets_the_same_stream(tmp_path):
    first, second = Ledger(tmp_path / "ledger.db"), Ledger(tmp_path / "ledger.db")
    one = first.add_stream("s", "/x", 1, 2, 3, b"fp")
    assert second.add_stream("s", "/x", 1, 2, 3, b"fp").id == one.id
    assert second.add_stream("s", "/x", 1, 2, 3, b"other content").id != one.id
    first.close()
    second.close()


def test_two_tailers_on_one_ledger_read_each_line_once(tmp_path):
    """What the writer lock prevents, the offset check survives: two readers interleaved."""
    rig = Rig(tmp_path)
    other_ledger = Ledger(rig.config.ledger.path)
    other = make_tailer(rig.config, other_ledger, rig.clock)
    for start in range(0, 3000, 500):
        append(rig.trace, lines(range(start, start + 500)))
        first, second = (rig.tailer, other) if start % 1000 else (other, rig.tailer)
        first.scan()
        second.scan()
        first.poll()
        second.poll()
    assert rig.call_ids() == cids(range(3000))
    assert rig.totals()["lines"] == 3000
    other.close()
    other_ledger.close()
    rig.close()


def _config(tmp_path) -> CollectorConfig:
    return CollectorConfig(
        sources=[{"path": str(tmp_path / "*.jsonl")}],
        ledger={"path": tmp_path / "ledger.db"},
        quarantine={"path": tmp_path / "q" / "quarantine.jsonl"},
    )


def test_a_damaged_ledger_is_refused_at_start_with_what_to_do(tmp_path):
    config = _config(tmp_path)
    ledger = Ledger(config.ledger.path)
    with ledger.transaction() as db:
        db.executemany(
            "INSERT INTO scores (ts_us, name, value, extra, stream_id) VALUES (?, 'q', 1, ?, 1)",
            [(n, "x" * 200) for n in range(5000)],
        )
    ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.close()
    with config.ledger.path.open("r+b") as file:  # overwrite pages in the middle of the table
        file.seek(8 * 4096)
        file.write(b"\xff" * 3 * 4096)
    with pytest.raises(LedgerError) as caught:
        open_for_writing(config, "test")
    message = str(caught.value)
    assert f"the ledger {config.ledger.path} is damaged" in message
    assert "restore the last backup" in message and "\n" not in message


def test_a_file_that_is_not_a_ledger_is_named(tmp_path):
    config = _config(tmp_path)
    config.ledger.path.write_bytes(b"not sqlite at all" * 300)
    with pytest.raises(
        LedgerError, match=f"cannot open the ledger {config.ledger.path}: file is not a"
    ):
        Ledger(config.ledger.path)


def test_a_full_ledger_rolls_the_batch_back_with_its_quarantine_entries(tmp_path):
    """SQLite's own "database or disk is full" (its page limit standing in for the disk): the
    offset stays, and each failed retry takes its quarantine entries back, so a bad line is in
    the quarantine file once when the batch finally commits."""
    rig = Rig(tmp_path)
    append(rig.trace, lines(range(100)))
    rig.cycle()
    pages = rig.ledger.db.execute("PRAGMA page_count").fetchone()[0]
    rig.ledger.db.execute(f"PRAGMA max_page_count = {pages}")
    append(rig.trace, b'{"not": "an event"}\n' + lines(range(100, 3100)))
    for _ in range(3):
        with pytest.raises(sqlite3.OperationalError, match="full"):
            rig.tailer.poll()
        assert rig.totals()["lines"] == 100
    rig.ledger.db.execute("PRAGMA max_page_count = 1000000")
    rig.tailer.poll()
    assert rig.call_ids() == cids(range(3100))
    assert [entry["offset"] for entry in rig.quarantined()] == [len(lines(range(100)))]
    assert rig.totals()["quarantined"] == 1
    rig.close()
