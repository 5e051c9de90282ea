"""Report periods in the reporting zone: calendar day, ISO week, month; labels and buckets."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from reports.periods import Period
from tests.reports.report_harness import BERLIN, local_us


def test_daily_period_of_a_dst_day_has_25_hour_buckets():
    period = Period.containing("daily", date(2026, 10, 25), BERLIN)
    assert (period.start_us, period.end_us) == (local_us(2026, 10, 25), local_us(2026, 10, 26))
    assert len(period.buckets()) == 25
    assert period.label == "2026-10-25"
    assert period.previous().label == "2026-10-24"
    assert period.trailing() == [local_us(2026, 10, day) for day in range(18, 25)]


def test_weekly_period_is_the_iso_week_monday_to_sunday():
    period = Period.containing("weekly", date(2026, 11, 22), BERLIN)  # a Sunday
    assert (period.first, period.end) == (date(2026, 11, 16), date(2026, 11, 23))
    assert period.label == "2026-W47"
    assert len(period.buckets()) == 7
    assert period.trailing()[0] == local_us(2026, 10, 19)
    assert Period.from_label("weekly", "2026-W47", BERLIN) == period


def test_monthly_period_and_its_trailing_three_months_cross_the_year():
    period = Period.containing("monthly", date(2027, 2, 10), BERLIN)
    assert (period.label, len(period.buckets())) == ("2027-02", 28)
    assert period.previous().label == "2027-01"
    assert period.trailing() == [local_us(2026, 11, 1), local_us(2026, 12, 1), local_us(2027, 1, 1)]
    assert Period.from_label("monthly", "2027-02", BERLIN) == period


@pytest.mark.parametrize(
    ("kind", "berlin", "utc"),
    [("daily", "2026-11-22", "2026-11-21"), ("weekly", "2026-W47", "2026-W46")],
)
def test_last_complete_period_is_judged_in_the_reporting_zone(kind, berlin, utc):
    now = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # Monday 00:30 in Berlin, Sunday in UTC
    assert Period.last_complete(kind, now, BERLIN).label == berlin
    assert Period.last_complete(kind, now, ZoneInfo("UTC")).label == utc
