"""What every ``llm-collector`` command shares: the --config option and its loading."""

from __future__ import annotations

from pathlib import Path

import click

from collector.configfile import ConfigError, load_config
from collector.ingest.pipeline import open_for_writing
from collector.ledger.connection import Ledger, LedgerError
from collector.logs import add_config_secrets
from schemas.config import CollectorConfig
from schemas.errors import CollectorError

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML configuration file [default: $LLM_COLLECTOR_CONFIG, else ./collector.yaml].",
)


def config_or_exit(path: Path | None) -> CollectorConfig:
    """The configuration, or a clean CLI error naming the file and the key."""
    try:
        config = load_config(path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    add_config_secrets(config)  # masked in every log line and error message from now on
    return config


def writer_ledger_or_exit(config: CollectorConfig, command: str) -> Ledger:
    """The ledger for a command that writes events, its writer lock held (`open_for_writing`),
    or a clean CLI error: another writer, a damaged file, an unwritable quarantine."""
    click.get_current_context().meta["ledger"] = config.ledger.path
    try:
        return open_for_writing(config, command)
    except CollectorError as error:
        raise click.ClickException(str(error)) from None


def ledger_or_exit(config: CollectorConfig, *, readonly: bool = False) -> Ledger:
    """The configured ledger, or a clean CLI error saying why it cannot be opened."""
    click.get_current_context().meta["ledger"] = config.ledger.path
    try:
        return Ledger(config.ledger.path, readonly=readonly)
    except LedgerError as error:
        raise click.ClickException(str(error)) from None
