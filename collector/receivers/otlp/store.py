"""The spans the OTLP receiver accepted (``otlp_spans``): a request's keys are claimed in the
transaction that stores its events, so a span an exporter sends again (its retry of a request
whose answer it never got) is counted once. A span is known by its time, trace id and span id
(a retry repeats all three); the time comes first, so that the keys of recent spans are written
next to each other. Keys are kept for as long as a retry can come (the raw tier's retention),
then pruned."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from alerting.db import joins_transaction, transaction

SpanKey = tuple[int, bytes, bytes]
"""(the span's start in UTC µs, trace_id, span_id): the ids are 16 and 8 bytes."""
CHUNK = 500
"""Keys per INSERT (four parameters each, far below SQLite's limit of 32,766)."""


@joins_transaction
def claim(db: sqlite3.Connection, keys: Sequence[SpanKey], received_us: int) -> set[SpanKey]:
    """Record the keys not recorded before and return them (a key listed twice is new once);
    joins the caller's transaction, the one that stores their spans' events."""
    new: set[SpanKey] = set()
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        values = ", ".join(["(?, ?, ?, ?)"] * len(part))
        params = [value for key in part for value in (*key, received_us)]
        rows = db.execute(
            "INSERT OR IGNORE INTO otlp_spans (ts_us, trace_id, span_id, received_us)"
            f" VALUES {values} RETURNING ts_us, trace_id, span_id",
            params,
        ).fetchall()
        new.update(rows)
    return new


def prune(db: sqlite3.Connection, before_us: int) -> int:
    """Forget the keys of spans both from and received before ``before_us`` (a span that came
    late, from long before, is kept until it came long enough ago); how many. Commits on its
    own."""
    with transaction(db):
        return db.execute(
            "DELETE FROM otlp_spans WHERE ts_us < ?1 AND received_us < ?1", (before_us,)
        ).rowcount
