"""The ledger never gives an id twice, even after the newest rows were deleted; streams are
found by device and inode."""

from dataclasses import replace

from collector.ledger import events
from collector.ledger.connection import Ledger
from tests.collector.rollup_harness import BERLIN, Tiers, call, score, us


def _ids(tiers, table):
    return [row[0] for row in tiers.db.execute(f"SELECT id FROM {table} ORDER BY id")]


def test_ids_go_on_above_rows_a_rollup_consumed(tmp_path):
    tiers = Tiers(tmp_path, zone=BERLIN, retention={"raw": "7d"})
    now = us(2026, 11, 21, 12, zone=BERLIN)
    tiers.add(calls=[call(now - 3_600_000_000)])
    tiers.roll(now)
    tiers.retention.expire(now)
    # A late event for a sealed hour gets the top id, then the rollup absorbs and deletes it.
    late = us(2026, 11, 1, 10, zone=BERLIN)
    tiers.add(calls=[call(late)], scores=[score(late, 0.5)])
    top_call, top_score = _ids(tiers, "calls")[-1], _ids(tiers, "scores")[-1]
    tiers.roll(now)
    assert late not in [r[0] for r in tiers.db.execute("SELECT ts_us FROM calls")]
    tiers.add(calls=[call(now), call(now + 1)], scores=[score(now, 0.7)])
    assert _ids(tiers, "calls")[-2:] == [top_call + 1, top_call + 2]
    assert _ids(tiers, "scores")[-1] == top_score + 1
    tiers.close()


def test_ids_go_on_after_retention_emptied_the_table(tmp_path):
    tiers = Tiers(tmp_path)
    tiers.add(calls=[call(1_000_000), call(2_000_000)])
    with tiers.ledger.transaction() as db:
        assert events.delete(db, "calls", "ts_us < ?", (10_000_000,)) == 2
    tiers.add(calls=[call(3_000_000)])
    assert _ids(tiers, "calls") == [3]
    tiers.close()


def test_stream_by_inode_is_the_newest_stream_of_that_file_in_any_state(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        old = ledger.add_stream("s", "t.jsonl.1", 1, 42, 4, b"old")
        ledger.save_stream(replace(old, state="done"))
        other = ledger.add_stream("s", "u.jsonl", 1, 43, 4, b"oth")
        reused = ledger.add_stream("s", "t.jsonl", 1, 42, 4, b"new")  # the inode came back
        ledger.save_stream(replace(reused, state="rotated"))
        assert ledger.stream_by_inode(1, 42) == replace(reused, state="rotated")
        assert ledger.stream_by_inode(1, 43) == other
        assert ledger.stream_by_inode(2, 42) is None
    finally:
        ledger.close()
