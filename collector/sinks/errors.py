"""How a send to a sink can fail: try again later, or refused for good (the split every
delivery path shares, `schemas.errors`)."""

from __future__ import annotations

from schemas.errors import PermanentError, RetryableError


class RetryLater(RetryableError):
    """The batch was not stored; send it again after ``after`` seconds (None: own backoff)."""


class Refused(PermanentError):
    """The server refused the batch for good (a 4xx such as 400 or 422): set it aside."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
