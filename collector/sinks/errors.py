"""How a send to a sink can fail: try again later, or refused for good."""

from __future__ import annotations


class RetryLater(Exception):
    """The batch was not stored; send it again after ``after`` seconds (None: own backoff)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Refused(Exception):
    """The server refused the batch for good (a 4xx such as 400 or 422): set it aside."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
