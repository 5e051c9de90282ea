"""``llm-collector backup`` and ``export``: a consistent copy of the ledger while the daemon
writes, and ledger rows streamed out as CSV or JSON lines."""

from __future__ import annotations

import csv
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from collector import files
from collector.cli.common import config_option, config_or_exit, ledger_or_exit
from collector.ledger import events
from collector.ledger.connection import Ledger
from collector.tiers import store as tiers
from collector.timespec import parse_time, to_us
from schemas.config import TIERS

err = Console(stderr=True)

BACKUP_STEP_PAGES = 4096
"""Pages copied per backup step (16 MiB at the default page size), between progress updates."""
FETCH_ROWS = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@click.command()
@config_option
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH when it exists.")
def backup(config_path: Path | None, path: Path, force: bool) -> None:
    """Copy the ledger to PATH with SQLite's online backup, safe while the daemon writes.

    The copy is one consistent snapshot (what was committed when the backup began) and is
    checked with PRAGMA integrity_check before it takes the name PATH.
    """
    config = config_or_exit(config_path)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; choose another path or pass --force")
    if not path.parent.is_dir():
        raise click.ClickException(f"{path.parent} is not a directory; create it first")
    ledger = ledger_or_exit(config, readonly=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        pages = _copy(ledger, partial)
        problems = _integrity(partial)
        if problems:
            raise click.ClickException(
                f"the copy failed PRAGMA integrity_check ({problems}); it is left at {partial}."
                " Check the disk, then run the backup again"
            )
        os.replace(partial, path)
    except sqlite3.Error as error:
        raise click.ClickException(f"backup to {path} failed: {error}") from None
    finally:
        ledger.close()
    size = path.stat().st_size
    click.echo(
        f"backed up {config.ledger.path} to {path}: {size / 2**20:,.1f} MiB, {pages:,} pages,"
        f" integrity ok, {time.monotonic() - started:.1f} s"
    )


def _copy(ledger: Ledger, target_path: Path) -> int:
    """Page by page with a progress bar. The read transaction held on the source pins one
    snapshot: without it every commit by the daemon would restart the backup."""
    files.create(target_path)
    target = sqlite3.connect(target_path)
    progress = Progress(
        TextColumn("backing up"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    )
    task = progress.add_task("pages", total=None)

    def step(_status: int, remaining: int, total: int) -> None:
        progress.update(task, completed=total - remaining, total=total)

    try:
        ledger.db.execute("BEGIN")
        ledger.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        with progress if err.is_terminal else nullcontext():
            ledger.db.backup(target, pages=BACKUP_STEP_PAGES, progress=step)
        ledger.db.execute("COMMIT")
        return target.execute("PRAGMA page_count").fetchone()[0]
    finally:
        target.close()


def _integrity(path: Path) -> str | None:
    """None when ``PRAGMA integrity_check`` says ok, else its first findings."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = [row[0] for row in db.execute("PRAGMA integrity_check")]
    finally:
        db.close()
    return None if rows == ["ok"] else "; ".join(rows[:5])


@click.command()
@config_option
@click.option("--since", default="-24h", show_default=True, help="Start: ISO 8601, today, -7d...")
@click.option("--until", default="now", show_default=True, help="End (exclusive).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="CSV with a header row, or JSON lines (one object per row).",
)
@click.option(
    "--tier",
    type=click.Choice(TIERS),
    default="raw",
    show_default=True,
    help="raw: one row per call; 1h, 1d, 1mo: one row per window and group.",
)
@click.option("--scores", is_flag=True, help="Export score events instead of calls (raw only).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file [default: standard output].",
)
def export(
    config_path: Path | None,
    since: str,
    until: str,
    fmt: str,
    tier: str,
    scores: bool,
    out: Path | None,
) -> None:
    """Stream ledger rows of [--since, --until) as CSV or JSON lines, oldest first.

    Times are ISO 8601 in UTC (timestamp; window_start and window_end for a tier; a tier row
    counts when its window starts inside the range). Rows are read in batches, never all at
    once, so any range fits in memory.
    """
    config = config_or_exit(config_path)
    zone = ZoneInfo(config.timezone)
    try:
        start, end = to_us(parse_time(since, zone)), to_us(parse_time(until, zone))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if scores and tier != "raw":
        raise click.BadParameter(
            "--scores exports raw score events; drop --tier", param_hint="--scores"
        )
    ledger = ledger_or_exit(config, readonly=True)
    columns, rows = _select(ledger.db, tier, scores, start, end)
    with _output(out) as stream:
        written = _write(stream, fmt, columns, rows)
    ledger.close()
    if out is not None:
        click.echo(f"exported {written:,} rows to {out}", err=True)


def _output(path: Path | None) -> AbstractContextManager[IO[str]]:
    if path is None:
        return nullcontext(sys.stdout)
    try:
        return files.open_private(path, "w", encoding="utf-8", newline="")
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None


def _select(
    db: sqlite3.Connection, tier: str, scores: bool, start: int, end: int
) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """Output column names and a lazy row iterator; microsecond times become ISO strings."""
    if tier != "raw":
        names = ["window_start", "window_end", *tiers.EXPORT_COLUMNS[2:]]
        return names, _iso_rows(tiers.export_rows(db, tier, start, end), 2)
    columns, rows = events.between(db, "scores" if scores else "calls", start, end)
    names = ["id", "timestamp", *columns[2:]]
    return names, _iso_rows(rows, 1, first=1)


def _iso_rows(cursor: sqlite3.Cursor, count: int, first: int = 0) -> Iterator[tuple[Any, ...]]:
    """Rows with ``count`` microsecond columns from index ``first`` turned into ISO 8601."""
    while batch := cursor.fetchmany(FETCH_ROWS):
        for row in batch:
            times = tuple(_iso(us) for us in row[first : first + count])
            yield (*row[:first], *times, *row[first + count :])


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


def _write(stream: IO[str], fmt: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
    written = 0
    if fmt == "csv":
        writer = csv.writer(stream)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
            written += 1
        return written
    for row in rows:
        stream.write(orjson.dumps(dict(zip(columns, row, strict=True))).decode() + "\n")
        written += 1
    return written
