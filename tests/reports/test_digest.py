"""The Slack digest of a report: names from the data reach Slack escaped (Slack's rules), so a
model named like a mention or a link is shown, never acted on."""

from alerting.slackfmt import escape
from reports.digest import Digest
from tests.reports.report_harness import HOSTILE_MODEL, hostile_day


def test_names_from_the_data_are_escaped_in_the_slack_digest(tmp_path):
    report = hostile_day(tmp_path)
    message = Digest(report).slack()
    header, section = message["attachments"][0]["blocks"]
    body = section["text"]["text"]
    top = report.drivers[0]
    assert top.name.startswith(HOSTILE_MODEL)
    assert escape(f"Top cost: {top.name} ") in body
    assert escape(f", {HOSTILE_MODEL})") in body  # among the unpriced models
    assert not any(c in text for text in (message["text"], body) for c in "<>")
    assert header["text"]["type"] == "plain_text"
