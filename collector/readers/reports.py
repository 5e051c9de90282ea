"""The reports' `ReportReader` over the ledger: tier rows where rolled, finer data elsewhere.

A tier is up to date before its earliest outstanding mark: an hour ingest marked pending, or a
day or month whose rows below it changed since it was rolled. Rows of the asked tier cover the
span up to there; the rest comes from the next finer tier, and below 1h from the raw events
grouped per hour window, so a report of a period that is still open (or was never rolled)
counts every event once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from alerting.history import AlertEpisode, episodes
from collector.tiers.rawrollup import raw_groups
from collector.tiers.sketch import ensure_math_functions
from collector.tiers.store import METRIC_COLUMNS, Aggregate, aggregate_from_row
from collector.tiers.summary import metrics
from collector.tiers.windows import HOUR_US, Calendar
from reports.reader import Row

FINER = {"1mo": "1d", "1d": "1h", "1h": "raw"}
_ROLLED = ("1h", "1d", "1mo")
_NEVER = 1 << 62


class LedgerReportReader:
    """Reads a ledger connection of its own; ``dimensions`` are the tiers' grouping."""

    def __init__(self, db: sqlite3.Connection, zone: ZoneInfo, dimensions: Sequence[str]) -> None:
        ensure_math_functions(db)
        self.db = db
        self.calendar = Calendar(zone)
        self.dimensions = tuple(dimensions)

    def empty(self) -> Aggregate:
        return Aggregate()

    def metrics(self, cell: Aggregate) -> dict[str, Any]:
        return metrics(cell)

    def rows(self, start_us: int, end_us: int, tier: str, by: Sequence[str]) -> Iterator[Row]:
        cut = min(end_us, max(start_us, self.fresh_until(tier)))
        if cut > start_us:
            yield from self._tier_rows(tier, start_us, cut, by)
        if cut < end_us:
            finer = FINER[tier]
            if finer == "raw":
                yield from self._raw_rows(cut, end_us, by)
            else:
                yield from self.rows(cut, end_us, finer, by)

    def fresh_until(self, tier: str) -> int:
        """Windows of ``tier`` starting before this are rolled and up to date."""
        (hour,) = self.db.execute("SELECT min(hour) FROM rollup_pending").fetchone()
        fresh = _NEVER if hour is None else self.calendar.hour(hour * HOUR_US).start_us
        for above in _ROLLED[1 : _ROLLED.index(tier) + 1]:
            if fresh != _NEVER:
                fresh = self.calendar.window(above, fresh).start_us
            (dirty,) = self.db.execute(
                "SELECT min(window_start_us) FROM rollup_dirty WHERE tier = ?", (above,)
            ).fetchone()
            if dirty is not None:
                fresh = min(fresh, dirty)
        return fresh

    def _tier_rows(self, tier: str, start_us: int, end_us: int, by: Sequence[str]) -> Iterator[Row]:
        select = "".join(f"{name}, " for name in by)
        rows = self.db.execute(
            f"SELECT window_start_us, {select}{', '.join(METRIC_COLUMNS)}, latency_sketch"
            " FROM rollups WHERE tier = ? AND window_start_us >= ? AND window_start_us < ?",
            (tier, start_us, end_us),
        )
        width = len(by) + 1
        for row in rows:
            yield row[0], tuple(row[1:width]), aggregate_from_row(row[width:])

    def _raw_rows(self, start_us: int, end_us: int, by: Sequence[str]) -> Iterator[Row]:
        window = self.calendar.hour(start_us)
        while window.start_us < end_us:
            groups = raw_groups(self.db, by, window.start_us, window.end_us)
            for group, aggregate in groups.values():
                yield window.start_us, tuple(group.dimensions[name] for name in by), aggregate
            window = self.calendar.hour(window.end_us)

    def alerts(self, start_us: int, end_us: int) -> list[AlertEpisode]:
        return episodes(self.db, start_us, end_us)
