"""``llm-collector influx ...`` and the outbox wait of ``ingest``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from collector.cli.common import config_option, config_or_exit
from collector.ledger.connection import Ledger
from collector.sinks.errors import RetryLater
from collector.sinks.influx.build import build_outbox
from collector.sinks.influx.outbox import Outbox, dead_letters
from collector.timespec import parse_time, to_us
from schemas.config import CollectorConfig

err = Console(stderr=True)
out = Console()


def _influx_config(path: Path | None) -> CollectorConfig:
    config = config_or_exit(path)
    if config.influx is None:
        raise click.ClickException(
            "no influx section in the configuration; see docs/influxdb-grafana.md"
        )
    return config


def _outbox(config: CollectorConfig) -> Outbox:
    outbox = build_outbox(config, Ledger(config.ledger.path))
    assert outbox is not None
    return outbox


@click.group()
def influx() -> None:
    """InfluxDB: buckets, the outbox, dead letters and backfills."""


@influx.command()
@config_option
@click.option(
    "--apply-retention",
    is_flag=True,
    help="Also change existing buckets whose retention differs from tiers.retention.",
)
def setup(config_path: Path | None, apply_retention: bool) -> None:
    """Create the tier buckets that are missing, with their retention."""
    from collector.sinks.influx.writer import InfluxWriter

    config = _influx_config(config_path)
    assert config.influx is not None
    writer = InfluxWriter(config.influx)
    try:
        plans = writer.plan_buckets(config.tiers.retention)
        writer.apply_buckets(plans, apply_retention=apply_retention)
    except Exception as error:
        raise click.ClickException(
            f"InfluxDB at {config.influx.url}: {str(error).splitlines()[0]}"
            " (is it reachable, and may the token read and create buckets?)"
        ) from None
    finally:
        writer.close()
    table = Table("tier", "bucket", "retention", "state")
    for plan in plans:
        state = plan.action
        if plan.action == "create":
            state = "created"
        elif plan.action == "retention differs":
            state = "retention updated" if apply_retention else "retention differs (left alone)"
        table.add_row(plan.tier, plan.bucket, str(plan.retention or "forever"), state)
    out.print(table)


@influx.command("dead-letters")
@config_option
@click.option("--retry", is_flag=True, help="Send every dead letter again.")
def dead_letters_command(config_path: Path | None, retry: bool) -> None:
    """List the batches InfluxDB refused for good, with its message."""
    config = _influx_config(config_path)
    outbox = _outbox(config)
    if retry:
        try:
            sent, refused = outbox.retry_dead_letters()
        except RetryLater as error:  # unreachable, busy, token refused: keep them for later
            raise click.ClickException(f"{error}; the dead letters are kept, retry later") from None
        out.print(f"sent {sent} dead letter(s); {refused} refused again")
    letters = dead_letters(outbox.ledger)
    if not letters:
        out.print("no dead letters")
        return
    table = Table("id", "feed", "rows", "status", "message")
    for letter in letters:
        rows = f"{letter['first_position']}..{letter['last_position']}"
        table.add_row(
            str(letter["id"]), letter["cursor"], rows, str(letter["status"]), letter["message"]
        )
    out.print(table)


@influx.command()
@config_option
@click.option("--since", required=True, help="Send events from this time on (ISO 8601, -7d...).")
def backfill(config_path: Path | None, since: str) -> None:
    """Queue ledger events again for InfluxDB (after running without it); resending is safe:
    a point sent twice overwrites itself."""
    config = _influx_config(config_path)
    try:
        start_us = to_us(parse_time(since, ZoneInfo(config.timezone)))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since") from None
    outbox = _outbox(config)
    for feed in outbox.feeds:
        first = feed.position_at(outbox.ledger, start_us)
        if first is not None:
            outbox.rewind(feed, first - 1)
    out.print(f"queued: {sum(outbox.pending().values()):,} points pending")


@contextmanager
def background_drain(outbox: Outbox | None) -> Iterator[None]:
    """Send to InfluxDB on a thread while the body reads trace files."""
    if outbox is None:
        yield
        return
    done = threading.Event()

    def drain() -> None:
        while not done.is_set():
            if not outbox.drain_once():
                done.wait(0.2)

    thread = threading.Thread(target=drain, name="influx-drain", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def wait_for_outbox(outbox: Outbox, timeout: float, show_progress: bool) -> int:
    """Drain the outbox; the points still pending when no progress was made for ``timeout``."""
    total = sum(outbox.pending().values())
    progress = Progress(
        TextColumn("sending to InfluxDB"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not show_progress,
    )
    last_progress = time.monotonic()
    with progress:
        task = progress.add_task("send", total=total)
        while (pending := sum(outbox.pending().values())) > 0:
            if outbox.drain_once():
                last_progress = time.monotonic()
                progress.update(task, completed=total - pending)
                continue
            if time.monotonic() - last_progress > timeout:
                break
            time.sleep(min(0.5, max(0.05, outbox.stats.retry_at - outbox.clock())))
    if pending:
        err.print(
            f"[red]{pending:,} points still pending for InfluxDB[/red]"
            f" ({outbox.stats.last_error}); they stay in the ledger and go out with the"
            " next `llm-collector run` or `ingest`"
        )
    outbox.writer.close()
    return pending
