"""Every table's migration scripts, in the order they were added: ``PRAGMA user_version`` is
how many of them a ledger has run. Each owner keeps its own (``SCHEMA``); a new script is
appended here, never inserted."""

from __future__ import annotations

from alerting import store as alerting
from collector.ledger import schema as ledger
from collector.receivers.otlp import schema as receivers
from collector.sinks.influx import schema as sinks
from collector.tiers import schema as tiers
from reports import sentlog as reports

MIGRATIONS: tuple[str, ...] = (
    ledger.SCHEMA[0],  # v1
    sinks.SCHEMA[0],  # v2
    tiers.SCHEMA[0],  # v3
    alerting.SCHEMA[0],  # v4
    sinks.SCHEMA[1],  # v5
    reports.SCHEMA[0],  # v6
    alerting.SCHEMA[1],  # v7
    ledger.SCHEMA[1],  # v8
    receivers.SCHEMA[0],  # v9
)
