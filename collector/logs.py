"""Logging set-up: console lines or one JSON object per line, with every secret masked.

The `Redactor` sits on the handlers, so whichever library logs (slack-sdk, urllib3,
influxdb-client, aiosmtplib), a token, password or webhook URL never reaches the output.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import click
import orjson

from collector.errors import describe
from schemas.config import CollectorConfig
from schemas.errors import CollectorError

MASK = "********"
LOG_FORMATS = ("console", "json")
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MIN_SECRET = 6  # shorter values would mask ordinary words
_PATTERNS = re.compile(
    r"https?://hooks\.slack(?:-gov)?\.com/[^\s'\"<>]+"  # Slack incoming webhooks
    r"|xox[abposr]-[A-Za-z0-9-]+"  # Slack bot, user and app tokens
)


class Redactor(logging.Filter):
    """Replaces known secret values and secret-shaped strings in a record's message,
    arguments and traceback with ``********``."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def add_secrets(self, values: Iterable[str]) -> None:
        """Mask these values too; a URL's path is masked on its own as well (a webhook's
        secret is its path, which HTTP libraries log without the host)."""
        found = set(self._secrets)
        for value in values:
            found.update(_variants(value))
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _PATTERNS.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def _variants(value: str) -> set[str]:
    if len(value) < _MIN_SECRET:
        return set()
    found = {value}
    parts = urlsplit(value)
    if parts.scheme and parts.netloc:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(path) >= _MIN_SECRET:
            found.add(path)
    return found


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message"[, "exception"]}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return orjson.dumps(data).decode()


class _Handler(logging.StreamHandler):
    """The handler `setup` installs, told apart from handlers others (pytest) installed."""


redactor = Redactor()
"""The process's one redactor: `setup` installs it, `add_config_secrets` feeds it."""


def setup(level: str, log_format: str) -> None:
    """Log to stderr at ``level`` as ``console`` lines or ``json`` objects, secrets masked;
    uncaught exceptions go through the same handler."""
    handler = _Handler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(CONSOLE_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)  # set up again (one process, several commands: the tests)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    logging.getLogger("collector").critical("uncaught error", exc_info=(kind, error, trace))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:
        name = args.thread.name if args.thread is not None else "?"
        logging.getLogger("collector").critical(
            "uncaught error in thread %s", name, exc_info=args.exc_value
        )


def config_secrets(config: CollectorConfig) -> list[str]:
    """Every secret value the configuration holds: the InfluxDB token, the OTLP receiver's
    token, Slack webhook URLs and bot tokens, SMTP passwords."""
    secrets = []
    if config.influx is not None:
        with contextlib.suppress(ValueError):  # an unreadable token file: the writer says so
            secrets.append(config.influx.secret_token())
    otlp = config.receivers.otlp
    if otlp is not None:
        with contextlib.suppress(ValueError):  # an unreadable token file: the receiver says so
            secrets += [token] if (token := otlp.secret_token()) else []
    for receiver in config.alerting.receivers:
        if receiver.slack is not None:
            for value in (receiver.slack.webhook_url, receiver.slack.bot_token):
                if value is not None:
                    secrets.append(value.get_secret_value())
        if receiver.email is not None and receiver.email.password is not None:
            secrets.append(receiver.email.password.get_secret_value())
    return secrets


def add_config_secrets(config: CollectorConfig) -> None:
    redactor.add_secrets(config_secrets(config))


class RedactingGroup(click.Group):
    """A command group whose error messages (printed by click, not logged) are masked too."""

    def invoke(self, ctx: click.Context) -> Any:
        """Errors of the ledger, the files and the collector's own print as one line."""
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            error.message = redactor.mask(error.message)
            raise
        except (CollectorError, OSError, sqlite3.Error) as error:
            message = describe(error, ctx.meta.get("ledger"))
            raise click.ClickException(redactor.mask(message)) from None
