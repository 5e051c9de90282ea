"""``llm-collector status``: where reading stands, what waits for InfluxDB, what fires, and
when the running daemon's jobs last ran and run next."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from alerting import store
from collector.cli.common import config_option, config_or_exit, ledger_or_exit
from collector.ledger.connection import Ledger, StreamState
from collector.sinks.influx.build import build_outbox
from collector.sinks.influx.outbox import dead_letters
from schemas.config import CollectorConfig

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


def receiver_totals(ledger: Ledger) -> dict[str, dict[str, int]]:
    """Per receiver, over the ledger's life: spans counted, accepted (events), rejected
    (quarantined) and skipped (not LLM calls)."""
    return {
        stream.source: {
            "spans": stream.counts["lines"],
            "accepted": stream.counts["events"],
            "rejected": stream.counts["quarantined"],
            "skipped": stream.counts["skipped"],
        }
        for stream in ledger.streams((StreamState.RECEIVER,))
    }


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


def firing_alerts(ledger: Ledger) -> list[dict[str, Any]]:
    """Alerts firing now, from the state the daemon's evaluation keeps in the ledger."""
    return [
        {
            "rule": alert.rule,
            "labels": alert.labels,
            "firing_for_s": _age(alert.fired_us),
            "value": alert.value,
            "summary": alert.summary,
        }
        for alert in store.firing_alerts(ledger.db)
    ]


def daemon_jobs(config: CollectorConfig, timeout: float = 2.0) -> dict[str, Any]:
    """The running daemon's jobs (last and next run) from its /healthz; next runs are known
    only to the daemon's scheduler, so without an answer there are none to show."""
    if not config.server.enabled:
        return {"error": "server.enabled is false: the daemon serves no /healthz to ask"}
    host, port = config.server.address()
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/healthz"
    try:
        body = _health(url, timeout)
    except (OSError, ValueError) as error:
        return {"error": f"no daemon answering at {url} ({_reason(error)})"}
    if not isinstance(body, dict) or "jobs" not in body:
        return {"error": f"{url} answers, but not as an llm-collector daemon"}
    if body.get("ledger") != str(config.ledger.path.resolve()):
        return {"error": f"the daemon at {url} serves another ledger ({body.get('ledger')})"}
    return {
        "url": url,
        "status": body["status"],
        "reasons": body["reasons"],
        "jobs": body["jobs"],
        "receivers": body.get("receivers", {}),
    }


def _health(url: str, timeout: float) -> Any:
    """The /healthz body; a 503 (unhealthy) still tells the jobs. Not JSON: ValueError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return orjson.loads(answer.read())
    except urllib.error.HTTPError as error:
        return orjson.loads(error.read())


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None) or error
    return str(getattr(reason, "strerror", None) or reason)


def _age(when_us: int | None) -> float | None:
    return None if when_us is None else time.time() - when_us / 1e6


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(config_path: Path | None, as_json: bool) -> None:
    """Lag per trace file, totals, the InfluxDB outbox (pending, oldest, dead letters),
    firing alerts, and the running daemon's jobs with their last and next runs."""
    config = config_or_exit(config_path)
    ledger = ledger_or_exit(config, readonly=True)
    state: dict[str, Any] = {
        "files": file_lag(ledger),
        "totals": ledger.totals(),
        "receivers": receiver_totals(ledger),
        "influx": outbox_state(config, ledger),
        "firing_alerts": firing_alerts(ledger),
        "daemon": daemon_jobs(config),
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
    read = "lines and spans" if state["receivers"] else "lines"
    out.print(
        f"ledger: {totals['events']:,} events from {totals['lines']:,} {read} "
        f"({totals['quarantined']:,} quarantined, {totals['skipped']:,} skipped)"
    )
    _print_receivers(state["receivers"], state["daemon"].get("receivers", {}))
    _print_influx(state["influx"])
    _print_alerts(state["firing_alerts"])
    _print_daemon(state["daemon"])


def _print_receivers(totals: dict[str, Any], running: dict[str, Any]) -> None:
    """Each receiver's counts over the ledger's life, then the running daemon's since start
    (duplicates and requests by HTTP status class are counted only there)."""
    for name in sorted(totals.keys() | running.keys()):
        total = totals.get(name)
        if total is not None:
            out.print(
                f"receiver {name}: {total['accepted']:,} spans accepted,"
                f" {total['rejected']:,} rejected (quarantined), {total['skipped']:,} skipped"
                " (not LLM calls)"
            )
        now = running.get(name)
        if now is not None:
            spans = now["spans"]
            classes: dict[str, int] = {}
            for code, count in now["requests"].items():
                classes[f"{code[0]}xx"] = classes.get(f"{code[0]}xx", 0) + count
            requests = ", ".join(f"{k} {v:,}" for k, v in sorted(classes.items())) or "none"
            out.print(
                f"  since the daemon started ({now['listen']}): {spans['accepted']:,} accepted,"
                f" {spans['duplicates']:,} duplicates, {spans['rejected']:,} rejected,"
                f" {spans['skipped']:,} skipped; requests {requests}"
            )


def _print_influx(influx: dict[str, Any] | None) -> None:
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


def _print_alerts(alerts: list[dict[str, Any]]) -> None:
    out.print(f"firing alerts: {len(alerts)}")
    for alert in alerts:
        labels = ", ".join(f"{k}={v}" for k, v in alert["labels"].items() if k != "alertname")
        out.print(
            f"  {alert['rule']} {{{labels}}} value={alert['value']}"
            f" for {_seconds(alert['firing_for_s'])}"
        )


def _print_daemon(daemon: dict[str, Any]) -> None:
    if "error" in daemon:
        out.print(f"daemon: {daemon['error']}; next job runs unknown")
        return
    reasons = f" ({'; '.join(daemon['reasons'])})" if daemon["reasons"] else ""
    out.print(f"daemon at {daemon['url']}: {daemon['status']}{reasons}")
    table = Table("job", "every", "last run", "next run", "last error")
    for name, job in daemon["jobs"].items():
        table.add_row(
            name,
            f"{job['interval_s']:g} s",
            job["last_run"] or "-",
            job["next_run"] or "-",
            job["last_error"] or "",
        )
    out.print(table)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} s"
