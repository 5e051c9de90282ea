"""``llm-collector rules check|test``, ``alerts``, ``silence``, ``notify test|log``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from alerting import store
from alerting.store import Logged
from collector.cli.common import config_option, config_or_exit, ledger_or_exit
from collector.ledger.connection import Ledger
from schemas.durations import parse_duration


def _now_us() -> int:
    return time.time_ns() // 1000


def _when(us: int | None) -> str:
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _labels(labels: dict[str, str]) -> str:
    """``{k=v, ...}`` without the alertname, which is shown on its own."""
    return "{" + ", ".join(f"{k}={v}" for k, v in labels.items() if k != "alertname") + "}"


def _ledger(config_path: Path | None, *, readonly: bool = False) -> Ledger:
    return ledger_or_exit(config_or_exit(config_path), readonly=readonly)


@click.group()
def rules() -> None:
    """Alert rules files."""


@rules.command("check")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
def rules_check(path: Path) -> None:
    """Validate FILE; exit 1 with one line per problem (file, rule, field)."""
    from alerting.rules import RulesError, load_rules  # pydantic models: built only when used

    try:
        loaded = load_rules(path)
    except RulesError as error:
        raise click.ClickException(str(error)) from None
    kinds: dict[str, int] = {}
    for rule in loaded.rules:
        kinds[rule.kind] = kinds.get(rule.kind, 0) + 1
    detail = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    click.echo(f"{path}: {len(loaded.rules)} rule(s) OK ({detail or 'none'})")


@rules.command("test")
@click.argument(
    "path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def rules_test(path: Path) -> None:
    """Run the rule unit tests in FILE (events over time, expected alerts at given times)."""
    from pydantic import ValidationError

    from alerting.rules import RulesError
    from collector.cli.rule_test_runner import run_file

    try:
        failures = run_file(path)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or '(top level)'}: "
            + ("unknown key" if item["type"] == "extra_forbidden" else item["msg"])
            for item in error.errors(include_url=False)
        )
        raise click.ClickException(f"{path}: not a rule test file: {problems}") from None
    except (RulesError, ValueError) as error:
        raise click.ClickException(f"{path}: {error}") from None
    for failure in failures:
        click.echo(f"FAILED {failure}")
    if failures:
        raise SystemExit(1)
    click.echo(f"{path}: all rule tests passed")


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the alerts as JSON.")
def alerts(config_path: Path | None, as_json: bool) -> None:
    """What is pending or firing now, and rules whose last evaluation failed."""
    ledger = _ledger(config_path, readonly=True)
    try:
        stored = store.list_alerts(ledger.db)
        errors = store.rule_errors(ledger.db)
    finally:
        ledger.close()
    found: list[dict[str, Any]] = [
        {
            "rule": alert.rule,
            "labels": alert.labels,
            "state": alert.state,
            "active_since": _when(alert.active_since_us),
            "firing_since": _when(alert.fired_us),
            "value": alert.value,
            "summary": alert.summary,
        }
        for alert in stored
    ]
    if as_json:
        click.echo(orjson.dumps({"alerts": found, "errors": errors}).decode())
        return
    for alert in found:
        click.echo(
            f"{alert['state']:8} {alert['rule']} {_labels(alert['labels'])}"
            f" value={alert['value']} since {alert['active_since']}"
        )
    for rule, error in errors.items():
        click.echo(f"error    {rule}: {error}")
    if not found and not errors:
        click.echo("no alerts pending or firing")


@click.group()
def silence() -> None:
    """Silences: alerts matching them are not notified until they end."""


def _matchers(pairs: tuple[str, ...]) -> dict[str, str]:
    matchers = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not label=value", param_hint="--match")
        matchers[name] = value
    return matchers


@silence.command("add")
@config_option
@click.option("--match", "pairs", multiple=True, required=True, help="label=value (repeatable)")
@click.option("--for", "duration", default="2h", show_default=True, help="How long, e.g. 30m.")
@click.option("--comment", default="", help="Why.")
def silence_add(
    config_path: Path | None, pairs: tuple[str, ...], duration: str, comment: str
) -> None:
    """Silence alerts whose labels equal every --match."""
    try:
        length = parse_duration(duration)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--for") from None
    if length.total_seconds() <= 0:
        raise click.BadParameter("a silence must last longer than zero", param_hint="--for")
    matchers, now = _matchers(pairs), _now_us()
    ledger = _ledger(config_path)
    try:
        ends = now + int(length.total_seconds() * 1_000_000)
        silence_id = store.add_silence(ledger.db, matchers, now, ends, comment)
    finally:
        ledger.close()
    click.echo(f"silence {silence_id} until {_when(ends)}")


@silence.command("list")
@config_option
@click.option("--all", "show_all", is_flag=True, help="Expired silences too.")
def silence_list(config_path: Path | None, show_all: bool) -> None:
    """Active silences (id, matchers, end, comment)."""
    ledger = _ledger(config_path, readonly=True)
    try:
        found = store.list_silences(ledger.db, None if show_all else _now_us())
    finally:
        ledger.close()
    for stored in found:
        labels = ", ".join(f"{k}={v}" for k, v in stored.matchers.items())
        until = _when(stored.ends_us)
        click.echo(f"{stored.id}  {{{labels}}}  until {until}  {stored.comment}".rstrip())
    if not found:
        click.echo("no silences")


@silence.command("expire")
@config_option
@click.argument("silence_id", type=int)
def silence_expire(config_path: Path | None, silence_id: int) -> None:
    """End silence SILENCE_ID now."""
    ledger = _ledger(config_path)
    try:
        expired = store.expire_silence(ledger.db, silence_id, _now_us())
    finally:
        ledger.close()
    if not expired:
        raise click.ClickException(f"no active silence {silence_id}")
    click.echo(f"silence {silence_id} expired")


@click.group()
def notify() -> None:
    """Notification receivers."""


@notify.command("test")
@config_option
@click.argument("receiver")
def notify_test(config_path: Path | None, receiver: str) -> None:
    """Send a test notification to RECEIVER now (not through the outbox)."""
    from alerting.alert import AlertPayload
    from alerting.delivery import build_notifiers
    from alerting.lifecycle import Notice
    from alerting.message import Notification
    from alerting.notifiers import NotifyError

    alerting = config_or_exit(config_path).alerting
    notifier = build_notifiers(alerting).get(receiver)
    if notifier is None:
        known = ", ".join(sorted(build_notifiers(alerting))) or "none"
        raise click.ClickException(
            f"no receiver named {receiver!r} under alerting.receivers (configured: {known})"
        )
    alert: AlertPayload = {
        "status": Notice.FIRING,
        "labels": {"alertname": "TestNotification", "severity": "info"},
        "value": None,
        "threshold": None,
        "summary": "a test notification from llm-collector notify test",
        "starts_us": _now_us(),
        "ends_us": None,
    }
    message = Notification(receiver, "test", [alert], alerting.external_url)
    try:
        asyncio.run(notifier.send(message))
    except NotifyError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"sent a test notification to {receiver}")


@notify.command("log")
@config_option
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the notifications as JSON.")
def notify_log(config_path: Path | None, limit: int, as_json: bool) -> None:
    """The latest notifications: when each came due, when its receiver acknowledged it (or a
    silence stopped it), how many attempts it took and the last error."""
    ledger = _ledger(config_path, readonly=True)
    try:
        found = [_logged(notice) for notice in store.notification_log(ledger.db, limit)]
    finally:
        ledger.close()
    if as_json:
        click.echo(orjson.dumps({"notifications": found}).decode())
        return
    for entry in found:
        click.echo(
            f"{entry['id']:>5} {entry['receiver']} {entry['status']:8} {entry['alertname']}"
            f" {_labels(entry['labels'])} due {entry['due']}: {_outcome(entry)}"
        )
    if not found:
        click.echo("no notifications")


def _logged(notice: Logged) -> dict[str, Any]:
    labels = notice.payload["labels"]
    return {
        "id": notice.id,
        "receiver": notice.receiver,
        "status": notice.status,
        "alertname": labels.get("alertname", ""),
        "labels": labels,
        "due": _when(notice.due_us),
        "acknowledged": _when(notice.sent_us) if notice.sent_us is not None else None,
        "silenced": _when(notice.silenced_us) if notice.silenced_us is not None else None,
        "attempts": notice.attempts,
        "last_error": notice.last_error,
    }


def _outcome(entry: dict[str, Any]) -> str:
    if entry["acknowledged"] is not None:
        return f"acknowledged {entry['acknowledged']} (attempt {entry['attempts']})"
    if entry["silenced"] is not None:
        return f"silenced at {entry['silenced']}"
    if entry["last_error"] is not None:
        return f"waiting, {entry['attempts']} attempt(s): {entry['last_error']}"
    return "waiting"
