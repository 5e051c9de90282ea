"""Shared by the rollup tests: ledger rows written through `Ledger.commit` (so ingest marks
their hours pending, as in production), rolling and expiring with an explicit clock, and
readers of the tier rows."""

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from collector.ledger.connection import Batch, Ledger
from collector.ledger.events import CALL_COLUMNS, SCORE_COLUMNS
from collector.tiers.marks import mark_written
from collector.tiers.retention import Retention
from collector.tiers.rollup import Roller
from collector.timespec import to_us
from schemas.config import TiersConfig

BERLIN = ZoneInfo("Europe/Berlin")
DIMS = ["model", "provider", "task_type", "status"]
ACCURACY = 0.01
SLACK = 1e-9
"""Floating-point slack on top of the 1% bound (a value on a bin boundary, ulps)."""


def us(*args, zone=UTC) -> int:
    return to_us(datetime(*args, tzinfo=zone))


FAR = us(2100, 1, 1)


def call(ts_us, **fields) -> tuple:
    row = dict.fromkeys(CALL_COLUMNS)
    row.update(ts_us=ts_us, model="m1", status="ok", stream_id=1)
    row.update(fields)
    return tuple(row[c] for c in CALL_COLUMNS)


def score(ts_us, value, **fields) -> tuple:
    row = dict.fromkeys(SCORE_COLUMNS)
    row.update(ts_us=ts_us, name="helpful", value=value, stream_id=1)
    row.update(fields)
    return tuple(row[c] for c in SCORE_COLUMNS)


class Tiers:
    """A ledger in a temp dir with a roller and a retention policy."""

    def __init__(self, path, zone=BERLIN, dims=DIMS, retention=None) -> None:
        self.ledger = Ledger(path / "ledger.db")
        self.db = self.ledger.db
        self.stream = self.ledger.add_stream("test", "trace.jsonl", 1, 1, 0, b"")
        self.offset = 0
        self.roller = Roller(self.db, zone, dims)
        config = TiersConfig(retention=retention or {})
        self.retention = Retention(self.roller, config.retention)

    def add(self, calls=(), scores=()) -> None:
        self.offset += 1
        self.ledger.commit(
            self.stream, Batch(calls=list(calls), scores=list(scores)), self.offset, mark_written
        )

    def roll(self, until_us=None):
        return self.roller.roll(FAR if until_us is None else until_us)

    def rows(self, tier, columns="*"):
        cursor = self.db.execute(
            f"SELECT {columns} FROM rollups WHERE tier = ? ORDER BY window_start_us, group_key",
            (tier,),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def totals(self, tier, column="requests"):
        (value,) = self.db.execute(
            f"SELECT coalesce(sum({column}), 0) FROM rollups WHERE tier = ?", (tier,)
        ).fetchone()
        return value

    def raw_count(self):
        return sum(
            self.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("calls", "scores")
        )

    def close(self):
        self.ledger.close()


def rank_bounds(values, q):
    """The two raw values around rank q*(n-1): the exact percentile (linear interpolation
    between closest ranks) lies between them, and DDSketch answers the value at the lower rank
    within its relative accuracy."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    return ordered[math.floor(position)], ordered[math.ceil(position)]


def within_accuracy(got, values, q) -> bool:
    low, high = rank_bounds(values, q)
    return low * (1 - ACCURACY) * (1 - SLACK) <= got <= high * (1 + ACCURACY) * (1 + SLACK)


def hours(n) -> timedelta:
    return timedelta(hours=n)
