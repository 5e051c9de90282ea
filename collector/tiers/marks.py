"""What the tiers still have to roll: the UTC hours ingest wrote into (``rollup_pending``) and
the windows above a rolled one (``rollup_dirty``). `collector.tiers.rollup` clears the marks as
it rolls; a tier is up to date before its earliest mark."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from alerting.db import joins_transaction
from collector.tiers.windows import HOUR_US


@joins_transaction
def mark_written(db: sqlite3.Connection, times_us: Iterable[int]) -> None:
    """Mark the UTC hours of events just written; joins the caller's transaction, the one that
    writes them (`collector.ledger.connection.Ledger.commit`), so no event is left unmarked."""
    hours = {ts_us // HOUR_US for ts_us in times_us}
    db.executemany("INSERT OR IGNORE INTO rollup_pending (hour) VALUES (?)", ((h,) for h in hours))


@joins_transaction
def mark_dirty(db: sqlite3.Connection, tier: str, start_us: int) -> None:
    """Mark the window of ``tier`` starting at ``start_us`` to roll again: a window below it
    changed. Joins the caller's transaction, the one that changed it."""
    db.execute(
        "INSERT OR IGNORE INTO rollup_dirty (tier, window_start_us) VALUES (?, ?)",
        (tier, start_us),
    )


def first_pending_hour(db: sqlite3.Connection) -> int | None:
    """The earliest UTC hour (µs // `HOUR_US`) waiting to be rolled into 1h."""
    (hour,) = db.execute("SELECT min(hour) FROM rollup_pending").fetchone()
    return hour


def first_dirty(db: sqlite3.Connection, tier: str) -> int | None:
    """The start of the earliest window of ``tier`` whose rows below changed since it rolled."""
    (start,) = db.execute(
        "SELECT min(window_start_us) FROM rollup_dirty WHERE tier = ?", (tier,)
    ).fetchone()
    return start
