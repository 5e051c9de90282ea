"""Retention: delete each tier's rows once they are older than ``tiers.retention``.

Rows that feed a tier above (raw -> 1h -> 1d -> 1mo) go in one transaction that first rolls
every pending window up to the cut-off, then deletes the rows, then *seals* the windows above
them (``tier_state.sealed_before_us``): raw rows are deleted only once their windows are
rolled, and a late event for a sealed window is added to it instead of recomputing it from
rows that are gone. A tier is kept at least as long as the tier it is rolled from, whatever
its own retention says, so no window is ever recomputed from part of its sources. A roll
stopped inside that transaction (`RollStopped`) rolls it all back: nothing is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from collector.rollup import Roller, atomic, sealed_before

_FEEDS = {"raw": "1h", "1h": "1d", "1d": "1mo"}


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
        boundary = self._boundary(tier, now_us)
        if boundary is None:
            return 0
        above = _FEEDS[tier]
        with atomic(self.db):
            current = sealed_before(self.db, above)
            if current is not None and boundary <= current:
                return 0
            self.roller.roll(boundary)
            deleted = self._delete_before(tier, boundary)
            self.db.execute(
                "INSERT OR REPLACE INTO tier_state (tier, sealed_before_us) VALUES (?, ?)",
                (above, boundary),
            )
        return deleted

    def _delete_before(self, tier: str, boundary: int) -> int:
        if tier == "raw":
            return sum(
                self.db.execute(f"DELETE FROM {table} WHERE ts_us < ?", (boundary,)).rowcount
                for table in ("calls", "scores")
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
