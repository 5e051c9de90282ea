"""The SQLite ledger: events, read positions and counters, committed together.

WAL mode lets readers (summary, reports, alerts) run while the daemon writes. The schema is
versioned with ``PRAGMA user_version`` and upgraded by the ordered `MIGRATIONS` on open.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector import files
from collector.errors import CollectorError, describe
from collector.parsing import CALL_COLUMNS, SCORE_COLUMNS
from collector.windows import HOUR_US

MIGRATIONS: tuple[str, ...] = (
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
    # v3: rollup tiers (collector.rollup). One row per (tier, window, group), every write
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
    # v4: alerting (alerting.engine, alerting.outbox). Alert state per rule and label set with
    # its timers, the last evaluation of each rule, the notification outbox (a row is sent
    # once: sent_us set in the transaction after the receiver acknowledged), the last send
    # per receiver group (group_interval) and silences.
    """
    CREATE TABLE alert_state (
        rule TEXT NOT NULL,
        labels TEXT NOT NULL,
        state TEXT NOT NULL,
        active_since_us INTEGER NOT NULL,
        fired_us INTEGER,
        last_active_us INTEGER NOT NULL,
        value REAL,
        threshold REAL,
        summary TEXT NOT NULL,
        PRIMARY KEY (rule, labels)
    );
    CREATE TABLE alert_rules (
        rule TEXT PRIMARY KEY,
        evaluated_us INTEGER NOT NULL,
        error TEXT
    );
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        receiver TEXT NOT NULL,
        group_key TEXT NOT NULL,
        alert_key TEXT NOT NULL,
        status TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        due_us INTEGER NOT NULL,
        sent_us INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX notifications_unsent ON notifications (due_us) WHERE sent_us IS NULL;
    CREATE INDEX notifications_alert ON notifications (alert_key, receiver, created_us);
    CREATE TABLE notify_groups (
        receiver TEXT NOT NULL,
        group_key TEXT NOT NULL,
        last_sent_us INTEGER NOT NULL,
        PRIMARY KEY (receiver, group_key)
    );
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_us INTEGER NOT NULL,
        ends_us INTEGER NOT NULL,
        comment TEXT NOT NULL,
        created_us INTEGER NOT NULL
    );
    """,
    # v5: what each sink feed has had acknowledged, for `llm-collector status`.
    """
    ALTER TABLE sink_cursors ADD COLUMN acked_points INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sink_cursors ADD COLUMN acked_us INTEGER;
    """,
    # v6: the sent-log of scheduled reports (reports.sentlog): one row per report kind,
    # period and channel (files, email, slack); sent_us is set once the channel took it,
    # a failure moves due_us on by the retry interval.
    """
    CREATE TABLE report_log (
        kind TEXT NOT NULL,
        period TEXT NOT NULL,
        channel TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        due_us INTEGER NOT NULL,
        sent_us INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        PRIMARY KEY (kind, period, channel)
    );
    """,
    # v7: a notification that a silence covered when it came due is marked silenced_us (when
    # the delivery found it so) instead of sent; it leaves the unsent index. sent_us is the
    # time the receiver acknowledged the message.
    """
    ALTER TABLE notifications ADD COLUMN silenced_us INTEGER;
    DROP INDEX notifications_unsent;
    CREATE INDEX notifications_unsent ON notifications (due_us)
        WHERE sent_us IS NULL AND silenced_us IS NULL;
    """,
    # v8: when the tailer last looked at each source's files: a file rotated away after that
    # may hold lines never read (collector.tailing). An upgraded ledger starts an hour before
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
_MARK_PENDING = "INSERT OR IGNORE INTO rollup_pending (hour) VALUES (?)"

_INSERT_CALL = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' * len(CALL_COLUMNS))})"
)
_INSERT_SCORE = (
    f"INSERT INTO scores ({', '.join(SCORE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SCORE_COLUMNS))})"
)


def delete_events(db: sqlite3.Connection, table: str, clause: str, params: Sequence[Any]) -> int:
    """Delete rows of ``calls`` or ``scores``, first noting the highest id given so far.

    SQLite gives the next row ``max(id) + 1``: once the newest row is deleted its id would be
    given again, and every cursor over ids (the InfluxDB outbox, the alert cache) would skip
    the new row. `Ledger.commit` continues above the noted id.
    """
    db.execute(
        "INSERT INTO sequences (name, value)"
        f" SELECT ?, max(id) FROM {table} WHERE true HAVING max(id) IS NOT NULL"
        " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        (f"{table}.id",),
    )
    return db.execute(f"DELETE FROM {table} WHERE {clause}", params).rowcount


def _insert(
    db: sqlite3.Connection,
    table: str,
    sql: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Insert rows with ids above any ever given (see `delete_events`)."""
    noted = db.execute("SELECT value FROM sequences WHERE name = ?", (f"{table}.id",)).fetchone()
    if noted is not None:
        top = db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        if top < noted[0]:
            marks = ", ".join("?" * (len(columns) + 1))
            db.execute(
                f"INSERT INTO {table} (id, {', '.join(columns)}) VALUES ({marks})",
                (noted[0] + 1, *rows[0]),
            )
            rows = rows[1:]
    db.executemany(sql, rows)


def _bind_null(value: None) -> None:
    return value


# sqlite3 sends every parameter that is not an int, float, str or bytearray through its adapter
# look-up, whose not-found fallback costs ~0.45 µs per None on CPython 3.11 (a call row has ~9
# NULLs). Registered for NoneType, the look-up hits at once (~0.2 µs); None still binds NULL.
sqlite3.register_adapter(type(None), _bind_null)


def _utc_hours(batch: Batch) -> set[int]:
    """The UTC hours a batch writes into, which the rollup must (re)roll."""
    return {row[0] // HOUR_US for row in batch.calls} | {row[0] // HOUR_US for row in batch.scores}


class LedgerError(CollectorError):
    """The ledger cannot be opened, upgraded or written; the message says what to do."""


class OffsetMoved(LedgerError):
    """A stream's offset in the ledger is not the one its batch was read from: another writer
    committed it. The batch is rolled back; the reader must continue from the stored offset."""


@dataclass
class Stream:
    """One tailed file (a device + inode whose first bytes hash to ``fp``) and its position."""

    id: int
    source: str
    path: str
    dev: int
    ino: int
    fp_len: int
    fp: bytes
    offset: int = 0
    state: str = "active"
    counts: dict[str, int] = field(
        default_factory=lambda: {"lines": 0, "events": 0, "quarantined": 0, "skipped": 0}
    )


@dataclass
class Batch:
    """What one read of one stream produced, committed atomically with its new offset."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    scores: list[tuple[Any, ...]] = field(default_factory=list)
    lines: int = 0
    quarantined: int = 0
    skipped: int = 0

    @property
    def events(self) -> int:
        return len(self.calls) + len(self.scores)


def _identity(stream: Stream) -> tuple[str, int, int, int, bytes, str]:
    """The columns that say which file a stream is and where it stands."""
    return (stream.path, stream.dev, stream.ino, stream.fp_len, stream.fp, stream.state)


def _now_us() -> int:
    return time.time_ns() // 1000


class Ledger:
    """A connection to the ledger file; one per thread."""

    def __init__(self, path: Path | str, *, readonly: bool = False, check: bool = False) -> None:
        """Open (and upgrade) the ledger; ``check`` first runs ``PRAGMA quick_check``, as a
        writer does at start-up, so that a damaged file is refused before anything is read."""
        self.path = Path(path)
        if readonly and not self.path.exists():
            raise LedgerError(f"no ledger at {self.path}; ingest something first")
        try:
            if not readonly:
                files.create(self.path)  # SQLite gives -wal and -shm the database's mode
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            if check:
                self._quick_check()
            self._migrate()
        except sqlite3.Error as error:
            raise LedgerError(f"cannot open {describe(error, self.path)}") from None
        except OSError as error:
            raise LedgerError(f"cannot open the ledger {self.path}: {describe(error)}") from None

    def _quick_check(self) -> None:
        problem = self.db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            problem = " ".join(problem.replace("*** in database main ***", "").split())
            raise LedgerError(
                f"the ledger {self.path} is damaged ({problem}); restore the last backup"
                " (llm-collector backup; see README, Backups) or move the file aside to start"
                " a new ledger"
            )

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise LedgerError(
                f"the ledger {self.path} has schema v{version}, newer than this llm-collector "
                f"knows (v{len(MIGRATIONS)}); upgrade llm-collector"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def streams(
        self,
        states: Sequence[str] = ("active", "rotated"),
        *,
        where: str = "true",
        params: Sequence[Any] = (),
    ) -> list[Stream]:
        """The streams in these states (and matching ``where``), oldest first."""
        marks = ", ".join("?" * len(states))
        rows = self.db.execute(
            "SELECT id, source, path, dev, ino, fp_len, fp, offset, state, lines, events,"
            f" quarantined, skipped FROM streams WHERE state IN ({marks}) AND {where} ORDER BY id",
            (*states, *params),
        )
        return [
            Stream(
                *row[:9],
                counts={
                    "lines": row[9],
                    "events": row[10],
                    "quarantined": row[11],
                    "skipped": row[12],
                },
            )
            for row in rows
        ]

    def stream_by_inode(self, dev: int, ino: int) -> Stream | None:
        """The newest stream of any state recorded for this device and inode."""
        found = self.streams(
            ("active", "rotated", "done"), where="dev = ? AND ino = ?", params=(dev, ino)
        )
        return found[-1] if found else None

    def add_stream(
        self, source: str, path: str, dev: int, ino: int, fp_len: int, fp: bytes
    ) -> Stream:
        """A new stream for this file, or the one being followed already (by another
        connection): one stream per file, so no second offset reads it again."""
        with self.transaction():
            followed = self.streams(where="dev = ? AND ino = ? AND fp = ?", params=(dev, ino, fp))
            if followed:
                return followed[0]
            cursor = self.db.execute(
                "INSERT INTO streams (source, path, dev, ino, fp_len, fp, updated_us)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (source, path, dev, ino, fp_len, fp, _now_us()),
            )
        return Stream(cursor.lastrowid or 0, source, path, dev, ino, fp_len, fp)

    def save_stream(self, stream: Stream) -> None:
        """Persist a stream's identity and state (not its offset: that moves only with events)."""
        with self.transaction():
            self._save_identity(stream)

    def _save_identity(self, stream: Stream) -> None:
        self.db.execute(
            "UPDATE streams SET path = ?, dev = ?, ino = ?, fp_len = ?, fp = ?, state = ?,"
            " updated_us = ? WHERE id = ?",
            (*_identity(stream), _now_us(), stream.id),
        )

    def commit(self, stream: Stream, batch: Batch, new_offset: int) -> None:
        """Store a batch's events and the stream's new offset in one transaction."""
        with self.transaction() as db:
            if batch.calls:
                _insert(db, "calls", _INSERT_CALL, CALL_COLUMNS, batch.calls)
            if batch.scores:
                _insert(db, "scores", _INSERT_SCORE, SCORE_COLUMNS, batch.scores)
            if batch.events:
                db.executemany(_MARK_PENDING, ((hour,) for hour in _utc_hours(batch)))
            moved = db.execute(
                "UPDATE streams SET offset = ?, lines = lines + ?, events = events + ?,"
                " quarantined = quarantined + ?, skipped = skipped + ?, path = ?, dev = ?,"
                " ino = ?, fp_len = ?, fp = ?, state = ?, updated_us = ?"
                " WHERE id = ? AND offset = ?",
                (
                    new_offset,
                    batch.lines,
                    batch.events,
                    batch.quarantined,
                    batch.skipped,
                    *_identity(stream),
                    _now_us(),
                    stream.id,
                    stream.offset,
                ),
            ).rowcount
            if moved != 1:
                raise OffsetMoved(
                    f"{stream.path}: the ledger's offset is no longer {stream.offset}; another"
                    " process wrote this stream. Its batch is dropped and reading resumes from"
                    " the stored offset"
                )
        stream.offset = new_offset
        for key in ("lines", "quarantined", "skipped"):
            stream.counts[key] += getattr(batch, key)
        stream.counts["events"] += batch.events

    def sources_seen(self) -> dict[str, int]:
        """When (UTC µs) each source's files were last looked at (`mark_sources_seen`)."""
        return dict(self.db.execute("SELECT source, looked_us FROM source_looks").fetchall())

    def mark_sources_seen(self, sources: Sequence[str], seen_us: int) -> None:
        """Note that these sources' files were looked at, at ``seen_us``."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO source_looks (source, looked_us) VALUES (?, ?) ON CONFLICT (source)"
                " DO UPDATE SET looked_us = max(looked_us, excluded.looked_us)",
                [(source, seen_us) for source in sources],
            )

    def reload(self, stream: Stream) -> None:
        """Take a stream's offset and counts from the ledger (after `OffsetMoved`)."""
        row = self.db.execute(
            "SELECT offset, lines, events, quarantined, skipped FROM streams WHERE id = ?",
            (stream.id,),
        ).fetchone()
        stream.offset = row[0]
        names = ("lines", "events", "quarantined", "skipped")
        stream.counts = dict(zip(names, row[1:], strict=True))

    def totals(self) -> dict[str, int]:
        """Lines, events, quarantined and skipped over every stream ever read."""
        row = self.db.execute(
            "SELECT coalesce(sum(lines), 0), coalesce(sum(events), 0),"
            " coalesce(sum(quarantined), 0), coalesce(sum(skipped), 0) FROM streams"
        ).fetchone()
        return dict(zip(("lines", "events", "quarantined", "skipped"), row, strict=True))
