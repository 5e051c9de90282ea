"""The spans the OTLP receiver accepted (``otlp_spans``, by trace and span id): a request's keys
are claimed in the transaction that stores its events, so a span an exporter sends again (its
retry of a request whose answer it never got) is counted once. Keys are kept for as long as a
retry can come (the raw tier's retention), then pruned."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from alerting.db import joins_transaction, transaction

SpanKey = tuple[bytes, bytes]
"""(trace_id, span_id): 16 and 8 bytes."""
CHUNK = 500
"""Keys per INSERT (three parameters each, far below SQLite's limit of 32,766)."""


@joins_transaction
def claim(db: sqlite3.Connection, keys: Sequence[SpanKey], received_us: int) -> set[SpanKey]:
    """Record the keys not recorded before and return them (a key listed twice is new once);
    joins the caller's transaction, the one that stores their spans' events."""
    new: set[SpanKey] = set()
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        values = ", ".join(["(?, ?, ?)"] * len(part))
        params = [value for trace_id, span_id in part for value in (trace_id, span_id, received_us)]
        rows = db.execute(
            "INSERT OR IGNORE INTO otlp_spans (trace_id, span_id, received_us)"
            f" VALUES {values} RETURNING trace_id, span_id",
            params,
        ).fetchall()
        new.update(rows)
    return new


def prune(db: sqlite3.Connection, before_us: int) -> int:
    """Forget the keys received before ``before_us``; how many. Commits on its own."""
    with transaction(db):
        return db.execute("DELETE FROM otlp_spans WHERE received_us < ?", (before_us,)).rowcount
