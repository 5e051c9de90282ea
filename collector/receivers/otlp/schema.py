"""The OTLP receiver's table in the ledger: the spans it accepted, by their time, trace and span
id, so that an exporter's retry of a request already committed is not counted twice. Run by
`collector.ledger.migrations`."""

from __future__ import annotations

SCHEMA: tuple[str, ...] = (
    # v9: the spans the OTLP receiver accepted. Keyed by the span's time first, so that a
    # request's keys go in next to each other (recent times) instead of all over the table,
    # and the oldest are pruned as a range (collector.receivers.otlp.store).
    """
    CREATE TABLE otlp_spans (
        ts_us INTEGER NOT NULL,
        trace_id BLOB NOT NULL,
        span_id BLOB NOT NULL,
        received_us INTEGER NOT NULL,
        PRIMARY KEY (ts_us, trace_id, span_id)
    ) WITHOUT ROWID;
    """,
)
