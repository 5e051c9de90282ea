"""Wiring the InfluxDB outbox from the configuration: its feeds (raw events, then each rollup
tier) and its writer."""

from __future__ import annotations

from collector.clock import TimeRange
from collector.ledger.connection import Ledger
from collector.sinks.influx.lineprotocol import LineEncoder
from collector.sinks.influx.outbox import Feed, Outbox, raw_feeds, rollup_feeds
from schemas.config import CollectorConfig


def build_outbox(config: CollectorConfig, ledger: Ledger) -> Outbox | None:
    """The InfluxDB outbox, or None when no ``influx`` section is configured."""
    if config.influx is None:
        return None
    from collector.sinks.influx.writer import (
        InfluxWriter,  # influxdb-client takes a third of a second
    )

    writer = InfluxWriter(config.influx)
    return Outbox(
        ledger,
        writer,
        build_feeds(config),
        batch_size=config.influx.batch_size,
        max_backoff=config.influx.max_backoff.total_seconds(),
    )


def build_feeds(config: CollectorConfig) -> list[Feed]:
    """The outbox's feeds (raw events, then each rollup tier); none without ``influx``."""
    if config.influx is None:
        return []
    times = TimeRange.from_config(config.ingest.timestamps)
    encoder = LineEncoder(config.dimensions, config.influx.instance, times)
    feeds = raw_feeds(config.influx.buckets.raw, encoder, config.tiers.retention.get("raw"))
    return feeds + rollup_feeds(config.influx.buckets.for_tier, encoder)
