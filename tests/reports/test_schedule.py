"""Schedules: APScheduler cron triggers in the reporting zone and the latest time one fell due."""

from datetime import timedelta

from reports.schedule import last_due, trigger
from schemas.reports import DailySchedule, MonthlySchedule, WeeklySchedule
from tests.reports.report_harness import BERLIN, when


def test_daily_weekly_monthly_fire_at_local_times():
    daily = trigger(DailySchedule(at="01:00"), BERLIN)
    weekly = trigger(WeeklySchedule(at="mon 02:00"), BERLIN)
    monthly = trigger(MonthlySchedule(at="1 03:00"), BERLIN)
    now = when(2026, 11, 20, 12, 0)  # a Friday
    assert daily.get_next_fire_time(None, now) == when(2026, 11, 21, 1, 0)
    assert weekly.get_next_fire_time(None, now) == when(2026, 11, 23, 2, 0)
    assert monthly.get_next_fire_time(None, now) == when(2026, 12, 1, 3, 0)


def test_last_due_is_the_latest_fire_time_not_after_now():
    daily = trigger(DailySchedule(at="01:00"), BERLIN)
    assert last_due(daily, when(2026, 11, 21, 3, 0)) == when(2026, 11, 21, 1, 0)
    assert last_due(daily, when(2026, 11, 21, 1, 0)) == when(2026, 11, 21, 1, 0)
    assert last_due(daily, when(2026, 11, 21, 0, 59)) == when(2026, 11, 20, 1, 0)
    monthly = trigger(MonthlySchedule(at="1 03:00"), BERLIN)
    assert last_due(monthly, when(2026, 11, 30, 23, 0)) == when(2026, 11, 1, 3, 0)
    weekly = trigger(WeeklySchedule(at="mon 02:00"), BERLIN)
    due = last_due(weekly, when(2026, 11, 22, 12, 0))
    assert due == when(2026, 11, 16, 2, 0)
    assert when(2026, 11, 22, 12, 0) - due < timedelta(days=7)
