"""The ledger never gives an id twice, even after the newest rows were deleted."""

from rollup_harness import BERLIN, Tiers, call, score, us

from collector.ledger import delete_events


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
    assert delete_events(tiers.db, "calls", "ts_us < ?", (10_000_000,)) == 2
    tiers.add(calls=[call(3_000_000)])
    assert _ids(tiers, "calls") == [3]
    tiers.close()
