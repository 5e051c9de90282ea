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

import orjson

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
_ALERT_LOOKBACK_US = 35 * 24 * HOUR_US
"""How far before a period a firing notice is looked for (repeats come every few hours)."""


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

    def alerts(self, start_us: int, end_us: int) -> list[dict[str, Any]]:
        episodes: dict[tuple[str, int], dict[str, Any]] = {}
        notices = self.db.execute(
            "SELECT alert_key, payload FROM notifications WHERE created_us >= ? AND created_us < ?"
            " ORDER BY id",
            (start_us - _ALERT_LOOKBACK_US, end_us),
        )
        for key, payload in notices:
            notice = orjson.loads(payload)
            if notice["starts_us"] is not None:
                episode = episodes.setdefault((key, notice["starts_us"]), _episode(notice))
                episode["value"] = notice["value"]
                episode["resolved_us"] = notice["ends_us"]
        firing = self.db.execute(
            "SELECT labels, fired_us, value, summary FROM alert_state WHERE state = 'firing'"
            " AND fired_us < ?",
            (end_us,),
        )
        for key, fired_us, value, summary in firing:
            notice = {"labels": orjson.loads(key), "starts_us": fired_us, "ends_us": None}
            episodes[(key, fired_us)] = _episode(notice | {"value": value, "summary": summary})
        found = [
            e
            for e in episodes.values()
            if e["fired_us"] < end_us and (e["resolved_us"] is None or e["resolved_us"] >= start_us)
        ]
        return sorted(found, key=lambda e: (e["fired_us"], e["alertname"]))


def _episode(notice: dict[str, Any]) -> dict[str, Any]:
    labels = dict(notice["labels"])
    return {
        "alertname": labels.pop("alertname", ""),
        "severity": labels.pop("severity", ""),
        "labels": labels,
        "fired_us": notice["starts_us"],
        "resolved_us": notice["ends_us"],
        "value": notice.get("value"),
        "summary": notice.get("summary") or "",
    }
