"""Retention on a real ledger: each tier loses exactly its expired rows, 1mo never expires, raw
rows outlive their retention until rolled, and late events for sealed windows count once."""

import pytest

from collector.tiers.raw_summary import summarize
from collector.tiers.rollup import RollStopped
from collector.tiers.summary import default_tier, summarize_tier
from collector.tiers.windows import HOUR_US
from tests.collector.rollup_harness import BERLIN, DIMS, Tiers, call, score, us

NOW = us(2026, 6, 15, 12)
DAY = 24 * HOUR_US
GRACE = 5 * 60_000_000
SHORT = {"raw": "2d", "1h": "5d", "1d": "40d", "1mo": "forever"}
RAW_CUT = NOW - 2 * DAY  # 2026-06-13 12:00 UTC, an hour boundary in Berlin
HOUR_CUT = us(2026, 6, 10, zone=BERLIN)  # the day holding now - 5d
DAY_CUT = us(2026, 5, 1, zone=BERLIN)  # the month holding now - 40d
JUNE = us(2026, 6, 1, zone=BERLIN)


def every(step_hours, days):
    return [
        NOW - days * DAY + i * step_hours * HOUR_US + 17 for i in range(days * 24 // step_hours)
    ]


@pytest.fixture
def history(tmp_path):
    """120 days of a call every 3 hours and a score every 6, rolled and expired at NOW."""
    tiers = Tiers(tmp_path, retention=SHORT)
    stamps = every(3, 120)
    tiers.add([call(ts, input_tokens=2) for ts in stamps], [score(ts, 0.5) for ts in every(6, 120)])
    tiers.roll(NOW - GRACE)
    tiers.stamps = stamps
    yield tiers
    tiers.close()


def test_each_tier_keeps_exactly_what_its_retention_covers(history):
    stamps = history.stamps
    raw_before = history.raw_count()
    hourly = [r["window_start_us"] for r in history.rows("1h")]
    daily = {r["window_start_us"] for r in history.rows("1d")}
    deleted = history.retention.expire(NOW)
    raw_left = sorted(t for (t,) in history.db.execute("SELECT ts_us FROM calls"))
    assert raw_left == [t for t in stamps if t >= RAW_CUT]
    assert history.db.execute("SELECT min(ts_us) FROM scores").fetchone()[0] >= RAW_CUT
    assert deleted["raw"] == raw_before - history.raw_count()
    assert [r["window_start_us"] for r in history.rows("1h")] == [
        s for s in hourly if s >= HOUR_CUT
    ]
    assert deleted["1h"] == len([s for s in hourly if s < HOUR_CUT])
    assert {r["window_start_us"] for r in history.rows("1d")} == {s for s in daily if s >= DAY_CUT}
    assert deleted["1mo"] == 0
    months = history.rows("1mo")
    assert sorted({r["window_start_us"] for r in months}) == [
        us(2026, 1, 31, 23),  # February: the first events are of the 15th
        us(2026, 2, 28, 23),
        us(2026, 3, 31, 22),
        us(2026, 4, 30, 22),
    ]
    assert history.totals("1mo") == len([t for t in stamps if t < JUNE])
    assert history.totals("1mo", "input_tokens") == 2 * len([t for t in stamps if t < JUNE])
    assert history.retention.expire(NOW) == {"raw": 0, "1h": 0, "1d": 0, "1mo": 0}
    later = NOW + 5000 * DAY
    history.roll(later)
    history.retention.expire(later)
    assert history.totals("1mo") == len(stamps)  # June was rolled; nothing of 1mo expired
    assert history.rows("1h") == history.rows("1d") == []
    assert history.raw_count() == 0


def test_1mo_expires_when_given_a_retention(tmp_path):
    tiers = Tiers(tmp_path, retention={"raw": "1d", "1h": "1d", "1d": "1d", "1mo": "60d"})
    tiers.add([call(ts) for ts in every(24, 120)])
    tiers.roll(NOW)
    deleted = tiers.retention.expire(NOW)
    months = [r["window_end_us"] for r in tiers.rows("1mo")]
    assert months and min(months) > NOW - 60 * DAY
    assert deleted["1mo"] == 2  # February and March ended more than 60 days ago
    tiers.close()


def test_raw_rows_outlive_their_retention_until_rolled(tmp_path):
    tiers = Tiers(tmp_path, retention=SHORT)
    stamps = every(1, 60)
    tiers.add([call(ts) for ts in stamps])
    tiers.retention.expire(NOW)  # nothing rolled yet: it rolls what it is about to delete
    assert tiers.raw_count() == len([t for t in stamps if t >= RAW_CUT])
    assert tiers.totals("1mo") == len([t for t in stamps if t < JUNE])  # up to the raw cut
    tiers.roll(NOW - GRACE)
    assert tiers.totals("1mo") == len([t for t in stamps if t < JUNE])
    assert sum(r["requests"] for r in tiers.rows("1d")) == len(
        [t for t in stamps if DAY_CUT <= t < us(2026, 6, 15, zone=BERLIN)]
    )
    assert tiers.raw_count() == len([t for t in stamps if t >= RAW_CUT])
    tiers.close()


def test_late_events_for_sealed_windows_count_once(history):
    history.retention.expire(NOW)
    april = us(2026, 4, 26, 10, 30)  # its hour and day are gone; April is sealed
    june = us(2026, 6, 5, 10, 30)  # its hour is gone, its day is kept
    recent = us(2026, 6, 14, 10, 30)  # still raw
    months, days = history.rows("1mo"), history.rows("1d")
    for expected in (1, 2):
        history.add([call(april), call(june), call(recent)])
        history.roll(NOW - GRACE)
        assert history.totals("1mo") == sum(r["requests"] for r in months) + expected
        april_row = next(
            r for r in history.rows("1mo") if r["window_start_us"] == us(2026, 3, 31, 22)
        )
        april_before = next(r for r in months if r["window_start_us"] == us(2026, 3, 31, 22))
        assert april_row["requests"] == april_before["requests"] + expected
        june_day = [r for r in history.rows("1d") if r["window_start_us"] == us(2026, 6, 4, 22)]
        before = [r for r in days if r["window_start_us"] == us(2026, 6, 4, 22)]
        assert june_day[0]["requests"] == before[0]["requests"] + expected
        recent_hour = us(2026, 6, 14, 10)
        hour = [r for r in history.rows("1h") if r["window_start_us"] == recent_hour]
        assert hour[0]["requests"] == expected
    assert not [r for r in history.rows("1h") if r["window_start_us"] < HOUR_CUT]
    assert not [r for r in history.rows("1d") if r["window_start_us"] < DAY_CUT]
    assert (
        history.db.execute("SELECT count(*) FROM calls WHERE ts_us < ?", (RAW_CUT,)).fetchone()[0]
        == 0
    )


def test_sixty_days_backfilled_at_once_fill_every_tier(tmp_path):
    tiers = Tiers(tmp_path)  # the default retention: raw 7d, 1h 30d, 1d 365d, 1mo forever
    stamps = every(1, 60)
    for start in range(0, len(stamps), 500):
        tiers.add(
            [
                call(ts, latency_ms=float(i % 97 + 1))
                for i, ts in enumerate(stamps[start : start + 500], start)
            ]
        )
    tiers.roll(NOW - GRACE)
    tiers.retention.expire(NOW)
    today = us(2026, 6, 15, zone=BERLIN)
    days = tiers.rows("1d")
    assert len(days) == 60
    assert sum(r["requests"] for r in days) == len([t for t in stamps if t < today])
    assert [r["window_start_us"] for r in tiers.rows("1mo")] == [
        us(2026, 3, 31, 22),  # April: the backfill starts on the 16th
        us(2026, 4, 30, 22),
    ]
    assert tiers.totals("1mo") == len([t for t in stamps if t < JUNE])
    hour_cut = us(2026, 5, 16, zone=BERLIN)
    assert sum(r["requests"] for r in tiers.rows("1h")) == len(
        [t for t in stamps if hour_cut <= t < NOW - HOUR_US]
    )
    assert tiers.raw_count() == len([t for t in stamps if t >= NOW - 7 * DAY])
    tiers.close()


def test_a_stop_inside_retention_rolls_back_and_deletes_nothing(tmp_path):
    tiers = Tiers(tmp_path, retention=SHORT)
    tiers.add([call(ts) for ts in every(1, 10)])
    tiers.roller.stop_requested = True
    with pytest.raises(RollStopped):
        tiers.retention.expire(NOW)
    assert tiers.raw_count() == 240
    assert tiers.db.execute("SELECT count(*) FROM tier_state").fetchone() == (0,)
    tiers.close()


def test_summary_defaults_to_the_finest_tier_still_holding_since(history):
    history.retention.expire(NOW)
    cases = [
        (RAW_CUT, "raw"),
        (RAW_CUT - 1, "1h"),
        (HOUR_CUT, "1h"),
        (HOUR_CUT - 1, "1d"),
        (DAY_CUT, "1d"),
        (DAY_CUT - 1, "1mo"),
    ]
    assert [default_tier(history.db, since) for since, _ in cases] == [t for _, t in cases]
    span = (HOUR_CUT, NOW)
    raw = summarize(history.db, *span, [])["totals"]
    hourly = summarize_tier(history.db, "1h", *span, [], DIMS)["totals"]
    assert hourly["requests"] == len([t for t in history.stamps if HOUR_CUT <= t < NOW - GRACE])
    assert raw["requests"] == len([t for t in history.stamps if t >= RAW_CUT])


def test_retention_cuts_window_by_window_and_can_stop_between_cuts(history, monkeypatch):
    cut = history.retention._cut
    cuts = []

    def counted(tier, at):
        cuts.append((tier, at))
        history.roller.stop_requested = len(cuts) == 3
        return cut(tier, at)

    monkeypatch.setattr(history.retention, "_cut", counted)
    before = history.totals("1mo")
    with pytest.raises(RollStopped):
        history.retention.expire(NOW)
    assert [tier for tier, _ in cuts] == ["raw"] * 3
    step = 3 * HOUR_US  # one cut per hour window holding a row: the history has one every 3 h
    assert [at - cuts[0][1] for _, at in cuts] == [0, step, 2 * step]
    (sealed,) = history.db.execute("SELECT sealed_before_us FROM tier_state").fetchone()
    assert sealed == cuts[1][1]  # the third cut was stopped inside and rolled back
    assert history.db.execute("SELECT min(ts_us) FROM calls").fetchone()[0] >= sealed
    history.roller.stop_requested = False
    history.retention.expire(NOW)
    assert history.totals("1mo") == before
    assert history.db.execute("SELECT min(ts_us) FROM calls").fetchone()[0] >= RAW_CUT
