"""A report as a list of sections (headings, paragraphs, tables, charts) that the Markdown and
HTML renderers both draw, so the two always say the same."""

from __future__ import annotations

from dataclasses import dataclass, field

from reports import fmt
from reports.model import TABLE_DIMENSIONS, TRAILING_LABEL, GroupRow, Report
from reports.periods import TRAILING

COLUMNS = (
    ("requests", "requests"),
    ("input_tokens", "input tok"),
    ("output_tokens", "output tok"),
    ("cost_usd", "cost"),
    ("error_rate", "errors"),
    ("latency_ms_p50", "p50"),
    ("latency_ms_p95", "p95"),
    ("quality_mean", "quality"),
)


@dataclass
class Section:
    """A heading with paragraphs, an optional table, and whether the charts go here."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    charts: bool = False
    warning: bool = False
    text_columns: int = 1
    """The leading columns that hold names (left-aligned); the rest are figures."""


def title(report: Report) -> str:
    return f"LLM usage, {report.period.kind} report: {report.period.title}"


def subtitle(report: Report) -> str:
    period = report.period
    zone = period.zone
    partial = report.partial_until_us
    so_far = (
        ""
        if partial is None
        else f" (not over: figures up to {fmt.when(partial, zone)}, against complete periods)"
    )
    return (
        f"{fmt.when(period.start_us, zone)} to {fmt.when(period.end_us, zone)} ({zone.key})"
        f"{so_far}; compared with the previous {_unit(report)} and the trailing"
        f" {TRAILING_LABEL[period.kind]} average"
    )


def _unit(report: Report) -> str:
    return {"daily": "day", "weekly": "week", "monthly": "month"}[report.period.kind]


def sections(report: Report) -> list[Section]:
    """Every section of a report with data, in reading order."""
    found = [_totals(report)]
    if report.unpriced_requests:
        found.append(_unpriced(report))
    found.append(Section("Charts", charts=True))
    found.append(_drivers(report))
    found.append(_movers(report))
    labels = dict(TABLE_DIMENSIONS)
    for name, rows in report.tables.items():
        found.append(_group_table(f"By {labels[name].lower()}", labels[name], rows))
    found.append(_alerts(report))
    if report.notes:
        found.append(Section("Notes", paragraphs=report.notes))
    return found


def _totals(report: Report) -> Section:
    rows = [
        [
            t.label,
            fmt.value(t.key, t.value),
            fmt.value(t.key, t.previous),
            fmt.delta(t.key, t.value, t.previous),
            fmt.value(t.key, t.trailing),
            fmt.delta(t.key, t.value, t.trailing),
        ]
        for t in report.totals
    ]
    headers = ["", "this " + _unit(report), "previous", "change", _trailing(report), "change"]
    return Section("Totals", headers=headers, rows=rows)


def _trailing(report: Report) -> str:
    """``trailing avg``, with how many periods had calls when not all of them did."""
    periods, active = TRAILING[report.period.kind], report.trailing_periods
    if active == periods:
        return "trailing avg"
    return f"trailing avg ({active} of {periods} {_unit(report)}s)"


def _unpriced(report: Report) -> Section:
    models = ", ".join(f"{name} ({count:,})" for name, count in report.unpriced.items())
    text = f"{report.unpriced_requests:,} calls could not be priced, so the cost is too low." + (
        f" Models to add prices for (pricing.overrides): {models}." if models else ""
    )
    return Section("Unpriced usage", paragraphs=[text], warning=True)


def _drivers(report: Report) -> Section:
    total = report.total("cost_usd").value
    rows = [
        [
            row.name,
            fmt.value("cost_usd", row.metrics["cost_usd"]),
            fmt.share(row.metrics["cost_usd"], total),
            fmt.value("requests", row.metrics["requests"]),
        ]
        for row in report.drivers
    ]
    if not rows:
        return Section("Top cost drivers", paragraphs=["No priced calls."])
    return Section(
        "Top cost drivers", headers=["model / task", "cost", "share", "requests"], rows=rows
    )


def _movers(report: Report) -> Section:
    if not report.movers:
        return Section("Biggest movers", paragraphs=["No change in cost by any dimension."])
    rows = [
        [
            m.dimension,
            m.name,
            fmt.value("cost_usd", m.previous),
            fmt.value("cost_usd", m.current),
            fmt.delta("cost_usd", m.current, m.previous),
        ]
        for m in report.movers
    ]
    headers = ["dimension", "value", "previous", "now", "change"]
    return Section("Biggest movers (cost)", headers=headers, rows=rows, text_columns=2)


def _group_table(heading: str, label: str, rows: list[GroupRow]) -> Section:
    body = [[row.name, *(fmt.value(key, row.metrics[key]) for key, _ in COLUMNS)] for row in rows]
    return Section(heading, headers=[label, *(h for _, h in COLUMNS)], rows=body)


def _alerts(report: Report) -> Section:
    if not report.alerts:
        return Section("Alerts", paragraphs=["No alert fired."])
    zone = report.period.zone
    rows = [
        [
            a["alertname"],
            a["severity"],
            ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items())) or "-",
            fmt.when(a["fired_us"], zone),
            fmt.when(a["resolved_us"], zone) if a["resolved_us"] else "still firing",
        ]
        for a in report.alerts
    ]
    headers = ["alert", "severity", "labels", "fired", "resolved"]
    return Section(f"Alerts ({len(rows)})", headers=headers, rows=rows, text_columns=5)
