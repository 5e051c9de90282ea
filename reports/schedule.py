"""When reports fall due: an APScheduler cron trigger per schedule in the reporting zone, and
the latest time one fell due (to catch up after downtime)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from schemas.reports import MonthlySchedule, Schedule, WeeklySchedule

_LOOKBACK = timedelta(days=32)
"""Longer than any schedule's interval, so a due time is always found."""


def trigger(schedule: Schedule, zone: ZoneInfo) -> CronTrigger:
    """The cron trigger of ``schedule``: daily at a time, weekly on a weekday, monthly on a day."""
    hour, minute = schedule.clock()
    fields: dict[str, int | str] = {"hour": hour, "minute": minute}
    if isinstance(schedule, WeeklySchedule):
        fields["day_of_week"] = schedule.weekday()
    if isinstance(schedule, MonthlySchedule):
        fields["day"] = schedule.day()
    return CronTrigger(timezone=zone, **fields)


def last_due(cron: CronTrigger, now: datetime) -> datetime | None:
    """The latest fire time at or before ``now``."""
    last = None
    moment = cron.get_next_fire_time(None, now - _LOOKBACK)
    while moment is not None and moment <= now:
        last = moment
        moment = cron.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return last
