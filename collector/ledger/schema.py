"""The ledger's own tables: the files followed, the events read from them (and, with the
tiers, the id sequences).

Each owner keeps its tables' migration scripts as ``SCHEMA``; `collector.ledger.migrations`
runs them all in the order they were added.
"""

from __future__ import annotations

SCHEMA: tuple[str, ...] = (
    # v1: the files followed (streams), the calls and score events read from them.
    """
    CREATE TABLE streams (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        fp_len INTEGER NOT NULL,
        fp BLOB NOT NULL,
        offset INTEGER NOT NULL DEFAULT 0,
        lines INTEGER NOT NULL DEFAULT 0,
        events INTEGER NOT NULL DEFAULT 0,
        quarantined INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'active',
        updated_us INTEGER NOT NULL
    );
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        ts_us INTEGER NOT NULL,
        model TEXT NOT NULL,
        provider TEXT,
        task_type TEXT,
        operation TEXT,
        status TEXT NOT NULL,
        error_type TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        total_tokens INTEGER,
        cache_read_tokens INTEGER,
        cache_write_tokens INTEGER,
        reasoning_tokens INTEGER,
        cost_usd REAL,
        price_source INTEGER,
        latency_ms REAL,
        quality_score REAL,
        tenant_id TEXT,
        user_id TEXT,
        session_id TEXT,
        agent_name TEXT,
        trace_id TEXT,
        call_id TEXT,
        extra TEXT,
        prompt TEXT,
        response TEXT,
        stream_id INTEGER NOT NULL
    );
    CREATE INDEX calls_ts ON calls (ts_us);
    CREATE TABLE scores (
        id INTEGER PRIMARY KEY,
        ts_us INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        model TEXT,
        task_type TEXT,
        scenario TEXT,
        tenant_id TEXT,
        trace_id TEXT,
        extra TEXT,
        stream_id INTEGER NOT NULL
    );
    CREATE INDEX scores_ts ON scores (ts_us);
    """,
    # v8: when the tailer last looked at each source's files: a file rotated away after that
    # may hold lines never read (collector.ingest.tailing). An upgraded ledger starts an hour before
    # its last activity, so files rotated away shortly before the upgrade are looked at too.
    """
    CREATE TABLE source_looks (
        source TEXT PRIMARY KEY,
        looked_us INTEGER NOT NULL
    );
    INSERT INTO source_looks (source, looked_us)
        SELECT source, max(updated_us) - 3600000000 FROM streams GROUP BY source;
    """,
)
