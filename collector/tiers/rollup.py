"""Rolling pending windows into the tiers: 1h from raw events, 1d from 1h, 1mo from 1d.

What needs rolling is recorded, never rescanned: ingest marks the UTC hours of every batch in
``rollup_pending`` (one ``INSERT OR IGNORE`` per distinct hour, in the commit), and rolling a
window marks its parent window in ``rollup_dirty``. A window is rolled once it has ended before
``until`` (the daemon passes now minus the grace); a late event marks its hour again, so the
window and the ones above it are rolled again. Each window is rolled in one transaction that
also clears its mark: an event committed meanwhile either is in the roll or marks it anew.

A window is normally recomputed from its source rows and overwritten. Once retention has
deleted the source rows of a window (it is *sealed*, see `collector.tiers.retention`), the source
rows still present arrived later: they are added to the window's rows and deleted with them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

from collector.tiers import marks
from collector.tiers.rawrollup import consume_raw, raw_groups
from collector.tiers.sketch import ensure_math_functions
from collector.tiers.store import Aggregate, Group, merge_rows, read_window_rows, write_window
from collector.tiers.windows import HOUR_US, PARENT, Calendar, Window

log = logging.getLogger("collector.rollup")

SOURCE = {"1h": "raw", "1d": "1h", "1mo": "1d"}
ROLLED_TIERS = ("1h", "1d", "1mo")

ProgressCallback = Callable[[str, int, int], None]
"""Called with (tier, windows done, windows known) as a roll advances."""


@contextmanager
def atomic(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, or nothing when the caller already holds one."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back itself (a full disk)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def sealed_before(db: sqlite3.Connection, tier: str) -> int | None:
    """Windows of ``tier`` ending at or before this have lost their source rows to retention."""
    row = db.execute("SELECT sealed_before_us FROM tier_state WHERE tier = ?", (tier,)).fetchone()
    return None if row is None else row[0]


@dataclass
class Rolled:
    """Windows rolled, rows written and seconds spent, per tier."""

    windows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLLED_TIERS, 0))
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLLED_TIERS, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ROLLED_TIERS, 0.0))


class RollStopped(Exception):
    """`Roller.stop_requested` was set: the windows rolled so far are committed."""


class Roller:
    """Rolls a ledger's pending windows, grouped by ``dimensions``, in ``zone``'s calendar.

    Setting ``stop_requested`` (from any thread) makes `roll` raise `RollStopped` before its
    next window, so a shutdown never waits for a long catch-up.
    """

    def __init__(self, db: sqlite3.Connection, zone: ZoneInfo, dimensions: Sequence[str]) -> None:
        ensure_math_functions(db)
        self.db = db
        self.calendar = Calendar(zone)
        self.dimensions = tuple(dimensions)
        self.stop_requested = False

    def roll(self, until_us: int, on_progress: ProgressCallback | None = None) -> Rolled:
        """Roll every pending window that ends at or before ``until_us``, finest tier first."""
        rolled = Rolled()
        for tier in ROLLED_TIERS:
            started = time.perf_counter()
            if tier == "1h":
                self._roll_hours(until_us, rolled, on_progress)
            else:
                self._roll_dirty(tier, until_us, rolled, on_progress)
            rolled.seconds[tier] = time.perf_counter() - started
        return rolled

    def _roll_hours(
        self, until_us: int, rolled: Rolled, on_progress: ProgressCallback | None
    ) -> None:
        marks = [h for (h,) in self.db.execute("SELECT hour FROM rollup_pending ORDER BY hour")]
        for done, hour in enumerate(marks, start=1):
            self.check_stop()
            unmark = ("DELETE FROM rollup_pending WHERE hour = ?", (hour,))
            try:
                windows = self.calendar.hours_of_utc_hour(hour)
                if windows[-1].end_us > until_us:
                    break
                with atomic(self.db):
                    for window in windows:
                        rolled.rows["1h"] += self._roll_window(window)
                    self.db.execute(*unmark)
            except OverflowError:
                self._give_up(unmark, hour * HOUR_US)
                continue
            rolled.windows["1h"] += len(windows)
            if on_progress:
                on_progress("1h", done, len(marks))

    def _roll_dirty(
        self, tier: str, until_us: int, rolled: Rolled, on_progress: ProgressCallback | None
    ) -> None:
        starts = [
            s
            for (s,) in self.db.execute(
                "SELECT window_start_us FROM rollup_dirty WHERE tier = ? ORDER BY window_start_us",
                (tier,),
            )
        ]
        for done, start in enumerate(starts, start=1):
            self.check_stop()
            unmark = (
                "DELETE FROM rollup_dirty WHERE tier = ? AND window_start_us = ?",
                (tier, start),
            )
            try:
                window = self.calendar.window(tier, start)
                if window.end_us > until_us:
                    break
                with atomic(self.db):
                    if self._sources_pending(window):
                        continue
                    rolled.rows[tier] += self._roll_window(window)
                    self.db.execute(*unmark)
            except OverflowError:
                self._give_up(unmark, start)
                continue
            rolled.windows[tier] += 1
            if on_progress:
                on_progress(tier, done, len(starts))

    def _give_up(self, unmark: tuple[str, tuple[Any, ...]], ts_us: int) -> None:
        """Drop the mark of a window the calendar cannot hold (next to year 1 or 9999)."""
        with atomic(self.db):
            self.db.execute(*unmark)
        log.warning(
            "events at %d µs since 1970 lie at the end of the calendar (years 1 to 9999 in %s):"
            " they are left out of the tiers",
            ts_us,
            self.calendar.zone.key,
        )

    def check_stop(self) -> None:
        """Raise `RollStopped` if a stop was requested."""
        if self.stop_requested:
            raise RollStopped

    def _sources_pending(self, window: Window) -> bool:
        """Whether a window below this one still waits (a mark made since this roll began)."""
        first, last = window.start_us // HOUR_US, -(-window.end_us // HOUR_US)
        hours = self.db.execute(
            "SELECT 1 FROM rollup_pending WHERE hour >= ? AND hour < ? LIMIT 1", (first, last)
        ).fetchone()
        days = self.db.execute(
            "SELECT 1 FROM rollup_dirty WHERE tier = '1d' AND window_start_us >= ?"
            " AND window_start_us < ? LIMIT 1",
            (window.start_us, window.end_us),
        ).fetchone()
        return hours is not None or (window.tier == "1mo" and days is not None)

    def _roll_window(self, window: Window) -> int:
        """Recompute (or, sealed, extend) one window's rows; mark its parent; rows written."""
        tier = window.tier
        groups = self._source_groups(window)
        sealed = sealed_before(self.db, tier)
        if sealed is not None and window.end_us <= sealed:
            fresh = ((key, aggregate) for key, (_, aggregate) in groups.items())
            groups = merge_rows(chain(read_window_rows(self.db, tier, *_span(window)), fresh))
            self._consume_sources(window)
        written = write_window(self.db, tier, window.start_us, window.end_us, groups)
        if tier in PARENT:
            parent = self.calendar.window(PARENT[tier], window.start_us)
            marks.mark_dirty(self.db, parent.tier, parent.start_us)
        return written

    def _source_groups(self, window: Window) -> dict[str, tuple[Group, Aggregate]]:
        if window.tier == "1h":
            return raw_groups(self.db, self.dimensions, *_span(window))
        return merge_rows(read_window_rows(self.db, SOURCE[window.tier], *_span(window)))

    def _consume_sources(self, window: Window) -> None:
        if window.tier == "1h":
            consume_raw(self.db, *_span(window))
        else:
            self.db.execute(
                "DELETE FROM rollups WHERE tier = ? AND window_start_us >= ?"
                " AND window_start_us < ?",
                (SOURCE[window.tier], *_span(window)),
            )


def _span(window: Window) -> tuple[int, int]:
    return window.start_us, window.end_us
