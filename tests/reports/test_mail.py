"""A report by email reaches a real SMTP server (aiosmtpd: STARTTLS, AUTH) as HTML + text with
the charts inline: every ``cid:`` of the HTML has its image/png part."""

import asyncio
import re
from email import message_from_bytes
from email.policy import default
from zoneinfo import ZoneInfo

import pytest

from reports.service import ReportService
from schemas.config import CollectorConfig
from schemas.errors import RetryableError
from tests.reports.report_harness import SmtpServer, rendered_day

RECIPIENTS = ["lead@example.com", "cfo@example.com"]


def config(server):
    return CollectorConfig(
        alerting={"receivers": [{"name": "team", "email": server.receiver()}]},
        reports={"email_receiver": "team", "daily": {"at": "01:00", "to": RECIPIENTS}},
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return rendered_day(tmp_path_factory.mktemp("ledger"))


def test_report_email_is_html_text_and_inline_charts(tmp_path, rendered):
    server = SmtpServer(tmp_path).start()
    loaded = config(server)
    service = ReportService(None, None, loaded.reports, loaded.alerting, ZoneInfo("UTC"))
    try:
        asyncio.run(service.send(rendered, "email"))
    finally:
        server.stop()
    [envelope] = server.inbox.envelopes
    assert envelope.mail_from == "reports@example.com"
    assert envelope.rcpt_tos == RECIPIENTS
    assert b"s3cret" not in envelope.content
    mail = message_from_bytes(envelope.content, policy=default)
    assert mail["Subject"] == "LLM usage, daily report: Friday 20 November 2026"
    assert mail.get_content_type() == "multipart/alternative"
    text_part, related = mail.get_payload()
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    text = text_part.get_content()
    assert "| Requests |" in text and "cid:" not in text
    html_part, *images = related.get_payload()
    html = html_part.get_content()
    assert html_part.get_content_type() == "text/html"
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert len(cids) == 3
    by_id = {part["Content-ID"].strip("<>"): part for part in images}
    assert sorted(by_id) == sorted(cids)
    for cid in cids:
        part = by_id[cid]
        assert part.get_content_type() == "image/png"
        data = part.get_content()
        assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_smtp_down_or_a_bad_ca_file_is_a_notify_error_without_the_password(rendered, tmp_path):
    from alerting.notifiers import NotifyError

    server = SmtpServer(tmp_path)  # never started
    loaded = config(server)
    service = ReportService(None, None, loaded.reports, loaded.alerting, ZoneInfo("UTC"))
    for bundle in (None, ""):  # the server down; then also a CA file that holds no certificate
        if bundle is not None:
            server.ca_file.write_text(bundle)
        with pytest.raises(NotifyError) as info:
            asyncio.run(service.send(rendered, "email"))
        assert str(info.value).startswith(f"smtp 127.0.0.1:{server.port}: ")
        assert "s3cret" not in str(info.value)
        assert isinstance(info.value, RetryableError)  # the channel is tried again later
