"""Time in the alerting package as epoch microseconds, in exact integer arithmetic (float
seconds lose microseconds far from 1970). Alerting never imports collector: its own copy."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def wall_clock_us() -> int:
    """Now, in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_us(moment: datetime) -> int:
    """``moment`` in microseconds since the epoch; a naive one is read as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MICROSECOND


def from_us(us_since_epoch: int) -> datetime:
    """The UTC instant ``us_since_epoch`` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=us_since_epoch)


def us(delta: timedelta) -> int:
    """``delta`` in whole microseconds."""
    return delta // MICROSECOND
