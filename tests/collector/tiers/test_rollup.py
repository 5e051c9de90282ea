"""Rolling the tiers on a real ledger: when windows roll, late events, idempotence, DST and month
ends, what ingest marks, and the rows a sink reads."""

import sqlite3
from zoneinfo import ZoneInfo

import pytest

from collector.ledger.connection import MIGRATIONS, Ledger
from collector.tiers.rollup import RollStopped
from collector.tiers.store import tier_rows_after
from collector.tiers.windows import HOUR_US, Calendar
from tests.collector.rollup_harness import BERLIN, FAR, Tiers, call, score, us

H10 = us(2026, 3, 31, 10, zone=BERLIN)  # the last day of March, 10:00 in Berlin
METRICS = ("requests", "errors", "input_tokens", "latency_count", "latency_sum", "quality_count")


@pytest.fixture
def tiers(tmp_path):
    tiers = Tiers(tmp_path)
    yield tiers
    tiers.close()


def snapshot(tiers, columns="*"):
    return {tier: tiers.rows(tier, columns) for tier in ("1h", "1d", "1mo")}


def test_ingest_marks_each_hour_it_writes_once(tiers):
    tiers.add([call(H10 + 1), call(H10 + 2), call(H10 + HOUR_US)], [score(H10 + 3 * HOUR_US, 1.0)])
    marks = [h for (h,) in tiers.db.execute("SELECT hour FROM rollup_pending ORDER BY hour")]
    first = H10 // HOUR_US
    assert marks == [first, first + 1, first + 3]


def test_a_window_rolls_once_ended_and_not_before(tiers):
    tiers.add([call(H10 + 5, latency_ms=100.0), call(H10 + HOUR_US - 1, latency_ms=300.0)])
    end = H10 + HOUR_US
    assert tiers.roll(end - 1).windows == {"1h": 0, "1d": 0, "1mo": 0}
    assert tiers.rows("1h") == []
    rolled = tiers.roll(end)
    assert rolled.windows == {"1h": 1, "1d": 0, "1mo": 0}
    [row] = tiers.rows("1h")
    assert (row["window_start_us"], row["window_end_us"]) == (H10, end)
    assert (row["requests"], row["latency_min"], row["latency_max"]) == (2, 100.0, 300.0)
    day_end = us(2026, 4, 1, zone=BERLIN)
    assert tiers.roll(day_end - 1).windows["1d"] == 0
    assert tiers.roll(day_end).windows == {"1h": 0, "1d": 1, "1mo": 1}  # March ends with the day
    assert [r["requests"] for r in tiers.rows("1mo")] == [2]


def test_a_late_event_is_counted_once_in_every_tier(tiers):
    tiers.add([call(H10 + i * 60_000_000, input_tokens=10, latency_ms=50.0) for i in range(5)])
    tiers.roll()
    before = snapshot(tiers)
    last_seq = max(r["seq"] for rows in before.values() for r in rows)
    tiers.add([call(H10 + 30, input_tokens=7, latency_ms=5000.0)])
    rolled = tiers.roll()
    assert rolled.windows == {"1h": 1, "1d": 1, "1mo": 1}
    for tier in ("1h", "1d", "1mo"):
        [row] = tiers.rows(tier)
        assert (row["requests"], row["input_tokens"], row["latency_count"]) == (6, 57, 6)
        assert row["latency_max"] == 5000.0
        assert row["latency_sum"] == 5250.0
        assert row["seq"] > last_seq  # a sink reading past its cursor gets the new version
    assert tiers.roll().windows == {"1h": 0, "1d": 0, "1mo": 0}
    assert tiers.totals("1mo") == 6


def test_rolling_twice_changes_nothing(tiers):
    tiers.add(
        [call(H10 + i * 7_000_000_000, latency_ms=float(i), model=f"m{i % 3}") for i in range(40)],
        [score(H10 + i * 9_000_000_000, 0.5, model="m1") for i in range(10)],
    )
    tiers.roll()
    first = snapshot(tiers)
    assert tiers.roll().rows == {"1h": 0, "1d": 0, "1mo": 0}
    assert snapshot(tiers) == first
    hours = {r["window_start_us"] // HOUR_US for r in first["1h"]}
    tiers.db.executemany("INSERT INTO rollup_pending (hour) VALUES (?)", [(h,) for h in hours])
    rolled = tiers.roll()
    assert rolled.windows["1h"] == len(hours)
    columns = "window_start_us, window_end_us, group_key, requests, latency_sketch, latency_p50"
    assert snapshot(tiers, columns) == {
        tier: [{k: r[k] for k in columns.split(", ")} for r in rows] for tier, rows in first.items()
    }


def test_berlin_dst_days_have_23_and_25_hour_windows(tmp_path):
    tiers = Tiers(tmp_path)
    days = [(us(2026, 3, 28, 23), 23), (us(2026, 10, 24, 22), 25)]  # local midnights, in UTC
    for midnight, length in days:
        tiers.add([call(midnight + h * HOUR_US + 1) for h in range(length)])
    tiers.roll()
    hourly = tiers.rows("1h")
    assert len(hourly) == 23 + 25
    assert all(r["window_end_us"] - r["window_start_us"] == HOUR_US for r in hourly)
    daily = tiers.rows("1d")
    assert [(r["window_start_us"], r["requests"]) for r in daily] == [(m, n) for m, n in days]
    assert [r["window_end_us"] - r["window_start_us"] for r in daily] == [
        23 * HOUR_US,
        25 * HOUR_US,
    ]
    tiers.close()


def test_month_ends_follow_the_local_calendar(tiers):
    tiers.add([call(us(2026, 3, 31, 21, 30)), call(us(2026, 3, 31, 22, 30))])  # 23:30, 00:30 CEST
    tiers.roll()
    months = [(r["window_start_us"], r["window_end_us"], r["requests"]) for r in tiers.rows("1mo")]
    assert months == [
        (us(2026, 2, 28, 23), us(2026, 3, 31, 22), 1),
        (us(2026, 3, 31, 22), us(2026, 4, 30, 22), 1),
    ]


@pytest.mark.parametrize(
    ("zone", "day_start", "hours", "last"),
    [
        ("Asia/Kolkata", us(2026, 3, 28, 18, 30), 24, 1.0),
        ("Australia/Lord_Howe", us(2026, 4, 4, 13), 25, 0.5),  # clocks back 30 minutes
        ("Australia/Lord_Howe", us(2026, 10, 3, 13, 30), 24, 0.5),  # forward 30 minutes
        ("America/Santiago", us(2026, 9, 6, 4), 23, 1.0),  # midnight skipped: 01:00 is first
    ],
)
def test_calendar_days_in_odd_zones(zone, day_start, hours, last):
    calendar = Calendar(ZoneInfo(zone))
    day = calendar.day(day_start + 7_200_000_000)
    assert day.start_us == day_start
    windows = [calendar.hour(day.start_us)]
    while windows[-1].end_us < day.end_us:
        windows.append(calendar.hour(windows[-1].end_us))
    assert len(windows) == hours
    assert (windows[-1].end_us - windows[-1].start_us) / HOUR_US == last
    assert calendar.day(day.start_us - 1).end_us == day.start_us


def test_a_utc_hour_spans_two_windows_in_a_half_hour_zone(tmp_path):
    tiers = Tiers(tmp_path, zone=ZoneInfo("Asia/Kolkata"))
    tiers.add([call(us(2026, 3, 28, 18, 15)), call(us(2026, 3, 28, 18, 45))])
    tiers.roll()
    rows = [(r["window_start_us"], r["requests"]) for r in tiers.rows("1h")]
    assert rows == [(us(2026, 3, 28, 17, 30), 1), (us(2026, 3, 28, 18, 30), 1)]
    assert [r["window_start_us"] for r in tiers.rows("1d")] == [
        us(2026, 3, 27, 18, 30),
        us(2026, 3, 28, 18, 30),
    ]
    tiers.close()


def test_score_only_groups_and_no_dimensions(tmp_path):
    tiers = Tiers(tmp_path, dims=[])
    tiers.add([call(H10, quality_score=0.2)], [score(H10, 0.8), score(H10, 7.0)])
    tiers.roll()
    [row] = tiers.rows("1mo")
    assert (row["group_key"], row["requests"], row["quality_count"]) == ("{}", 1, 2)
    assert (row["quality_sum"], row["quality_min"]) == (pytest.approx(1.0), 0.2)
    tiers.close()


def test_tier_rows_after_pages_by_seq(tiers):
    tiers.add(
        [
            call(H10, model="a", latency_ms=10.0, cost_usd=0.5, price_source=0),
            call(H10 + 1, model="b", latency_ms=30.0, quality_score=0.5),
        ]
    )
    tiers.roll()
    first = tier_rows_after(tiers.db, "1h", 0, 1)
    assert [r["dimensions"]["model"] for r in first] == ["a"]
    rest = tier_rows_after(tiers.db, "1h", first[0]["seq"], 100)
    assert [r["dimensions"]["model"] for r in rest] == ["b"]
    row = first[0]
    assert row["dimensions"] == {"model": "a", "provider": None, "task_type": None, "status": "ok"}
    assert (row["tier"], row["window_start_us"], row["window_end_us"]) == (
        "1h",
        H10,
        H10 + HOUR_US,
    )
    assert (row["metrics"]["count"], row["metrics"]["error_rate"]) == (1, 0.0)
    assert row["metrics"]["cost_usd"] == 0.5
    assert row["metrics"]["unpriced"] == 0
    assert row["metrics"]["latency_mean"] == 10.0
    assert row["metrics"]["latency_p99"] == 10.0
    assert rest[0]["metrics"]["unpriced"] == 1
    assert (rest[0]["metrics"]["quality_mean"], rest[0]["metrics"]["quality_min"]) == (0.5, 0.5)
    assert isinstance(row["sketch"], bytes)
    assert tier_rows_after(tiers.db, "1h", rest[0]["seq"], 100) == []
    assert [r["dimensions"]["model"] for r in tier_rows_after(tiers.db, "1mo", 0, 10)] == ["a", "b"]


def test_upgrading_a_v2_ledger_marks_its_events_pending(tmp_path):
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 2")
    for ts in (H10, H10 + 1, -1):
        db.execute(
            "INSERT INTO calls (ts_us, model, status, stream_id) VALUES (?, 'm', 'ok', 1)", (ts,)
        )
    db.execute("INSERT INTO scores (ts_us, name, value, stream_id) VALUES (?, 'q', 1, 1)", (0,))
    db.commit()
    db.close()
    ledger = Ledger(path)
    marks = [h for (h,) in ledger.db.execute("SELECT hour FROM rollup_pending ORDER BY hour")]
    assert marks == [-1, 0, H10 // HOUR_US]
    ledger.close()


def test_a_stop_request_ends_a_roll_between_windows(tiers):
    tiers.add([call(H10 + h * HOUR_US) for h in range(5)])

    def stop_after_two(tier, done, total):
        tiers.roller.stop_requested = done == 2

    with pytest.raises(RollStopped):
        tiers.roller.roll(FAR, on_progress=stop_after_two)
    assert [r["window_start_us"] for r in tiers.rows("1h")] == [H10, H10 + HOUR_US]
    tiers.roller.stop_requested = False
    assert tiers.roll().windows == {"1h": 3, "1d": 1, "1mo": 1}
    assert tiers.totals("1mo") == 5


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "UTC"])
def test_events_at_the_ends_of_the_calendar_do_not_block_the_rest(tmp_path, zone, caplog):
    tiers = Tiers(tmp_path, zone=ZoneInfo(zone))
    first, last = us(1, 1, 1), us(9999, 12, 31, 23, 59)
    tiers.add([call(first), call(H10), call(last)])
    tiers.roll(last + HOUR_US)
    assert [r["requests"] for r in tiers.rows("1h") if r["window_start_us"] == H10] == [1]
    assert tiers.db.execute("SELECT count(*) FROM rollup_pending").fetchone() == (0,)
    assert tiers.raw_count() == 3
    assert "they are left out of the tiers" in caplog.text
    tiers.close()
