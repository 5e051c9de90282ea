"""Email through aiosmtplib to a real in-process aiosmtpd: STARTTLS, AUTH, text + HTML."""

import asyncio
import socket
import ssl
from email import message_from_bytes
from email.policy import default

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pydantic import ValidationError

from alerting.message import Notification
from alerting.notifiers import NotifyError
from alerting.notifiers.email import EmailNotifier
from schemas.alerting import AlertingConfig, EmailReceiver
from schemas.errors import RetryableError

ALERT = {
    "status": "resolved",
    "labels": {"alertname": "TenantDailyBudget", "severity": "warning", "tenant_id": "acme"},
    "value": 101.5,
    "threshold": 100.0,
    "summary": "",
    "starts_us": 1_772_452_800_000_000,
    "ends_us": 1_772_456_400_000_000,
}


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"alerts", b"s3cret"))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(tmp_path):
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield inbox, controller.port, ca_file
    controller.stop()


def config(port, ca_file, password="s3cret"):
    return EmailReceiver(
        timeout="3s",
        host="127.0.0.1",
        port=port,
        username="alerts",
        password=password,
        sender="alerts@example.com",
        to=["team@example.com", "lead@example.com"],
        ca_file=ca_file,
    )


def send(receiver):
    notification = Notification("team", "g", [ALERT], "http://grafana/d/llm")
    asyncio.run(EmailNotifier(receiver).send(notification))


def test_starttls_auth_message_with_text_and_html(smtp):
    inbox, port, ca_file = smtp
    send(config(port, ca_file))
    [envelope] = inbox.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["team@example.com", "lead@example.com"]
    message = message_from_bytes(envelope.content, policy=default)
    assert message["Subject"] == "[RESOLVED] TenantDailyBudget"
    assert message["To"] == "team@example.com, lead@example.com"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "- resolved: TenantDailyBudget = 101.5 (threshold 100)" in text
    assert "tenant_id=acme" in text
    assert '<a href="http://grafana/d/llm">' in html
    assert "#2eb67d" in html


def test_wrong_password_is_a_notify_error(smtp):
    inbox, port, ca_file = smtp
    # aiosmtplib falls back from PLAIN (refused: 535) to LOGIN, which aiosmtpd leaves waiting.
    with pytest.raises(NotifyError) as info:
        send(config(port, ca_file, password="wrong"))
    assert str(info.value).startswith(f"smtp 127.0.0.1:{port}: ")
    assert isinstance(info.value, RetryableError)  # kept in the outbox, sent again later
    assert inbox.envelopes == []


def test_untrusted_certificate_is_refused(smtp, tmp_path):
    inbox, port, _ = smtp
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(NotifyError):
        send(config(port, other))
    assert inbox.envelopes == []


@pytest.fixture
def plain_smtp():
    """A server that takes AUTH (and needs it) on a connection without TLS."""
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, controller.port
    controller.stop()


def relay(port: int, **options) -> dict:
    """An ``alerting`` section with one email receiver, ``relay``: AUTH, no TLS."""
    email = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "username": "alerts",
        "password": "s3cret",
        "sender": "alerts@example.com",
        "to": ["team@example.com"],
        "timeout": "3s",
    }
    return {"receivers": [{"name": "relay", "email": email | options}]}


def test_auth_without_tls_is_a_config_error_naming_the_receiver_and_the_option():
    port = 25
    with pytest.raises(ValidationError) as info:
        AlertingConfig.model_validate(relay(port))
    assert "receiver relay: email.username without starttls or tls" in str(info.value)
    assert "allow_plaintext_auth: true" in str(info.value)
    assert "s3cret" not in str(info.value)
    AlertingConfig.model_validate(relay(port, starttls=True))  # with TLS: fine
    AlertingConfig.model_validate(relay(port, username=None, password=None))  # no AUTH: fine


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_allow_plaintext_auth_sends_with_auth_over_a_plain_connection(plain_smtp):
    inbox, port = plain_smtp
    send(AlertingConfig.model_validate(relay(port, allow_plaintext_auth=True)).receivers[0].email)
    [envelope] = inbox.envelopes  # the server refuses mail before a successful AUTH
    assert envelope.rcpt_tos == ["team@example.com"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_send_refuses_auth_without_tls_even_when_validation_was_bypassed(plain_smtp):
    inbox, port = plain_smtp
    checked = AlertingConfig.model_validate(relay(port, starttls=True)).receivers[0].email
    unchecked = checked.model_copy(update={"starttls": False})  # model_copy does not validate
    with pytest.raises(NotifyError, match="allow_plaintext_auth"):
        send(unchecked)
    assert inbox.envelopes == []
