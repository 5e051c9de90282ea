"""One OTLP request -> ledger rows, committed before it is answered.

The spans that are LLM calls (`collector.receivers.otlp.spans`) are parsed like trace lines (the
daemon's pricing, content policy and accepted times); their rows, the hours the tiers must roll
and the spans' keys commit in one transaction, so a request committed and then sent again (its
answer lost to a crash or a time-out) is counted once. Rejected spans go to the quarantine file
with their reason before the commit, as bad lines do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from collector.clock import TimeRange, wall_clock_us
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import LineParser, Rejected
from collector.ingest.pricing import Pricer
from collector.ingest.quarantine import QuarantineEntry, QuarantineFile
from collector.ledger import events
from collector.ledger.connection import Batch, count_received
from collector.ledger.worker import LedgerWorker
from collector.receivers.otlp import store
from collector.receivers.otlp.spans import SpanMapping, decode_request
from collector.tiers.marks import mark_written
from schemas.config import CollectorConfig, OtlpReceiverConfig

log = logging.getLogger("collector.otlp")

SOURCE = "otlp"
"""The receiver's name: the ``source`` of its stream and of its quarantine entries."""
UTC = ZoneInfo("UTC")
Row = tuple[store.SpanKey, str, tuple[Any, ...]]
"""A span's key, the kind of its row (``call`` or ``score``) and the row."""


@dataclass(slots=True)
class Outcome:
    """What became of one request's spans."""

    accepted: int = 0
    duplicates: int = 0
    """LLM spans already committed (by trace and span id): a retried export."""
    skipped: int = 0
    """Spans that are not LLM calls."""
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """(span label, reason) of each LLM span that failed validation: quarantined."""


@dataclass(slots=True)
class Incoming:
    """A request parsed, not stored yet: its rows, and what became of its other spans."""

    rows: list[Row]
    outcome: Outcome


class Receiver(LedgerWorker):
    """Parses OTLP requests and stores them, one at a time, on a ledger connection of its
    own."""

    def __init__(
        self,
        config: CollectorConfig,
        otlp: OtlpReceiverConfig,
        quarantine: QuarantineFile,
        *,
        on_commit: Callable[[Batch], None] | None = None,
        clock_us: Callable[[], int] = wall_clock_us,
    ) -> None:
        """``quarantine`` is the tailer's (one file, shared); ``on_commit`` gets each batch
        once committed (the daemon's metrics), on the thread that stores it."""
        super().__init__(
            config.ledger.path,
            log=log,
            still_running="an OTLP request was still being stored at exit; its sender retries it",
        )
        self.parser = LineParser(
            Pricer(config.pricing.overrides),
            ContentPolicy(config.content),
            TimeRange.from_config(config.ingest.timestamps),
        )
        self.mapping = SpanMapping(tenant_attribute=otlp.tenant_attribute)
        self.quarantine = quarantine
        self.on_commit = on_commit
        self.clock_us = clock_us
        self.stream = self.ledger.receiver_stream(SOURCE)
        raw = config.tiers.retention["raw"]
        self.keys_kept_us = None if raw is None else raw // timedelta(microseconds=1)
        """How long a span's key is kept, after the span's time and after it came: the raw
        retention (None: forever)."""

    def parse(self, body: bytes, content_type: str) -> Incoming:
        """Decode one request's spans (``body`` decompressed) and parse the calls into rows
        (no ledger read). Raises `Undecodable` for a body that is not OTLP."""
        decoded = decode_request(body, content_type, self.mapping)
        incoming = Incoming([], Outcome(skipped=decoded.skipped, rejected=list(decoded.invalid)))
        for span in decoded.calls:
            try:
                result = self.parser.parse_object(span.event, UTC, self.stream.id)
            except Rejected as error:
                incoming.outcome.rejected.append((span.label, str(error)))
                continue
            if result.row is None:
                incoming.outcome.skipped += 1
            else:
                key = (result.row[0], span.trace_id, span.span_id)
                incoming.rows.append((key, result.kind, result.row))
        return incoming

    def store(self, incoming: Incoming) -> Outcome:
        """Quarantine the rejected spans, then commit the rows of the spans not stored before;
        a ledger or quarantine error stores nothing (the sender retries)."""
        outcome = incoming.outcome
        written = self.quarantine.write([_entry(*rejected) for rejected in outcome.rejected])
        try:
            batch = self._commit(incoming.rows, outcome)
        except BaseException:
            self.quarantine.take_back(written)
            raise
        if self.on_commit is not None and batch.events:
            self.on_commit(batch)
        return outcome

    def _commit(self, parsed: list[Row], outcome: Outcome) -> Batch:
        """The new spans' rows, their hours' marks, their keys and the stream's counts, in one
        transaction; the spans whose keys were claimed before count as duplicates."""
        batch = Batch(quarantined=len(outcome.rejected), skipped=outcome.skipped)
        if not parsed and not batch.quarantined and not batch.skipped:
            return batch
        with self.ledger.transaction() as db:
            new = (
                store.claim(db, [key for key, _, _ in parsed], self.clock_us()) if parsed else set()
            )
            for key, kind, row in parsed:
                if key not in new:
                    outcome.duplicates += 1
                    continue
                new.discard(key)  # the same span twice in one request counts once
                (batch.calls if kind == "call" else batch.scores).append(row)
            batch.lines = batch.events + batch.quarantined + batch.skipped
            if batch.events:
                events.insert(db, "calls", batch.calls)
                events.insert(db, "scores", batch.scores)
                mark_written(db, (row[0] for row in chain(batch.calls, batch.scores)))
            count_received(db, self.stream, batch)
        outcome.accepted = batch.events
        return batch

    def expire_keys(self) -> int:
        """Forget the keys of spans from and received longer ago than a retry can come (the
        raw retention); how many."""
        if self.keys_kept_us is None:
            return 0
        return store.prune(self.ledger.db, self.clock_us() - self.keys_kept_us)


def _entry(label: str, reason: str) -> QuarantineEntry:
    """A quarantine entry for a rejected span: its label (ids, name, model), no content."""
    line = orjson.dumps({"span": label})
    return QuarantineEntry(SOURCE, 0, reason, line, len(line))
