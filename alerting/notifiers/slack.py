"""Slack through slack-sdk: an incoming webhook or ``chat.postMessage`` with a bot token.

slack-sdk's own retry handlers wait out 429s (honouring Retry-After) and retry 5xx; whatever
still fails, including ``ok: false``, raises `NotifyError` so the outbox keeps the message.
"""

from __future__ import annotations

import asyncio
import json

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from alerting.notifiers import NotifyError
from alerting.slackfmt import SlackContent, SlackMessage
from schemas.alerting import SlackReceiver


def retry_handlers() -> list[RetryHandler]:
    return [
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=1),
    ]


class SlackNotifier:
    """Sends Block Kit messages to one webhook or channel."""

    def __init__(self, config: SlackReceiver) -> None:
        self.config = config

    async def send(self, notification: SlackContent) -> None:
        await asyncio.to_thread(self.send_blocking, notification)

    def send_blocking(self, notification: SlackContent) -> None:
        """Send in the calling thread, blocking for up to the timeout and the retries."""
        message = notification.slack()
        timeout = int(self.config.timeout.total_seconds()) or 1
        if self.config.webhook_url is not None:
            self._webhook(message, timeout)
        else:
            self._post(message, timeout)

    def _webhook(self, message: SlackMessage, timeout: int) -> None:
        assert self.config.webhook_url is not None
        client = WebhookClient(
            self.config.webhook_url.get_secret_value(),
            timeout=timeout,
            retry_handlers=retry_handlers(),
        )
        try:
            response = client.send(text=message["text"], attachments=message["attachments"])
        except (SlackClientError, OSError) as error:
            raise NotifyError(f"slack webhook: {error}") from None
        if response.status_code != 200 or not _acknowledged(response.body):
            raise NotifyError(f"slack webhook: HTTP {response.status_code}: {response.body[:200]}")

    def _post(self, message: SlackMessage, timeout: int) -> None:
        assert self.config.bot_token is not None
        if not self.config.channel:  # validation requires one; a bypassed config still fails
            raise NotifyError("slack chat.postMessage: a bot_token needs a channel")
        client = WebClient(
            token=self.config.bot_token.get_secret_value(),
            base_url=self.config.base_url,
            timeout=timeout,
            retry_handlers=retry_handlers(),
        )
        try:
            client.chat_postMessage(channel=self.config.channel, **message)
        except (SlackClientError, OSError) as error:
            raise NotifyError(f"slack chat.postMessage: {error}") from None


def _acknowledged(body: str) -> bool:
    """A webhook answers ``ok``; a JSON answer must say ``"ok": true``."""
    if body.strip() == "ok":
        return True
    try:
        return json.loads(body).get("ok") is True
    except (ValueError, AttributeError):
        return False
