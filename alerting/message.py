"""One notification: a group of alerts for one receiver, rendered as text, HTML and Slack."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from alerting.alert import AlertPayload
from alerting.clock import from_us
from alerting.engine import format_value
from alerting.lifecycle import Notice
from alerting.slackfmt import SlackMessage, escape

COLOURS = {"critical": "#d00000", "warning": "#f2a900", "info": "#439fe0"}
RESOLVED_COLOUR = "#2eb67d"
_HIDDEN = ("alertname", "severity")


@dataclass(frozen=True)
class Notification:
    """What one send carries; ``alerts`` are outbox payloads, the latest per alert."""

    receiver: str
    group_key: str
    alerts: list[AlertPayload]
    external_url: str | None = None

    @property
    def firing(self) -> list[AlertPayload]:
        return [a for a in self.alerts if a["status"] == Notice.FIRING]

    @property
    def status(self) -> Notice:
        return Notice.FIRING if self.firing else Notice.RESOLVED

    @property
    def severity(self) -> str:
        ranks = ["critical", "warning", "info"]
        found = [a["labels"].get("severity", "warning") for a in self.firing or self.alerts]
        return min(found, key=lambda s: ranks.index(s) if s in ranks else len(ranks))

    @property
    def colour(self) -> str:
        return COLOURS.get(self.severity, COLOURS["warning"]) if self.firing else RESOLVED_COLOUR

    def title(self) -> str:
        names = sorted({a["labels"]["alertname"] for a in self.alerts})
        count = f":{len(self.firing)}" if self.firing else ""
        return f"[{self.status.upper()}{count}] {', '.join(names)}"

    def text(self) -> str:
        lines = [self.title(), ""]
        for alert in self.alerts:
            lines.append(f"- {alert['status']}: {describe(alert)}")
            lines.append(f"  labels: {label_text(alert['labels'])}")
        if self.external_url:
            lines += ["", self.external_url]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(a['status'])}</td><td>{html.escape(describe(a))}</td>"
            f"<td>{html.escape(label_text(a['labels']))}</td></tr>"
            for a in self.alerts
        )
        link = (
            f'<p><a href="{html.escape(self.external_url)}">Open the dashboard</a></p>'
            if self.external_url
            else ""
        )
        return (
            f'<h2 style="color:{self.colour}">{html.escape(self.title())}</h2>'
            f"<table><tr><th>status</th><th>alert</th><th>labels</th></tr>{rows}</table>{link}"
        )

    def slack(self) -> SlackMessage:
        """``text`` (fallback) and a coloured attachment of Block Kit sections. Text from data
        (names, labels, summaries) is escaped wherever Slack parses mrkdwn; the header is
        ``plain_text`` and takes it as it is."""
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title()[:150]}}
        ]
        for alert in self.alerts[:20]:
            fields = [
                _field("Value", format_value(alert["value"])),
                _field("Threshold", format_value(alert["threshold"])),
                _field("Severity", alert["labels"].get("severity", "")),
                _field("Since", _when(alert.get("starts_us"))),
            ]
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"*{alert['status']}*: {escape(describe(alert))}",
                    },
                    "fields": fields,
                }
            )
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": escape(label_text(alert["labels"]))}],
                }
            )
        if self.external_url:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open dashboard"},
                            "url": self.external_url,
                        }
                    ],
                }
            )
        return {
            "text": escape(self.title()),
            "attachments": [{"color": self.colour, "blocks": blocks}],
        }


def describe(alert: AlertPayload) -> str:
    """The rule's summary, else ``alertname value (threshold)``."""
    if alert.get("summary"):
        return str(alert["summary"])
    value, threshold = format_value(alert["value"]), format_value(alert["threshold"])
    return f"{alert['labels']['alertname']} = {value} (threshold {threshold})"


def label_text(labels: dict[str, str]) -> str:
    shown = {k: v for k, v in labels.items() if k not in _HIDDEN}
    text = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    return text or "(only alertname and severity)"


def _field(name: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{name}*\n{escape(value)}"}


def _when(us: int | None) -> str:
    if us is None:
        return "n/a"
    return from_us(us).strftime("%Y-%m-%d %H:%M:%S UTC")
