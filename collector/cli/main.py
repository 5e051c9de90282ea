"""The ``llm-collector`` command line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import orjson
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from collector import logs
from collector.cli.alerts import alerts, notify, rules, silence
from collector.cli.common import (
    config_option,
    config_or_exit,
    ledger_or_exit,
    writer_ledger_or_exit,
)
from collector.cli.influx import background_drain, influx, wait_for_outbox
from collector.cli.ops import backup, export
from collector.cli.report import report
from collector.cli.status import status
from collector.ingest.pipeline import build_tailer, configured_sources
from collector.ingest.tailing import Source, TailEnd
from collector.logs import LOG_FORMATS, RedactingGroup
from collector.sinks.influx.build import build_outbox
from collector.tiers.raw_summary import summarize
from collector.tiers.rollup import ROLLED_TIERS, ProgressCallback, Roller
from collector.tiers.summary import default_tier, summarize_tier
from collector.timespec import parse_time, to_us
from schemas.config import TIERS

err = Console(stderr=True)
# Not a terminal (a pipe, a CI log): no width to fit, so tables are not squeezed to 80 columns.
out = Console(width=None if sys.stdout.isatty() else 200)


@click.group(cls=RedactingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="The least severe log lines shown (on stderr).",
)
@click.option(
    "--log-format",
    default="console",
    show_default=True,
    envvar="LLM_COLLECTOR_LOG_FORMAT",
    type=click.Choice(LOG_FORMATS),
    help="console lines, or json: one object per line (ts, level, logger, message).",
)
def main(log_level: str, log_format: str) -> None:
    """Turn an LLM application's trace log into metrics, alerts and reports.

    Events are read from JSON-lines trace files into a SQLite ledger, exactly once.
    """
    logs.setup(log_level, log_format)


@main.command()
@config_option
@click.option("--timezone", help="Zone of naive timestamps in PATHs [default: the config's].")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.argument("paths", nargs=-1)
@click.option("--no-wait", is_flag=True, help="Do not wait for the InfluxDB outbox to drain.")
@click.option(
    "--wait-timeout",
    default=30.0,
    show_default=True,
    help="Give up waiting for InfluxDB after this many seconds without progress.",
)
def ingest(
    config_path: Path | None,
    timezone: str | None,
    as_json: bool,
    paths: tuple[str, ...],
    no_wait: bool,
    wait_timeout: float,
) -> None:
    """Import trace files once (backfill), through the same path as the daemon.

    PATHS are files or globs; without them the configured sources are read. Lines already
    in the ledger are never read twice, so running it again only adds what is new.
    """
    config = config_or_exit(config_path)
    if paths:
        zone = _zone(timezone or (config.sources[0].timezone if config.sources else "UTC"))
        sources = [Source(path, zone) for path in paths]
    else:
        sources = configured_sources(config)
    ledger = writer_ledger_or_exit(config, "llm-collector ingest")
    # Built before reading (a new feed's cursor starts at the ledger's end), on a connection of
    # its own so that it sends while the files are read.
    outbox = build_outbox(config, ledger_or_exit(config))
    show_progress = not as_json and err.is_terminal
    progress = Progress(
        TextColumn("ingesting"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with progress if show_progress else nullcontext(), background_drain(outbox):
        task = progress.add_task("ingest", total=None)
        tailer = build_tailer(
            config, ledger, sources, on_progress=lambda n: progress.advance(task, n)
        )
        tailer.scan()
        lag = tailer.lag_bytes()
        if not lag:
            patterns = ", ".join(source.pattern for source in sources)
            err.print(f"[yellow]no file matches {patterns}[/yellow]")
        backlog = sum(lag.values())
        if backlog > 16 * 1024 * 1024:
            tailer.chunks.wait_ready(timeout=0)  # start the parse workers while reading begins
        progress.update(task, total=backlog)
        tailer.finish_rotated()
        tailer.poll(TailEnd.IF_COMPLETE)
        tailer.finish_rotated()
    tailer.close()
    counts = tailer.counts
    result = {
        "lines": counts.lines,
        "events": counts.events,
        "quarantined": counts.quarantined,
        "skipped": counts.skipped,
    }
    if as_json:
        click.echo(orjson.dumps(result).decode())
    else:
        out.print(
            f"read {counts.lines:,} lines: {counts.events:,} events, "
            f"{counts.quarantined:,} quarantined, {counts.skipped:,} skipped"
        )
        if counts.quarantined:
            out.print(f"quarantined lines and reasons: {config.quarantine.path}")
    for path, size in counts.pending_partial.items():
        err.print(f"{path}: an unfinished last line ({size} bytes) is left for the next run")
    if outbox is not None and not no_wait and wait_for_outbox(outbox, wait_timeout, show_progress):
        sys.exit(3)


@main.command()
@config_option
def run(config_path: Path | None) -> None:
    """Run the daemon: tail the sources into the ledger until SIGTERM or SIGINT.

    It also rolls the tiers, ships to InfluxDB, evaluates alert rules and sends reports, as
    configured, and serves /healthz and /metrics. SIGHUP reloads the rules file, receivers,
    route and silences without a restart.
    """
    from collector.daemon.service import Daemon, hold_stop_signals

    early_stop = hold_stop_signals()
    config = config_or_exit(config_path)
    Daemon(config, config_path=config_path, early_stop=early_stop).run()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise click.BadParameter(
            f"{name!r} is not a time zone; use an IANA name such as UTC or Europe/Berlin",
            param_hint="--timezone",
        ) from None


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@main.command()
@config_option
@click.option("--since", default="-24h", show_default=True, help="Start: ISO 8601, today, -7d...")
@click.option("--until", default="now", show_default=True, help="End (exclusive).")
@click.option(
    "--by", default="", help="Comma-separated dimensions to group by, e.g. model,task_type."
)
@click.option("--json", "as_json", is_flag=True, help="Print {totals, groups} as JSON.")
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    help="raw, 1h, 1d or 1mo [default: the finest tier that still holds --since].",
)
def summary(
    config_path: Path | None, since: str, until: str, by: str, as_json: bool, tier: str | None
) -> None:
    """Requests, tokens, cost, latency percentiles, errors and quality for a time range.

    From raw events percentiles are exact; from a tier they come from the merged latency
    sketches (1% relative accuracy), and a window counts when it starts inside the range.
    """
    config = config_or_exit(config_path)
    zone = ZoneInfo(config.timezone)
    try:
        start, end = parse_time(since, zone), parse_time(until, zone)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since/--until") from None
    if start >= end:
        raise click.BadParameter(f"{since} is not before {until}", param_hint="--since/--until")
    dims = [d.strip() for d in by.split(",") if d.strip()]
    ledger = ledger_or_exit(config, readonly=True)
    tier = tier or default_tier(ledger.db, to_us(start))
    try:
        if tier == "raw":
            result = summarize(ledger.db, to_us(start), to_us(end), dims)
        else:
            span = (to_us(start), to_us(end))
            result = summarize_tier(ledger.db, tier, *span, dims, config.dimensions)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--by") from None
    if as_json:
        click.echo(orjson.dumps(result).decode())
        return
    _print_summary(result, dims, f"{start.isoformat()} .. {end.isoformat()} ({tier})")


@main.command()
@config_option
@click.option(
    "--until", default="now", show_default=True, help="Roll windows ended by then: ISO 8601, -1h..."
)
@click.option("--json", "as_json", is_flag=True, help="Print windows, rows, seconds per tier.")
def rollup(config_path: Path | None, until: str, as_json: bool) -> None:
    """Roll every pending window that has ended by --until into the 1h, 1d and 1mo tiers.

    For use after a backfill: the daemon rolls on its own, once a window has ended and
    tiers.grace has passed. Rolling again only redoes windows that received events since.
    """
    config = config_or_exit(config_path)
    zone = ZoneInfo(config.timezone)
    try:
        end = parse_time(until, zone)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--until") from None
    ledger = ledger_or_exit(config)
    roller = Roller(ledger.db, zone, config.dimensions)
    show_progress = not as_json and err.is_terminal
    with _rollup_progress() if show_progress else nullcontext() as advance:
        rolled = roller.roll(to_us(end), on_progress=advance)
    ledger.close()
    result = {
        tier: {
            "windows": rolled.windows[tier],
            "rows": rolled.rows[tier],
            "seconds": round(rolled.seconds[tier], 3),
        }
        for tier in ROLLED_TIERS
    }
    if as_json:
        click.echo(orjson.dumps(result).decode())
        return
    for tier, counts in result.items():
        out.print(
            f"{tier}: {counts['windows']:,} windows rolled, {counts['rows']:,} rows written"
            f" in {counts['seconds']:.1f} s"
        )


@contextmanager
def _rollup_progress() -> Iterator[ProgressCallback]:
    """A progress bar per tier on stderr; yields the `Roller.roll` progress callback."""
    progress = Progress(
        TextColumn("rolling {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def advance(tier: str, done: int, total: int) -> None:
        if tier not in tasks:
            tasks[tier] = progress.add_task(tier, total=total)
        progress.update(tasks[tier], completed=done, total=total)

    with progress:
        yield advance


def _print_summary(result: dict[str, Any], dims: list[str], title: str) -> None:
    from rich.table import Table

    shown = {
        "requests": "requests",
        "error_rate": "err rate",
        "total_tokens": "tokens",
        "cache_read_tokens": "cached",
        "cost_usd": "cost $",
        "unpriced_requests": "unpriced",
        "latency_ms_p50": "p50 ms",
        "latency_ms_p95": "p95 ms",
        "latency_ms_p99": "p99 ms",
        "quality_mean": "quality",
    }
    table = Table(title=title)
    for name in dims:
        table.add_column(name, no_wrap=True)
    for header in shown.values():
        table.add_column(header, justify="right")
    for group in result["groups"] if dims else []:
        table.add_row(*[_fmt(group[d]) for d in dims], *[_fmt(group[k]) for k in shown])
    table.add_row(
        *(["[b]total[/b]"] + [""] * (len(dims) - 1) if dims else []),
        *[f"[b]{_fmt(result['totals'][k])}[/b]" for k in shown],
    )
    out.print(table)


main.add_command(influx)
main.add_command(status)
main.add_command(rules)
main.add_command(alerts)
main.add_command(silence)
main.add_command(notify)
main.add_command(backup)
main.add_command(export)
main.add_command(report)


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@config_option
def config_check(config_path: Path | None) -> None:
    """Validate the configuration (and its rules file) and print the effective values, secrets
    masked."""
    loaded = config_or_exit(config_path)
    rules_file = loaded.alerting.rules_file
    if rules_file is not None:
        from alerting.rules import RulesError, load_rules

        try:
            load_rules(rules_file)
        except RulesError as error:
            raise click.ClickException(str(error)) from None
    click.echo(yaml.safe_dump(loaded.masked(), sort_keys=False), nl=False)
