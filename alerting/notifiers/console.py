"""The console receiver: notifications as text on a stream (stdout by default)."""

from __future__ import annotations

import sys
from typing import TextIO

from alerting.message import Notification


class ConsoleNotifier:
    """Writes each notification's text; the default receiver when none is configured."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    async def send(self, notification: Notification) -> None:
        stream = self.stream or sys.stdout
        stream.write(notification.text())
        stream.flush()
