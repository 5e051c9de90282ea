"""Wiring the ingest path from the configuration: sources -> tailer -> parser -> ledger (the
InfluxDB outbox is wired by `collector.sinks.influx.build`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from collector.clock import TimeRange
from collector.ingest.chunks import ChunkParser
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser
from collector.ingest.pricing import Pricer
from collector.ingest.quarantine import QuarantineFile
from collector.ingest.tailing import Source, Tailer
from collector.ledger.connection import Batch, Ledger
from collector.ledger.writer_lock import acquire
from collector.tiers import marks
from schemas.config import CollectorConfig


def configured_sources(config: CollectorConfig) -> list[Source]:
    return [Source(s.path, ZoneInfo(s.timezone), s.start_at) for s in config.sources]


def open_for_writing(config: CollectorConfig, command: str) -> Ledger:
    """The ledger of a process that writes events (``command``, e.g. "llm-collector run"):
    its writer lock held, the file checked. Raises a `CollectorError` saying what to do."""
    acquire(config.ledger.path, command)
    return Ledger(config.ledger.path, check=True)


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
    policy = ContentPolicy(content)
    quarantine = QuarantineFile(config.quarantine.path, config.quarantine.keep_bytes, policy)
    quarantine.open()  # an unusable quarantine stops a writer at start, not at its first bad line
    chunks = ChunkParser(
        LineParser(Pricer(overrides), policy, TimeRange.from_config(config.ingest.timestamps)),
        config.ingest.max_line_bytes,
        workers=config.ingest.parse_workers,
    )
    return Tailer(
        ledger,
        sources,
        chunks,
        quarantine,
        mark_written=marks.mark_written,
        max_line_bytes=config.ingest.max_line_bytes,
        rotate_wait=config.ingest.rescan_interval.total_seconds(),
        on_progress=on_progress,
        on_commit=on_commit,
        clock=clock,
    )
