"""The short Slack digest of a report: the headline figures and what to look at."""

from __future__ import annotations

from alerting.slackfmt import SlackMessage, escape
from reports import fmt
from reports.layout import title
from reports.model import Report

_HEADLINE = ("requests", "cost_usd", "error_rate", "latency_ms_p95", "quality_mean")


class Digest:
    """Slack content (`alerting.slackfmt.SlackContent`) for the Slack notifier: ``slack()``
    gives the text and one attachment of Block Kit sections."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def text(self) -> str:
        report = self.report
        if not report.has_data:
            return f"{title(report)}: no calls in this period."
        parts = []
        for key in _HEADLINE:
            total = report.total(key)
            change = fmt.delta(key, total.value, total.previous)
            parts.append(f"{total.label}: {fmt.value(key, total.value)} ({change})")
        return f"{title(report)}\n" + "; ".join(parts)

    def slack(self) -> SlackMessage:
        """The text and the mrkdwn block escaped for Slack (model names are data); the
        header is ``plain_text``."""
        report = self.report
        lines = [self.text()]
        if report.drivers:
            top = report.drivers[0]
            lines.append(f"Top cost: {top.name} {fmt.value('cost_usd', top.metrics['cost_usd'])}")
        if report.unpriced_requests:
            lines.append(
                f"Unpriced calls: {report.unpriced_requests:,} ({', '.join(report.unpriced)})"
            )
        lines.append(f"Alerts fired: {len(report.alerts)}")
        colour = "#f2a900" if report.alerts or report.unpriced_requests else "#2eb67d"
        body = escape("\n".join(lines[1:]))
        block = {"type": "section", "text": {"type": "mrkdwn", "text": body}}
        header = {"type": "header", "text": {"type": "plain_text", "text": title(report)[:150]}}
        return {
            "text": escape(lines[0]),
            "attachments": [{"color": colour, "blocks": [header, block]}],
        }
