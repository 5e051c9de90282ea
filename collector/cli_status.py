"""``llm-collector status``: where reading stands, and what waits for InfluxDB."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from collector.cli_common import config_option, config_or_exit, ledger_or_exit
from collector.ledger import Ledger
from collector.outbox import dead_letters
from collector.pipeline import build_outbox

out = Console()


def file_lag(ledger: Ledger) -> list[dict[str, Any]]:
    """Per followed file: bytes not read yet, and its counters."""
    files = []
    for stream in ledger.streams():
        try:
            size = os.stat(stream.path).st_size
        except OSError:
            size = stream.offset
        files.append(
            {
                "path": stream.path,
                "state": stream.state,
                "lag_bytes": size - stream.offset,
                **stream.counts,
            }
        )
    return files


def outbox_state(config: Any, ledger: Ledger) -> dict[str, Any] | None:
    outbox = build_outbox(config, ledger)
    if outbox is None:
        return None
    oldest = outbox.oldest_pending_us()
    sent, last_ack_us = outbox.acknowledged()
    outbox.writer.close()
    return {
        "pending": outbox.pending(),
        "oldest_pending_event_age_s": _age(oldest),
        "acknowledged_points": sent,
        "last_acknowledged_age_s": _age(last_ack_us),
        "dead_letters": len(dead_letters(ledger)),
    }


def _age(when_us: int | None) -> float | None:
    return None if when_us is None else time.time() - when_us / 1e6


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(config_path: Path | None, as_json: bool) -> None:
    """Lag per trace file, totals, and the InfluxDB outbox (pending, oldest, dead letters)."""
    config = config_or_exit(config_path)
    ledger = ledger_or_exit(config, readonly=True)
    state = {
        "files": file_lag(ledger),
        "totals": ledger.totals(),
        "influx": outbox_state(config, ledger),
    }
    if as_json:
        click.echo(orjson.dumps(state).decode())
        return
    table = Table("file", "state", "lag bytes", "lines", "events", "quarantined", "skipped")
    for f in state["files"]:
        table.add_row(
            f["path"],
            f["state"],
            f"{f['lag_bytes']:,}",
            f"{f['lines']:,}",
            f"{f['events']:,}",
            f"{f['quarantined']:,}",
            f"{f['skipped']:,}",
        )
    out.print(table)
    totals = state["totals"]
    out.print(
        f"ledger: {totals['events']:,} events from {totals['lines']:,} lines "
        f"({totals['quarantined']:,} quarantined, {totals['skipped']:,} skipped)"
    )
    influx = state["influx"]
    if influx is None:
        out.print("influx: not configured")
        return
    out.print(
        f"influx outbox: {sum(influx['pending'].values()):,} points pending"
        f" ({', '.join(f'{k} {v:,}' for k, v in influx['pending'].items())}),"
        f" oldest pending event {_seconds(influx['oldest_pending_event_age_s'])} old;"
        f" {influx['acknowledged_points']:,} points acknowledged, the last"
        f" {_seconds(influx['last_acknowledged_age_s'])} ago;"
        f" {influx['dead_letters']} dead letter(s)"
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} s"
