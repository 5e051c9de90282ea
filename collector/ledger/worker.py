"""A ledger connection of its own, one run at a time: how a part of the daemon shares its
connection with the runs that use it.

Each part (rollup and retention, alert evaluation, reports, the InfluxDB drain, /healthz) has a
connection of its own, used by one run at a time. Closing a connection under a running query
crashes SQLite (the daemon died with SIGSEGV at SIGTERM), so `LedgerWorker.close` waits for the
run in progress, up to a limit, and past it leaves the connection to that run: the process
exits anyway, and whatever the run had not committed is done again after the restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from collector.ledger.connection import Ledger

_log = logging.getLogger("collector.daemon")
T = TypeVar("T")
UNTIL_DONE = threading.TIMEOUT_MAX
"""A `LedgerWorker.close` wait as long as the run takes (for runs that stop when asked)."""


class LedgerWorker:
    """A ledger connection of its own, used by one run at a time until `close`.

    A run in a worker thread goes through `run_now` (it waits for the run in progress); a run
    on the event loop takes its `turn` (skipped while another run is going). Neither starts
    once `close` began.
    """

    def __init__(
        self,
        path: Path,
        *,
        log: logging.Logger = _log,
        still_running: str = "a run was still going at exit",
    ) -> None:
        """``log`` gets ``still_running`` when `close` leaves the connection to a run."""
        self.ledger = Ledger(path)
        self.log = log
        self.still_running = still_running
        self._busy = threading.Lock()
        """Held by the run in progress (and by `close` while it closes)."""
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `close` began: no run starts any more."""
        return self._closed

    def run_now(self, work: Callable[[], T]) -> T | None:
        """``work()`` once the run in progress ends, or None without running it once closed.
        Blocks: call it in a worker thread."""
        with self._busy:
            if self._closed:
                return None
            return work()

    @contextmanager
    def turn(self) -> Iterator[bool]:
        """Whether a run may start now (False while another one is going, or once closed),
        held to the end of the block, across awaits: for a run on the event loop."""
        if not self._busy.acquire(blocking=False):
            yield False
            return
        try:
            yield not self._closed  # checked under the lock: close may have run meanwhile
        finally:
            self._busy.release()

    def close(self, wait: float = 2.0) -> None:
        """Stop starting runs, then close once the run in progress ends. Past ``wait`` seconds
        the run keeps the connection, and this returns."""
        self._closed = True
        self._stopping()
        if not self._busy.acquire(timeout=wait):
            self.log.warning("%s", self.still_running)
            return
        try:
            self._release()
        finally:
            self._busy.release()

    def _stopping(self) -> None:
        """Ask the run in progress to end early; `close` calls it before it waits."""

    def _release(self) -> None:
        """Close what the part holds, its ledger connection last; no run is going."""
        self.ledger.close()
