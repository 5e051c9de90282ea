"""The daemon's rollup and retention jobs, on a ledger connection of their own.

Both run their SQLite work in a worker thread, one at a time (`LedgerWorker`), so the tail
loop keeps its own connection; WAL lets them write in turn. The first runs, at start-up, catch up on
whatever closed while the daemon was down. Time comes from an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from collector.errors import describe
from collector.ledger.worker import UNTIL_DONE, LedgerWorker
from collector.retrying import EXPECTED
from collector.tiers.retention import Retention
from collector.tiers.rollup import Roller, RollStopped
from collector.timespec import to_us
from schemas.config import CollectorConfig

log = logging.getLogger("collector.tiers")

ROLLUP_EVERY = timedelta(minutes=1)
RETENTION_EVERY = timedelta(hours=1)
Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime."""


class TierJobs(LedgerWorker):
    """Rolls windows once closed plus ``tiers.grace``; expires rows past ``tiers.retention``."""

    def __init__(self, config: CollectorConfig, clock: Clock) -> None:
        super().__init__(config.ledger.path, log=log)
        self.roller = Roller(self.ledger.db, ZoneInfo(config.timezone), config.dimensions)
        self.retention = Retention(self.roller, config.tiers.retention)
        self.grace = config.tiers.grace
        self.clock = clock
        self.rolled = asyncio.Event()
        """Set after each rollup run, for whoever waits on one."""

    async def rollup(self) -> None:
        await asyncio.to_thread(self.run_now, lambda: self._logged(self._roll))
        self.rolled.set()

    async def expire(self) -> None:
        await asyncio.to_thread(self.run_now, lambda: self._logged(self._expire))

    def close(self, wait: float = UNTIL_DONE) -> None:
        """Stop a running job at its next window (what it rolled stays), close the connection."""
        super().close(wait)

    def _stopping(self) -> None:
        self.roller.stop_requested = True

    def _logged(self, job: Callable[[], None]) -> None:
        try:
            job()
        except RollStopped:
            log.info("%s stopped for shutdown; it goes on at the next start", job.__name__)
        except EXPECTED as error:  # a full disk: one line, not a traceback a minute
            problem = describe(error, self.ledger.path)
            log.error("%s failed: %s; it runs again at its next interval", job.__name__, problem)
        except Exception:
            log.exception("%s failed; it runs again at its next interval", job.__name__)

    def _roll(self) -> None:
        rolled = self.roller.roll(to_us(self.clock() - self.grace))
        if any(rolled.windows.values()):
            log.info(
                "rolled %s",
                ", ".join(
                    f"{tier}: {rolled.windows[tier]} windows in {rolled.seconds[tier]:.2f} s"
                    for tier in rolled.windows
                ),
            )

    def _expire(self) -> None:
        deleted = self.retention.expire(to_us(self.clock()))
        if any(deleted.values()):
            log.info("retention deleted %s", ", ".join(f"{t}: {n}" for t, n in deleted.items()))
