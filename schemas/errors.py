"""The collector's errors: one base class, split by what the caller should do next.

The three delivery paths (InfluxDB batches, alert notifications, report channels) each keep
their work on a `RetryableError` and set it aside on a `PermanentError`.
"""

from __future__ import annotations


class CollectorError(Exception):
    """A failure the user can act on; ``str(error)`` is the whole, one-line explanation."""


class RetryableError(CollectorError):
    """It may work later (a server unreachable or busy, a full disk): keep the work and try
    again after ``after`` seconds (None: the caller's own backoff)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class PermanentError(CollectorError):
    """It will fail the same way again (a request refused for good): set the work aside with
    the reason and go on with the rest."""
