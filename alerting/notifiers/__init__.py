"""Receivers' senders: console, Slack, email. Each raises `NotifyError` when not delivered."""

from __future__ import annotations

from typing import Protocol

from alerting.message import Notification


class NotifyError(Exception):
    """The receiver did not take the notification; it stays in the outbox."""


class Notifier(Protocol):
    async def send(self, notification: Notification) -> None:
        """Deliver or raise; a return means the receiver acknowledged it."""
        ...
