"""The tiers' tables in the ledger: rollup rows, the hours and windows to roll, where retention
sealed each tier. Run by `collector.ledger.migrations`."""

from __future__ import annotations

SCHEMA: tuple[str, ...] = (
    # v3: rollup tiers (collector.tiers.rollup). One row per (tier, window, group), every write
    # stamped with the next value of the 'rollups' sequence. Ingest marks the UTC hours it
    # writes in rollup_pending, rolling a window marks its parent in rollup_dirty, retention
    # records in tier_state where it has sealed a tier. Existing events start out pending.
    """
    CREATE TABLE rollups (
        tier TEXT NOT NULL,
        window_start_us INTEGER NOT NULL,
        window_end_us INTEGER NOT NULL,
        group_key TEXT NOT NULL,
        model TEXT,
        provider TEXT,
        task_type TEXT,
        operation TEXT,
        status TEXT,
        error_type TEXT,
        tenant_id TEXT,
        agent_name TEXT,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        unpriced INTEGER NOT NULL,
        latency_count INTEGER NOT NULL,
        latency_sum REAL NOT NULL,
        quality_count INTEGER NOT NULL,
        quality_sum REAL NOT NULL,
        latency_min REAL,
        latency_max REAL,
        quality_min REAL,
        latency_p50 REAL,
        latency_p90 REAL,
        latency_p95 REAL,
        latency_p99 REAL,
        latency_sketch BLOB,
        seq INTEGER NOT NULL,
        PRIMARY KEY (tier, window_start_us, group_key)
    );
    CREATE UNIQUE INDEX rollups_seq ON rollups (tier, seq);
    CREATE TABLE sequences (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO sequences (name, value) VALUES ('rollups', 0);
    CREATE TABLE rollup_pending (
        hour INTEGER PRIMARY KEY
    );
    CREATE TABLE rollup_dirty (
        tier TEXT NOT NULL,
        window_start_us INTEGER NOT NULL,
        PRIMARY KEY (tier, window_start_us)
    ) WITHOUT ROWID;
    CREATE TABLE tier_state (
        tier TEXT PRIMARY KEY,
        sealed_before_us INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO rollup_pending (hour)
        SELECT (ts_us - (ts_us % 3600000000 + 3600000000) % 3600000000) / 3600000000
        FROM calls
        UNION
        SELECT (ts_us - (ts_us % 3600000000 + 3600000000) % 3600000000) / 3600000000
        FROM scores;
    """,
)
