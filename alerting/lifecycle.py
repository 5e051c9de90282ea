"""The alert lifecycle as one pure function, after Prometheus's ``AlertingRule.Eval``.

inactive -> pending when the condition first holds -> firing once it has held ``for`` ->
resolved (inactive again) when it no longer holds and ``keep_firing_for`` has passed since it
last did. A pending alert whose condition stops is forgotten without a word.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class AlertState(StrEnum):
    """An alert's state as the ledger stores it (``alert_state.state``); an inactive alert has
    no row and no `Timers`."""

    PENDING = "pending"
    FIRING = "firing"


class Notice(StrEnum):
    """What receivers are told (``notifications.status`` and the payload's ``status``)."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Timers:
    """A pending or firing alert's state and the times that drive it (epoch microseconds)."""

    state: AlertState
    active_since_us: int
    """When the condition began to hold (the start of ``for``)."""
    last_active_us: int
    """The last evaluation at which it held (the start of ``keep_firing_for``)."""
    fired_us: int | None = None
    """When it started firing; None while pending."""


@dataclass(frozen=True)
class Step:
    """The outcome of one evaluation of one alert."""

    after: Timers | None
    """The new state and timers; None: inactive (its row goes)."""
    notice: Notice | None
    """What to tell receivers (the outbox decides whether a repeat is due); None: nothing."""


def transition(
    before: Timers | None, active: bool, now_us: int, for_us: int, keep_firing_for_us: int
) -> Step:
    """The next state of an alert (``before``: None when inactive) given whether its condition
    holds at ``now_us``."""
    if active:
        return _active(before, now_us, for_us)
    if before is None or before.state == AlertState.PENDING:
        return Step(None, None)
    if now_us - before.last_active_us < keep_firing_for_us:  # a clock stepped back counts too
        return Step(before, Notice.FIRING)
    return Step(None, Notice.RESOLVED)


def _active(before: Timers | None, now_us: int, for_us: int) -> Step:
    timers = (
        Timers(AlertState.PENDING, now_us, now_us)
        if before is None
        else replace(before, last_active_us=now_us)
    )
    if timers.state == AlertState.PENDING and now_us - timers.active_since_us >= for_us:
        timers = replace(timers, state=AlertState.FIRING, fired_us=now_us)
    return Step(timers, Notice.FIRING if timers.state == AlertState.FIRING else None)
