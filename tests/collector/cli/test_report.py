"""``llm-collector report``: files for a period, --format, no data said plainly, --send."""

from datetime import UTC, datetime

import pytest
import yaml
from click.testing import CliRunner

from collector.cli.main import main
from reports.periods import Period
from tests.reports.report_harness import BERLIN, SmtpServer, ledger_with, local_us, make_events


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("ledger")
    calls, scores = make_events(local_us(2026, 11, 19), local_us(2026, 11, 21))
    ledger_with(path, calls, scores).close()
    return path / "ledger.db"


def write_config(tmp_path, ledger, **reports):
    path = tmp_path / "collector.yaml"
    data = {
        "timezone": "Europe/Berlin",
        "ledger": {"path": str(ledger)},
        "dimensions": ["model", "provider", "task_type", "status", "tenant_id"],
        "reports": {"output_dir": str(tmp_path / "archive"), **reports},
    }
    if "email_receiver" in reports:
        data["alerting"] = {"receivers": [{"name": "team", "email": reports.pop("server")}]}
        data["reports"].pop("server")
    path.write_text(yaml.safe_dump(data))
    return path


def report(config, *args):
    return CliRunner().invoke(main, ["report", *args, "--config", str(config)])


def test_daily_report_files_for_a_date(tmp_path, ledger):
    config = write_config(tmp_path, ledger)
    result = report(config, "daily", "--date", "2026-11-20", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "daily"
    assert result.output.splitlines() == [
        str(folder / name)
        for name in (
            "2026-11-20-cost.png",
            "2026-11-20-p95.png",
            "2026-11-20-requests.png",
            "2026-11-20.md",
            "2026-11-20.html",
        )
    ]
    assert (
        (folder / "2026-11-20.md")
        .read_text()
        .startswith("# LLM usage, daily report: Friday 20 November 2026")
    )


def test_format_md_goes_to_the_configured_output_dir(tmp_path, ledger):
    config = write_config(tmp_path, ledger)
    result = report(config, "weekly", "--date", "2026-11-20", "--format", "md")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "archive" / "weekly").iterdir())
    assert names == [
        "2026-W47-cost.png",
        "2026-W47-p95.png",
        "2026-W47-requests.png",
        "2026-W47.md",
    ]


def test_no_data_is_said_plainly_and_nothing_is_written(tmp_path, ledger):
    config = write_config(tmp_path, ledger)
    result = report(config, "monthly", "--date", "2027-03-15")
    assert result.exit_code == 0
    assert result.output == (
        "No data for the monthly report of 2027-03: no calls or scores were recorded between"
        " 2027-03-01 and 2027-04-01 (Europe/Berlin). Nothing written.\n"
    )
    assert not (tmp_path / "archive").exists()


def test_default_is_the_last_complete_period(tmp_path, ledger):
    config = write_config(tmp_path, ledger)
    result = report(config, "daily")
    label = Period.last_complete("daily", datetime.now(UTC), BERLIN).label
    assert result.exit_code == 0
    assert f"report of {label}" in result.output


def test_a_bad_date_is_a_usage_error(tmp_path, ledger):
    result = report(write_config(tmp_path, ledger), "daily", "--date", "last tuesday")
    assert result.exit_code == 2
    assert "--date" in result.output and "is not a time" in result.output


def test_send_emails_the_report_as_scheduled(tmp_path, ledger):
    server = SmtpServer(tmp_path).start()
    try:
        config = write_config(
            tmp_path,
            ledger,
            email_receiver="team",
            server=server.receiver(),
            daily={"at": "01:00", "to": ["lead@example.com"]},
        )
        result = report(config, "daily", "--date", "2026-11-20", "--send")
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "sent by email"
    assert [e.rcpt_tos for e in server.inbox.envelopes] == [["lead@example.com"]]


def test_send_without_a_schedule_says_where_to_configure_it(tmp_path, ledger):
    result = report(write_config(tmp_path, ledger), "daily", "--date", "2026-11-20", "--send")
    assert result.exit_code == 1
    assert "reports.daily is not configured: nowhere to send it" in result.output
    assert not (tmp_path / "archive").exists()
