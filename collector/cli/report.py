"""``llm-collector report daily|weekly|monthly``: build a report now, archive it, send it."""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from rich.console import Console

from alerting.notifiers import NotifyError
from collector.cli.common import config_option, config_or_exit, ledger_or_exit
from collector.readers.reports import LedgerReportReader
from collector.timespec import parse_time
from reports.archive import Rendered, write
from reports.periods import Period
from reports.service import ReportService
from schemas.reports import KINDS

err = Console(stderr=True)


@click.command()
@click.argument("kind", type=click.Choice(KINDS))
@config_option
@click.option(
    "--date",
    "day",
    help="A day inside the period: ISO date, today, yesterday [default: the last complete one].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the files [default: reports.output_dir].",
)
@click.option("--send", is_flag=True, help="Also email it and post the Slack digest, as scheduled.")
@click.option(
    "--format",
    "formats",
    type=click.Choice(["md", "html", "both"]),
    default="both",
    show_default=True,
    help="Markdown, HTML (with the charts inline), or both.",
)
def report(
    kind: str,
    config_path: Path | None,
    day: str | None,
    out: Path | None,
    send: bool,
    formats: str,
) -> None:
    """Build the daily, weekly or monthly report of a period from the tiers and write it as
    Markdown and/or HTML (charts beside it) under <out>/<kind>/."""
    config = config_or_exit(config_path)
    if send and kind not in config.reports.schedules():
        raise click.ClickException(f"reports.{kind} is not configured: nowhere to send it")
    zone = ZoneInfo(config.timezone)
    period = _period(kind, day, zone)
    ledger = ledger_or_exit(config, readonly=True)
    reader = LedgerReportReader(ledger.db, zone, config.dimensions)
    service = ReportService(reader, ledger.db, config.reports, config.alerting, zone)
    waiting = err.status(f"building the {kind} report") if err.is_terminal else nullcontext()
    with waiting:
        rendered = service.render(period)
    ledger.close()
    if not rendered.report.has_data:
        click.echo(
            f"No data for the {kind} report of {period.label}: no calls or scores were recorded"
            f" between {period.first} and {period.end} ({zone.key}). Nothing written."
        )
        return
    for path in write(rendered, out or config.reports.output_dir, formats):
        click.echo(str(path))
    if send:
        _send(service, rendered, kind)


def _period(kind: str, day: str | None, zone: ZoneInfo) -> Period:
    if day is None:
        return Period.last_complete(kind, datetime.now(UTC), zone)
    try:
        moment = parse_time(day, zone)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--date") from None
    return Period.containing(kind, moment.astimezone(zone).date(), zone)


def _send(service: ReportService, rendered: Rendered, kind: str) -> None:
    """Email and Slack as the (configured) schedule of ``kind`` says; exit 1 naming what
    failed."""
    failed = []
    for channel in service.channels(kind)[1:]:
        try:
            asyncio.run(service.send(rendered, channel))
            click.echo(f"sent by {channel}")
        except NotifyError as error:
            failed.append(f"{channel}: {error}")
    if failed:
        err.print("\n".join(failed))
        sys.exit(1)
