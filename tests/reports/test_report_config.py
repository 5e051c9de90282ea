"""The reports section: schedules' ``at`` per kind, receivers that exist and fit; errors name
the field."""

import pytest

from collector.configfile import ConfigError, load_config
from schemas.config import CollectorConfig

RECEIVERS = {
    "receivers": [
        {
            "name": "team",
            "email": {
                "host": "smtp.example.com",
                "sender": "a@example.com",
                "to": ["t@example.com"],
            },
        },
        {"name": "oncall", "slack": {"webhook_url": "https://hooks.example/x"}},
    ]
}


def load(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


def test_defaults_are_off_and_a_full_section_loads():
    assert CollectorConfig().reports.schedules() == {}
    config = CollectorConfig(
        alerting=RECEIVERS,
        reports={
            "email_receiver": "team",
            "daily": {"at": "01:00", "to": ["lead@example.com"], "slack": "oncall"},
            "weekly": {"at": "Mon 02:00", "to": ["lead@example.com"]},
            "monthly": {"at": "1 03:00"},
        },
    )
    assert list(config.reports.schedules()) == ["daily", "weekly", "monthly"]
    assert config.reports.weekly.at == "mon 02:00"
    assert config.reports.grace.total_seconds() == 6 * 3600


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("daily: {at: '25:00'}", "reports.daily.at: '25:00' is not a time of day"),
        ("weekly: {at: '02:00'}", "reports.weekly.at: '02:00' is not a weekday and time"),
        ("monthly: {at: '31 03:00'}", "reports.monthly.at: '31 03:00' is not a day of the month"),
        ("daily: {at: '01:00', when: x}", "reports.daily.when: unknown option"),
    ],
)
def test_a_bad_schedule_names_the_field(tmp_path, section, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"reports:\n  {section}\n")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("reports", "message"),
    [
        ("{email_receiver: nobody}", "reports.email_receiver: 'nobody' is not an email receiver"),
        ("{email_receiver: oncall}", "reports.email_receiver: 'oncall' is not an email receiver"),
        ("{daily: {at: '01:00', to: [a@example.com]}}", "reports.daily.to: set reports.email_rec"),
        ("{weekly: {at: mon 01:00, slack: team}}", "reports.weekly.slack: 'team' is not a Slack"),
    ],
)
def test_an_unknown_or_unfit_receiver_names_the_field(tmp_path, reports, message):
    receivers = (
        "alerting:\n  receivers:\n"
        "    - {name: team, email: {host: h, sender: a@example.com, to: [t@example.com]}}\n"
        "    - {name: oncall, slack: {webhook_url: 'https://hooks.example/x'}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"{receivers}reports: {reports}\n")
    assert message in str(info.value)
