"""The outbox's tables in the ledger: a cursor per feed (the last row the server acknowledged)
and the batches it refused for good. Run by `collector.ledger.migrations`."""

from __future__ import annotations

SCHEMA: tuple[str, ...] = (
    # v2: sinks read the ledger's own tables as their outbox: a cursor per (sink, table) is
    # the last row acknowledged; rows past it are pending. Refused batches go aside.
    """
    CREATE TABLE sink_cursors (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    );
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        cursor TEXT NOT NULL,
        first_position INTEGER NOT NULL,
        last_position INTEGER NOT NULL,
        status INTEGER,
        message TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        retried_us INTEGER
    );
    """,
    # v5: what each sink feed has had acknowledged, for `llm-collector status`.
    """
    ALTER TABLE sink_cursors ADD COLUMN acked_points INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sink_cursors ADD COLUMN acked_us INTEGER;
    """,
)
