"""Wiring the ingest path from the configuration: sources -> tailer -> parser -> ledger."""

from __future__ import annotations

import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from collector.chunks import ChunkParser
from collector.content import ContentPolicy
from collector.ledger import Batch, Ledger
from collector.lineprotocol import LineEncoder
from collector.outbox import Outbox, raw_feeds, rollup_feeds
from collector.parsing import LineParser
from collector.pricing import Pricer
from collector.quarantine import QuarantineFile
from collector.tailing import Source, Tailer
from collector.timerange import TimeRange
from schemas.config import CollectorConfig


def configured_sources(config: CollectorConfig) -> list[Source]:
    return [Source(s.path, ZoneInfo(s.timezone), s.start_at) for s in config.sources]


def build_tailer(
    config: CollectorConfig,
    ledger: Ledger,
    sources: list[Source],
    *,
    on_progress: Callable[[int], None] | None = None,
    on_commit: Callable[[Batch], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Tailer:
    overrides, content = config.pricing.overrides, config.content
    chunks = ChunkParser(
        LineParser(
            Pricer(overrides),
            ContentPolicy(content),
            TimeRange.from_config(config.ingest.timestamps),
        ),
        config.ingest.max_line_bytes,
        overrides=overrides,
        content=content,
        workers=config.ingest.parse_workers,
    )
    quarantine = QuarantineFile(config.quarantine.path, config.quarantine.keep_bytes)
    return Tailer(
        ledger,
        sources,
        chunks,
        quarantine,
        max_line_bytes=config.ingest.max_line_bytes,
        rotate_wait=config.ingest.rescan_interval.total_seconds(),
        on_progress=on_progress,
        on_commit=on_commit,
        clock=clock,
    )


def build_outbox(config: CollectorConfig, ledger: Ledger) -> Outbox | None:
    """The InfluxDB outbox, or None when no ``influx`` section is configured."""
    if config.influx is None:
        return None
    from collector.influx import InfluxWriter  # influxdb-client takes a third of a second

    writer = InfluxWriter(config.influx)
    encoder = LineEncoder(config.dimensions, TimeRange.from_config(config.ingest.timestamps))
    feeds = raw_feeds(config.influx.buckets.raw, encoder, config.tiers.retention.get("raw"))
    feeds += rollup_feeds(config.influx.buckets.for_tier, encoder)
    return Outbox(ledger, writer, feeds, batch_size=config.influx.batch_size)
