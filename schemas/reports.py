"""The ``reports`` configuration section: when daily, weekly and monthly summaries go out, where.

``at`` is a local time in the top-level ``timezone``: ``"01:00"`` (daily), ``"mon 02:00"``
(weekly, a weekday) or ``"1 03:00"`` (monthly, a day of the month, 1 to 28 so that every month
has it). Each schedule is off unless given.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from schemas.alerting import AlertingConfig
from schemas.durations import Duration
from schemas.section import SECTION_CONFIG


class _Section(BaseModel):
    model_config = SECTION_CONFIG


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("daily", "weekly", "monthly")
_CLOCK = r"([01]\d|2[0-3]):([0-5]\d)"


class _Schedule(_Section):
    """When a report is due and who gets it: ``to`` by email, ``slack`` a digest."""

    at: str
    """When it is due, local to the top-level ``timezone``: ``"01:00"`` (daily),
    ``"mon 02:00"`` (weekly), ``"1 03:00"`` (monthly, day 1 to 28)."""
    to: list[str] = []
    """Email recipients (sent through ``reports.email_receiver``)."""
    slack: str | None = None
    """A Slack receiver of ``alerting.receivers`` that gets a short digest."""

    def clock(self) -> tuple[int, int]:
        """(hour, minute) of ``at``."""
        hour, minute = self.at.split()[-1].split(":")
        return int(hour), int(minute)


class DailySchedule(_Schedule):
    """The calendar day before, due daily at ``at`` (``"01:00"``)."""

    @field_validator("at")
    @classmethod
    def _daily(cls, value: str) -> str:
        if not re.fullmatch(_CLOCK, value.strip()):
            raise ValueError(f'{value!r} is not a time of day; write e.g. "01:00"')
        return value.strip()


class WeeklySchedule(_Schedule):
    """The ISO week (Monday to Sunday) before, due at ``at`` (``"mon 02:00"``)."""

    @field_validator("at")
    @classmethod
    def _weekly(cls, value: str) -> str:
        parts = value.lower().split()
        if len(parts) != 2 or parts[0] not in WEEKDAYS or not re.fullmatch(_CLOCK, parts[1]):
            raise ValueError(f'{value!r} is not a weekday and time; write e.g. "mon 02:00"')
        return " ".join(parts)

    def weekday(self) -> str:
        return self.at.split()[0]


class MonthlySchedule(_Schedule):
    """The month before, due at ``at`` (``"1 03:00"``: day of the month 1-28, time)."""

    @field_validator("at")
    @classmethod
    def _monthly(cls, value: str) -> str:
        parts = value.split()
        ok = len(parts) == 2 and parts[0].isdigit() and 1 <= int(parts[0]) <= 28
        if not ok or not re.fullmatch(_CLOCK, parts[1]):
            raise ValueError(
                f'{value!r} is not a day of the month (1-28) and time; write e.g. "1 03:00"'
            )
        return f"{int(parts[0])} {parts[1]}"

    def day(self) -> int:
        return int(self.at.split()[0])


Schedule = DailySchedule | WeeklySchedule | MonthlySchedule


class ReportsConfig(_Section):
    """Scheduled summaries: archived under ``output_dir``, emailed, optionally a Slack digest."""

    output_dir: Path = Path("reports")
    """Files go to ``<output_dir>/daily/2026-11-20.md`` and ``.html``, ``weekly/2026-W47.*``,
    ``monthly/2026-11.*``, with their charts (PNG) beside them."""
    email_receiver: str | None = None
    """The email receiver of ``alerting.receivers`` whose SMTP settings send the reports (its
    own ``to`` is not used); null = no email."""
    daily: DailySchedule | None = None
    weekly: WeeklySchedule | None = None
    monthly: MonthlySchedule | None = None
    grace: Duration = timedelta(hours=6)
    """A report that fell due while the daemon was down still goes out after start-up if it
    is at most this late; never twice (a sent-log in the ledger)."""
    top_n: int = Field(10, ge=1, le=100)
    """Rows per table (by task type, model, provider, tenant); the rest is summed in
    ``(other)``."""
    retry_interval: Duration = timedelta(minutes=5)
    """How long after a failed delivery (SMTP or Slack down) it is tried again."""

    def schedules(self) -> dict[str, Schedule]:
        """The enabled schedules by kind."""
        found = {kind: getattr(self, kind) for kind in KINDS}
        return {kind: schedule for kind, schedule in found.items() if schedule is not None}

    def check_receivers(self, alerting: AlertingConfig) -> None:
        """ValueError naming the field when a named receiver is missing or of the wrong kind."""
        kinds = {
            r.name: "email" if r.email else "slack" if r.slack else "console"
            for r in alerting.receivers
        }
        if self.email_receiver is not None and kinds.get(self.email_receiver) != "email":
            raise ValueError(
                f"reports.email_receiver: {self.email_receiver!r} is not an email receiver"
                " under alerting.receivers"
            )
        for kind, schedule in self.schedules().items():
            if schedule.to and self.email_receiver is None:
                raise ValueError(f"reports.{kind}.to: set reports.email_receiver to send email")
            if schedule.slack is not None and kinds.get(schedule.slack) != "slack":
                raise ValueError(
                    f"reports.{kind}.slack: {schedule.slack!r} is not a Slack receiver"
                    " under alerting.receivers"
                )
