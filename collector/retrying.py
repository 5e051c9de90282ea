"""Waiting after failures: a doubling, capped delay, and one log line per failed attempt.

A full disk or an unreachable server fails every attempt; logged with a traceback at every
poll, it buried the log (199 tracebacks in 80 s). Here each attempt logs one line that names
the error and the wait, and the wait doubles up to a cap.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from collector.errors import describe
from schemas.errors import CollectorError

EXPECTED = (CollectorError, OSError, sqlite3.Error)
"""Failures of the files, the disk or the ledger: described in one line, no traceback."""


@dataclass
class Backoff:
    """Exponential delay between failed attempts, capped; the server's Retry-After wins, up
    to the cap too (a 429 asking for a day must not stop shipping for a day)."""

    initial: float = 1.0
    cap: float = 60.0
    current: float = 0.0

    def next(self, retry_after: float | None) -> float:
        self.current = min(self.cap, self.current * 2 or self.initial)
        return self.current if retry_after is None else min(retry_after, self.cap)

    def reset(self) -> None:
        self.current = 0.0


class FailureLog:
    """Logs each failed attempt of ``what`` once and says how long to wait before the next."""

    def __init__(
        self, log: logging.Logger, what: str, backoff: Backoff, ledger: object = None
    ) -> None:
        self.log = log
        self.what = what
        self.backoff = backoff
        self.ledger = ledger

    def failed(self, error: Exception) -> float:
        """The wait before the next attempt; an unexpected error is logged with its traceback."""
        wait = self.backoff.next(None)
        if isinstance(error, EXPECTED):
            problem = describe(error, self.ledger)
            self.log.error("%s failed: %s; retrying in %.3g s", self.what, problem, wait)
        else:
            self.log.error("%s failed; retrying in %.3g s", self.what, wait, exc_info=error)
        return wait

    def succeeded(self) -> None:
        self.backoff.reset()
