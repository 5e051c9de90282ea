"""Retention: delete each tier's rows once they are older than ``tiers.retention``.

Rows that feed a tier above (raw -> 1h -> 1d -> 1mo) are cut one window of that tier at a
time; each cut is one transaction that first rolls every pending window up to the cut, then
deletes the rows, then *seals* the windows above them (``tier_state.sealed_before_us``): raw
rows are deleted only once their windows are rolled, and a late event for a sealed window is
added to it instead of recomputing it from rows that are gone. A tier is kept at least as long
as the tier it is rolled from, whatever its own retention says, so no window is ever
recomputed from part of its sources. A roll stopped inside a cut (`RollStopped`) rolls that
cut back; the cuts before it stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from collector.ledger import events
from collector.tiers.rollup import Roller, atomic, sealed_before

_FEEDS = {"raw": "1h", "1h": "1d", "1d": "1mo"}
_FAR_PAST = -(2**62)


def _us(value: timedelta) -> int:
    return value // timedelta(microseconds=1)


class Retention:
    """Expires the rows of a ledger's tiers; rolls what is pending before it deletes."""

    def __init__(self, roller: Roller, retention: Mapping[str, timedelta | None]) -> None:
        self.roller = roller
        self.db = roller.db
        self.retention = retention

    def expire(self, now_us: int) -> dict[str, int]:
        """Delete what is older than each tier's retention at ``now_us``; rows deleted per tier."""
        deleted = {tier: self._seal(tier, now_us) for tier in _FEEDS}
        deleted["1mo"] = self._expire_top(now_us)
        return deleted

    def _boundary(self, tier: str, now_us: int) -> int | None:
        """Where ``tier``'s rows may be cut: a window start of the tier above, or None."""
        keep = self.retention.get(tier)
        if keep is None:
            return None
        limit = now_us - _us(keep)
        if tier != "raw":
            below = sealed_before(self.db, tier)
            if below is None:
                return None
            limit = min(limit, below)
        return self.roller.calendar.window(_FEEDS[tier], limit).start_us

    def _seal(self, tier: str, now_us: int) -> int:
        """Cut ``tier`` up to its boundary one window of the tier above at a time, each in its
        own transaction, so that no cut holds the ledger long (the first after a backfill)."""
        boundary = self._boundary(tier, now_us)
        deleted = 0
        while boundary is not None:
            self.roller.check_stop()
            with atomic(self.db):
                current = sealed_before(self.db, _FEEDS[tier])
                if current is not None and current >= boundary:
                    break
                deleted += self._cut(tier, self._next_cut(tier, current, boundary))
        return deleted

    def _next_cut(self, tier: str, current: int | None, boundary: int) -> int:
        """The end of the window above holding the oldest row not yet cut, or ``boundary``."""
        oldest = self._oldest(tier, _FAR_PAST if current is None else current)
        if oldest is None or oldest >= boundary:
            return boundary
        try:
            return min(self.roller.calendar.window(_FEEDS[tier], oldest).end_us, boundary)
        except OverflowError:  # a row next to year 1: cut everything up to the boundary at once
            return boundary

    def _oldest(self, tier: str, since_us: int) -> int | None:
        if tier == "raw":
            return events.oldest_us(self.db, since_us)
        return self.db.execute(
            "SELECT min(window_start_us) FROM rollups WHERE tier = ? AND window_start_us >= ?",
            (tier, since_us),
        ).fetchone()[0]

    def _cut(self, tier: str, cut: int) -> int:
        """Roll what is pending up to ``cut``, delete ``tier``'s rows before it, seal above."""
        self.roller.roll(cut)
        deleted = self._delete_before(tier, cut)
        self.db.execute(
            "INSERT OR REPLACE INTO tier_state (tier, sealed_before_us) VALUES (?, ?)",
            (_FEEDS[tier], cut),
        )
        return deleted

    def _delete_before(self, tier: str, boundary: int) -> int:
        if tier == "raw":
            return sum(
                events.delete(self.db, table, "ts_us < ?", (boundary,)) for table in events.TABLES
            )
        return self.db.execute(
            "DELETE FROM rollups WHERE tier = ? AND window_start_us < ?", (tier, boundary)
        ).rowcount

    def _expire_top(self, now_us: int) -> int:
        keep = self.retention.get("1mo")
        if keep is None:
            return 0
        with atomic(self.db):
            return self.db.execute(
                "DELETE FROM rollups WHERE tier = '1mo' AND window_end_us <= ?",
                (now_us - _us(keep),),
            ).rowcount
