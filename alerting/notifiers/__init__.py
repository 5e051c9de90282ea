"""Receivers' senders: console, Slack, email. Each raises `NotifyError` when not delivered."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from alerting.message import Notification
from schemas.errors import RetryableError


class NotifyError(RetryableError):
    """The receiver did not take the notification; it stays in the outbox and is sent again
    after ``retry_interval`` (a report channel: after ``reports.retry_interval``)."""


class Notifier(Protocol):
    async def send(self, notification: Notification) -> None:
        """Deliver or raise; a return means the receiver acknowledged it."""
        ...


@runtime_checkable
class BlockingNotifier(Protocol):
    """A notifier whose client blocks a thread (slack-sdk): the delivery calls
    ``send_blocking`` on a thread of its own, so a hung receiver never holds one of the
    threads the rest of the process shares."""

    def send_blocking(self, notification: Notification) -> None:
        """Deliver or raise, blocking until the receiver answered or timed out."""
        ...
