"""The OTLP receiver's table in the ledger: the spans it accepted, by trace and span id, so that
an exporter's retry of a request already committed is not counted twice. Run by
`collector.ledger.migrations`."""

from __future__ import annotations

SCHEMA: tuple[str, ...] = (
    # v9: the (trace_id, span_id) of every span the OTLP receiver accepted, and when; pruned
    # by receipt time (collector.receivers.otlp.store).
    """
    CREATE TABLE otlp_spans (
        trace_id BLOB NOT NULL,
        span_id BLOB NOT NULL,
        received_us INTEGER NOT NULL,
        PRIMARY KEY (trace_id, span_id)
    ) WITHOUT ROWID;
    CREATE INDEX otlp_spans_received ON otlp_spans (received_us);
    """,
)
