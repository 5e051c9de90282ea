"""Email through aiosmtplib: STARTTLS or implicit TLS, optional AUTH, text + HTML parts."""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib

from alerting.message import Notification
from alerting.notifiers import NotifyError
from schemas.alerting import EmailReceiver


class EmailNotifier:
    """One message per notification to the configured recipients."""

    def __init__(self, config: EmailReceiver) -> None:
        self.config = config

    def message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = notification.title()
        message["From"] = self.config.sender
        message["To"] = ", ".join(self.config.to)
        message.set_content(notification.text())
        message.add_alternative(notification.html(), subtype="html")
        return message

    async def send(self, notification: Notification) -> None:
        await smtp_send(self.config, self.message(notification))


async def smtp_send(config: EmailReceiver, message: EmailMessage) -> None:
    """Send ``message`` to its To addresses through ``config``'s server; `NotifyError` if
    not accepted (the error names the server, never the password). AUTH without TLS is
    refused here too, unless allowed, should a config bypass validation."""
    if config.plaintext_auth and not config.allow_plaintext_auth:
        raise NotifyError(
            f"smtp {config.host}:{config.port}: AUTH without starttls or tls is refused"
            " (allow_plaintext_auth: false)"
        )
    try:  # an unreadable ca_file is an OSError too: a failed delivery, not a crashed job
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password.get_secret_value() if config.password else None,
            start_tls=config.starttls,
            use_tls=config.tls,
            tls_context=context,
            timeout=config.timeout.total_seconds(),
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        raise NotifyError(f"smtp {config.host}:{config.port}: {error}") from None
