"""The raw event tables, ``calls`` and ``scores``: their columns, how rows go in and out, and the
reads of whoever follows them by row id or time (the InfluxDB outbox, the alert cache, export,
retention).

Row ids only grow: every cursor over them (the outbox, the alert cache) relies on a new row
never taking the id of one it has passed, even after the newest rows were deleted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

from alerting.db import joins_transaction
from collector.ledger import sequences

Table = Literal["calls", "scores"]
TABLES: tuple[Table, ...] = ("calls", "scores")

CALL_COLUMNS = (
    "ts_us",
    "model",
    "provider",
    "task_type",
    "operation",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "price_source",
    "latency_ms",
    "quality_score",
    "tenant_id",
    "user_id",
    "session_id",
    "agent_name",
    "trace_id",
    "call_id",
    "extra",
    "prompt",
    "response",
    "stream_id",
)
"""A call row's values, in the order ingest builds them (`collector.ingest.parsing`)."""
SCORE_COLUMNS = (
    "ts_us",
    "name",
    "value",
    "model",
    "task_type",
    "scenario",
    "tenant_id",
    "trace_id",
    "extra",
    "stream_id",
)
"""A score row's values, in the order ingest builds them."""
COLUMNS: dict[Table, tuple[str, ...]] = {"calls": CALL_COLUMNS, "scores": SCORE_COLUMNS}


def table_name(table: Table) -> str:
    """``table`` for SQL, once checked to be one of `TABLES`: the only names this module puts
    in its SQL at run time (tests/test_architecture.py holds it to that)."""
    if table not in TABLES:
        raise ValueError(f"{table!r} is not an event table ({', '.join(TABLES)})")
    return table


_INSERT = {
    table: f"INSERT INTO {table_name(table)} ({', '.join(names)})"
    f" VALUES ({', '.join('?' * len(names))})"
    for table, names in COLUMNS.items()
}


def _id_sequence(table: Table) -> str:
    return f"{table}.id"


@joins_transaction
def insert(db: sqlite3.Connection, table: Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows (`COLUMNS` order) with ids above any ever given (see `delete`); joins the
    caller's transaction."""
    if not rows:
        return
    noted = sequences.value(db, _id_sequence(table))
    if noted is not None:
        top = db.execute(f"SELECT coalesce(max(id), 0) FROM {table_name(table)}").fetchone()[0]
        if top < noted:
            names = ", ".join(COLUMNS[table])
            marks = ", ".join("?" * (len(COLUMNS[table]) + 1))
            db.execute(
                f"INSERT INTO {table_name(table)} (id, {names}) VALUES ({marks})",
                (noted + 1, *rows[0]),
            )
            rows = rows[1:]
    db.executemany(_INSERT[table], rows)


@joins_transaction
def delete(db: sqlite3.Connection, table: Table, clause: str, params: Sequence[Any]) -> int:
    """Delete the rows matching ``clause``, first noting the highest id given so far; joins the
    caller's transaction.

    SQLite gives the next row ``max(id) + 1``: once the newest row is deleted its id would be
    given again, and every cursor over ids (the InfluxDB outbox, the alert cache) would skip
    the new row. `insert` continues above the noted id.
    """
    top = db.execute(f"SELECT max(id) FROM {table_name(table)}").fetchone()[0]
    if top is not None:
        sequences.raise_to(db, _id_sequence(table), top)
    return db.execute(f"DELETE FROM {table_name(table)} WHERE {clause}", params).rowcount


def rows_after(db: sqlite3.Connection, table: Table, after_id: int, limit: int) -> sqlite3.Cursor:
    """``(id, *COLUMNS)`` of up to ``limit`` rows with ids past ``after_id``, in id order."""
    return db.execute(
        f"SELECT id, {', '.join(COLUMNS[table])} FROM {table_name(table)}"
        " WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )


def last_id(db: sqlite3.Connection, table: Table) -> int:
    """The highest row id (0 when the table is empty)."""
    return int(db.execute(f"SELECT coalesce(max(id), 0) FROM {table_name(table)}").fetchone()[0])


def time_after(db: sqlite3.Connection, table: Table, after_id: int) -> int | None:
    """The time (UTC µs) of the first row past ``after_id``."""
    row = db.execute(
        f"SELECT ts_us FROM {table_name(table)} WHERE id > ? ORDER BY id LIMIT 1", (after_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def first_id_since(db: sqlite3.Connection, table: Table, since_us: int) -> int | None:
    """The lowest id of the rows from ``since_us`` on."""
    found = db.execute(
        f"SELECT min(id) FROM {table_name(table)} WHERE ts_us >= ?", (since_us,)
    ).fetchone()
    return found[0]


def oldest_us(db: sqlite3.Connection, since_us: int = -(2**63)) -> int | None:
    """The time of the oldest call or score at or after ``since_us``."""
    found = [
        db.execute(
            f"SELECT min(ts_us) FROM {table_name(table)} WHERE ts_us >= ?", (since_us,)
        ).fetchone()[0]
        for table in TABLES
    ]
    return min((ts for ts in found if ts is not None), default=None)


def between(
    db: sqlite3.Connection, table: Table, start_us: int, end_us: int
) -> tuple[list[str], sqlite3.Cursor]:
    """Column names (``id`` and `COLUMNS` but ``stream_id``) and the rows of ``[start, end)``
    in time order, for an export to read lazily."""
    names = ["id", *(c for c in COLUMNS[table] if c != "stream_id")]
    cursor = db.execute(
        f"SELECT {', '.join(names)} FROM {table_name(table)}"
        " WHERE ts_us >= ? AND ts_us < ? ORDER BY ts_us, id",
        (start_us, end_us),
    )
    return names, cursor
