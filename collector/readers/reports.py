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
from collector.tiers import marks
from collector.tiers.rawrollup import raw_groups
from collector.tiers.sketch import ensure_math_functions
from collector.tiers.store import Aggregate, rows_by
from collector.tiers.summary import metrics
from collector.tiers.windows import HOUR_US, Calendar
from reports.reader import Cell, Row

FINER = {"1mo": "1d", "1d": "1h", "1h": "raw"}
_ROLLED = ("1h", "1d", "1mo")
_NEVER = 1 << 62


class LedgerReportReader:
    """Reads a ledger connection of its own; ``dimensions`` are the tiers' grouping."""

    def __init__(self, db: sqlite3.Connection, zone: ZoneInfo, dimensions: Sequence[str]) -> None:
        ensure_math_functions(db)
        self.db = db
        self.calendar = Calendar(zone)
        self.dimensions: Sequence[str] = tuple(dimensions)

    def empty(self) -> Aggregate:
        return Aggregate()

    def metrics(self, cell: Cell) -> dict[str, Any]:
        """The figures of a cell this reader made (`empty`, `rows`); TypeError for another's."""
        if not isinstance(cell, Aggregate):
            raise TypeError(f"not a cell of the ledger's reader: {type(cell).__name__}")
        return metrics(cell)

    def rows(self, start_us: int, end_us: int, tier: str, by: Sequence[str]) -> Iterator[Row]:
        cut = min(end_us, max(start_us, self.fresh_until(tier)))
        if cut > start_us:
            yield from rows_by(self.db, tier, start_us, cut, by)
        if cut < end_us:
            finer = FINER[tier]
            if finer == "raw":
                yield from self._raw_rows(cut, end_us, by)
            else:
                yield from self.rows(cut, end_us, finer, by)

    def fresh_until(self, tier: str) -> int:
        """Windows of ``tier`` starting before this are rolled and up to date."""
        hour = marks.first_pending_hour(self.db)
        fresh = _NEVER if hour is None else self.calendar.hour(hour * HOUR_US).start_us
        for above in _ROLLED[1 : _ROLLED.index(tier) + 1]:
            if fresh != _NEVER:
                fresh = self.calendar.window(above, fresh).start_us
            dirty = marks.first_dirty(self.db, above)
            if dirty is not None:
                fresh = min(fresh, dirty)
        return fresh

    def _raw_rows(self, start_us: int, end_us: int, by: Sequence[str]) -> Iterator[Row]:
        window = self.calendar.hour(start_us)
        while window.start_us < end_us:
            groups = raw_groups(self.db, by, window.start_us, window.end_us)
            for group, aggregate in groups.values():
                yield window.start_us, tuple(group.dimensions[name] for name in by), aggregate
            window = self.calendar.hour(window.end_us)

    def alerts(self, start_us: int, end_us: int) -> list[AlertEpisode]:
        return episodes(self.db, start_us, end_us)
