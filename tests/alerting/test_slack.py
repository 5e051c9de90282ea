"""Slack through slack-sdk against a local server: ok, 429 + Retry-After, 500, ok: false."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.message import Notification, describe, label_text
from alerting.notifiers import NotifyError
from alerting.notifiers.slack import SlackNotifier
from schemas.alerting import SlackReceiver
from schemas.errors import PermanentError, RetryableError
from tests.alerting.fake_slack import FakeSlack

ALERT = {
    "status": "firing",
    "labels": {"alertname": "HighP95Latency", "severity": "critical", "model": "gpt-4o"},
    "value": 2500.0,
    "threshold": 2000.0,
    "summary": "p95 latency 2500 ms on gpt-4o",
    "starts_us": 1_772_452_800_000_000,
    "ends_us": None,
}


def notification():
    return Notification("oncall", "0{alertname=HighP95Latency}", [ALERT], "http://grafana/d/llm")


def send(config):
    asyncio.run(SlackNotifier(config).send(notification()))


def webhook(server):
    return SlackReceiver(webhook_url=f"{server.url}/services/T/B/X")


def test_webhook_message_carries_colour_value_threshold_labels_link():
    with FakeSlack() as server:
        send(webhook(server))
    [(_, path, body)] = server.requests
    assert path == "/services/T/B/X"
    assert body["text"] == "[FIRING:1] HighP95Latency"
    [attachment] = body["attachments"]
    assert attachment["color"] == "#d00000"
    section = attachment["blocks"][1]
    assert section["text"]["text"] == "*firing*: p95 latency 2500 ms on gpt-4o"
    assert [f["text"] for f in section["fields"][:2]] == ["*Value*\n2500", "*Threshold*\n2000"]
    assert attachment["blocks"][2]["elements"][0]["text"] == "model=gpt-4o"
    assert attachment["blocks"][3]["elements"][0]["url"] == "http://grafana/d/llm"


def test_429_waits_retry_after_then_arrives_once():
    with FakeSlack([(429, {"Retry-After": "1"}, "rate_limited")]) as server:
        send(webhook(server))
    assert len(server.requests) == 2
    assert server.requests[1][0] - server.requests[0][0] >= 1.0


def test_500_is_retried():
    with FakeSlack([(500, {}, "oops")]) as server:
        send(webhook(server))
    assert len(server.requests) == 2


def test_persistent_500_raises_so_the_outbox_keeps_it():
    with FakeSlack([(500, {}, "oops")] * 3) as server, pytest.raises(NotifyError) as info:
        send(webhook(server))
    assert "HTTP 500" in str(info.value)
    assert len(server.requests) == 3
    assert isinstance(info.value, RetryableError) and not isinstance(info.value, PermanentError)


def test_bot_token_ok_false_is_an_error():
    answer = '{"ok": false, "error": "channel_not_found"}'
    with FakeSlack([(200, {"Content-Type": "application/json"}, answer)]) as server:
        config = SlackReceiver(bot_token="xoxb-1", channel="#oncall", base_url=f"{server.url}/api/")
        with pytest.raises(NotifyError) as info:
            send(config)
    assert "channel_not_found" in str(info.value)
    assert isinstance(info.value, RetryableError)  # retried like any failure, as before
    [(_, path, body)] = server.requests
    assert path == "/api/chat.postMessage"
    assert body["channel"] == "#oncall"


def test_a_bot_token_without_a_channel_that_bypassed_validation_is_a_notify_error():
    with FakeSlack() as server:
        valid = SlackReceiver(bot_token="xoxb-1", channel="#oncall", base_url=server.url)
        config = valid.model_copy(update={"channel": None})
        with pytest.raises(NotifyError, match="a bot_token needs a channel"):
            send(config)
    assert server.requests == []


def test_bot_token_ok_true_is_delivered():
    answer = '{"ok": true, "ts": "1.2"}'
    with FakeSlack([(200, {"Content-Type": "application/json"}, answer)]) as server:
        send(SlackReceiver(bot_token="xoxb-1", channel="#oncall", base_url=f"{server.url}/api/"))
    assert len(server.requests) == 1


HOSTILE = "<!channel> <http://evil.example|click>"


def mrkdwn_texts(message: dict) -> list[str]:
    """The message's ``text`` and every mrkdwn text of its blocks (what Slack parses)."""
    found = [message["text"]]
    for block in message["attachments"][0]["blocks"]:
        parts = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
        found += [p["text"] for p in parts if p and p.get("type") == "mrkdwn"]
    return found


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_data_reaches_slack_escaped_not_as_mentions_or_links():
    alert = ALERT | {
        "labels": ALERT["labels"] | {"alertname": "Cost&Co", "model": HOSTILE},
        "summary": f"p95 on {HOSTILE} > 2 s",
    }
    with FakeSlack() as server:
        send_one = Notification("oncall", "g", [alert], "http://grafana/d/llm?a=1&b=2")
        asyncio.run(SlackNotifier(webhook(server)).send(send_one))
    [(_, _, body)] = server.requests
    header, section, context, actions = body["attachments"][0]["blocks"]
    assert body["text"] == "[FIRING:1] Cost&amp;Co"
    assert header["text"] == {"type": "plain_text", "text": "[FIRING:1] Cost&Co"}
    assert section["text"]["text"] == (
        "*firing*: p95 on &lt;!channel&gt; &lt;http://evil.example|click&gt; &gt; 2 s"
    )
    assert context["elements"][0]["text"] == (
        "model=&lt;!channel&gt; &lt;http://evil.example|click&gt;"
    )
    assert actions["elements"][0]["url"] == "http://grafana/d/llm?a=1&b=2"  # a URL, not text
    assert all("<" not in text for text in mrkdwn_texts(body))


@given(value=st.text(), summary=st.text(), severity=st.text())
def test_no_text_from_data_carries_a_slack_control_character(value, summary, severity):
    labels = ALERT["labels"] | {"model": value, "severity": severity}
    alert = ALERT | {"labels": labels, "summary": summary}
    message = Notification("oncall", "g", [alert]).slack()
    texts = mrkdwn_texts(message)
    assert not any(c in text for text in texts for c in "<>")
    section, context = message["attachments"][0]["blocks"][1:3]
    assert unescape(section["text"]["text"]) == f"*firing*: {describe(alert)}"
    assert unescape(context["elements"][0]["text"]) == label_text(labels)
    assert unescape(section["fields"][2]["text"]) == f"*Severity*\n{severity}"
