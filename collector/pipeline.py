"""Wiring the ingest path from the configuration: sources -> tailer -> parser -> ledger."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from collector.content import ContentPolicy
from collector.ledger import Ledger
from collector.parsing import LineParser
from collector.pricing import Pricer
from collector.quarantine import QuarantineFile
from collector.tailing import Source, Tailer
from schemas.config import CollectorConfig


def configured_sources(config: CollectorConfig) -> list[Source]:
    return [Source(s.path, ZoneInfo(s.timezone), s.start_at) for s in config.sources]


def build_tailer(
    config: CollectorConfig,
    ledger: Ledger,
    sources: list[Source],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> Tailer:
    parser = LineParser(Pricer(config.pricing.overrides), ContentPolicy(config.content))
    quarantine = QuarantineFile(config.quarantine.path, config.quarantine.keep_bytes)
    return Tailer(
        ledger,
        sources,
        parser,
        quarantine,
        max_line_bytes=config.ingest.max_line_bytes,
        rotate_wait=config.ingest.rescan_interval.total_seconds(),
        on_progress=on_progress,
    )
