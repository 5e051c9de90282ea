"""The durable outbox to InfluxDB: the ledger's own tables, read past a per-feed cursor.

An event is enqueued by the very transaction that stores it (its row is the queue entry), so
nothing is lost while InfluxDB is down and nothing is written twice to the ledger. A cursor
moves only after the server acknowledged the batch; a batch the server refuses for good is
recorded as a dead letter and the queue goes on.
"""

from __future__ import annotations

import base64
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from collector.ledger import events
from collector.ledger.connection import Ledger
from collector.retrying import Backoff
from collector.sinks.errors import Refused, RetryLater
from collector.sinks.influx.lineprotocol import LineEncoder
from collector.tiers import store as tiers

if TYPE_CHECKING:
    from collector.sinks.influx.writer import InfluxWriter

log = logging.getLogger(__name__)


class Skipped(Enum):
    """Why a row gives no point."""

    EXPIRED = "expired"
    """Older than the raw retention: the bucket would refuse it."""
    OUT_OF_RANGE = "out_of_range"
    """Its time is outside ``ingest.timestamps``: the encoder refuses it."""


Rows = list[tuple[int, str | Skipped]]
"""[(position, line or why it is skipped)] in position order."""


class Feed(ABC):
    """One ledger table as a queue of points for one bucket, ordered by a position column."""

    def __init__(self, name: str, bucket: str) -> None:
        self.name = name
        self.bucket = bucket

    @abstractmethod
    def fetch(self, ledger: Ledger, after: int, limit: int) -> Rows:
        """Up to ``limit`` rows past position ``after``, encoded."""

    @abstractmethod
    def last_position(self, ledger: Ledger) -> int:
        """Where a new cursor starts: the end of the queue."""

    @abstractmethod
    def pending(self, ledger: Ledger, after: int) -> int:
        """Rows past ``after``."""

    @abstractmethod
    def first_time(self, ledger: Ledger, after: int) -> int | None:
        """Time (UTC µs) of the first row past ``after``, for the oldest-pending age."""

    @abstractmethod
    def position_at(self, ledger: Ledger, since_us: int) -> int | None:
        """The first position holding data from ``since_us`` on (for a backfill)."""


@dataclass
class OutboxStats:
    sent_points: int = 0
    sent_batches: int = 0
    failed_attempts: int = 0
    dead_letters: int = 0
    skipped_expired: int = 0
    skipped_out_of_range: int = 0
    last_error: str | None = None
    retry_at: float = 0.0
    capped_retry_after: float | None = None
    """The server's Retry-After when it asked for longer than the backoff maximum."""
    history: list[tuple[float, int]] = field(default_factory=list)

    def rate(self, now: float, window: float = 60.0) -> float:
        """Points per second acknowledged over the last ``window`` seconds."""
        recent = [(t, n) for t, n in self.history if now - t <= window]
        self.history = recent
        return sum(n for _, n in recent) / window


class Outbox:
    """Sends pending points feed by feed, in order, in batches; call `drain_once` repeatedly.
    Each of its writes (cursors, dead letters) commits on its own."""

    def __init__(
        self,
        ledger: Ledger,
        writer: InfluxWriter,
        feeds: list[Feed],
        *,
        batch_size: int,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.writer = writer
        self.feeds = feeds
        self.batch_size = batch_size
        self.clock = clock
        self.backoff = Backoff(cap=max_backoff)
        self.stats = OutboxStats()
        for feed in feeds:
            self._ensure_cursor(feed)

    def _ensure_cursor(self, feed: Feed) -> None:
        """A new feed starts at the ledger's end: history goes out only through a backfill."""
        with self.ledger.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO sink_cursors (name, position) VALUES (?, ?)",
                (feed.name, feed.last_position(self.ledger)),
            )

    def cursor(self, feed: Feed) -> int:
        row = self.ledger.db.execute(
            "SELECT position FROM sink_cursors WHERE name = ?", (feed.name,)
        ).fetchone()
        return row[0]

    def pending(self) -> dict[str, int]:
        """Rows past each feed's cursor (upper bound: expired and out-of-range rows go unsent)."""
        return {f.name: f.pending(self.ledger, self.cursor(f)) for f in self.feeds}

    def oldest_pending_us(self) -> int | None:
        """Event time of the oldest row not yet acknowledged, over all feeds."""
        times = [feed.first_time(self.ledger, self.cursor(feed)) for feed in self.feeds]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def drain_once(self) -> int:
        """Send at most one batch per feed; 0 when nothing was sent (idle or waiting)."""
        now = self.clock()
        if now < self.stats.retry_at:
            return 0
        sent = 0
        for feed in self.feeds:
            try:
                sent += self._send_batch(feed)
            except RetryLater as error:
                self._wait_after(error, now)
                break
        return sent

    def _wait_after(self, error: RetryLater, now: float) -> None:
        delay = self.backoff.next(error.after)
        capped = error.after is not None and error.after > delay
        self.stats.retry_at = now + delay
        self.stats.capped_retry_after = error.after if capped else None
        self.stats.failed_attempts += 1
        self.stats.last_error = str(error)
        cut = f" (Retry-After {error.after:.0f} s cut to influx.max_backoff)" if capped else ""
        log.warning("%s; retrying in %.1f s%s", error, delay, cut)

    def _send_batch(self, feed: Feed) -> int:
        start = self.cursor(feed)
        rows = feed.fetch(self.ledger, start, self.batch_size)
        if not rows:
            return 0
        last = rows[-1][0]
        lines = [line for _, line in rows if isinstance(line, str)]
        skipped = Counter(line for _, line in rows if isinstance(line, Skipped))
        self.stats.skipped_expired += skipped[Skipped.EXPIRED]
        self.stats.skipped_out_of_range += skipped[Skipped.OUT_OF_RANGE]
        if lines:
            try:
                self.writer.write(feed.bucket, lines)
            except Refused as error:
                self._dead_letter(feed, start, rows[0][0], last, error)
                return 0
        self._advance(feed, start, last, len(lines))
        self.backoff.reset()
        self.stats.retry_at = 0.0
        self.stats.capped_retry_after = None
        self.stats.last_error = None
        self.stats.sent_points += len(lines)
        self.stats.sent_batches += 1
        self.stats.history.append((self.clock(), len(lines)))
        return len(lines)

    def _advance(self, feed: Feed, start: int, position: int, points: int) -> None:
        """Move the cursor from ``start``, where the batch began, to ``position``; a cursor
        moved meanwhile (a backfill rewound it) stays where it was put."""
        with self.ledger.transaction() as db:
            db.execute(
                "UPDATE sink_cursors SET acked_points = acked_points + ?, acked_us = ?"
                " WHERE name = ?",
                (points, time.time_ns() // 1000, feed.name),
            )
            moved = db.execute(
                "UPDATE sink_cursors SET position = ? WHERE name = ? AND position = ?",
                (position, feed.name, start),
            ).rowcount
        if not moved:
            log.info("%s was rewound while a batch was in flight; sending from there", feed.name)

    def acknowledged(self) -> tuple[int, int | None]:
        """Points the server has acknowledged over the ledger's life, and when it last did."""
        names = [feed.name for feed in self.feeds]
        marks = ", ".join("?" * len(names))
        row = self.ledger.db.execute(
            f"SELECT coalesce(sum(acked_points), 0), max(acked_us) FROM sink_cursors"
            f" WHERE name IN ({marks})",
            names,
        ).fetchone()
        return row[0], row[1]

    def _dead_letter(self, feed: Feed, start: int, first: int, last: int, error: Refused) -> None:
        """Set rows ``first..last`` aside and move the cursor past them from ``start`` (positions
        may have gaps); a cursor a backfill moved meanwhile stays where it was put."""
        log.error(
            "InfluxDB refused %s rows %d..%d for good (%s); set aside as a dead letter",
            feed.name,
            first,
            last,
            error,
        )
        with self.ledger.transaction() as db:
            db.execute(
                "INSERT INTO dead_letters (cursor, first_position, last_position, status, message,"
                " created_us) VALUES (?, ?, ?, ?, ?, ?)",
                (feed.name, first, last, error.status, str(error), time.time_ns() // 1000),
            )
            db.execute(
                "UPDATE sink_cursors SET position = ? WHERE name = ? AND position = ?",
                (last, feed.name, start),
            )
        self.stats.dead_letters += 1

    def retry_dead_letters(self) -> tuple[int, int]:
        """Send every dead letter again; (sent, still refused)."""
        feeds = {f.name: f for f in self.feeds}
        letters = self.ledger.db.execute(
            "SELECT id, cursor, first_position, last_position FROM dead_letters ORDER BY id"
        ).fetchall()
        sent = refused = 0
        for letter_id, name, first, last in letters:
            feed = feeds.get(name)
            if feed is None:
                continue
            rows = feed.fetch(self.ledger, first - 1, last - first + 1)
            lines = [line for position, line in rows if isinstance(line, str) and position <= last]
            try:
                if lines:
                    self.writer.write(feed.bucket, lines)
            except Refused as error:
                refused += 1
                with self.ledger.transaction() as db:
                    db.execute(
                        "UPDATE dead_letters SET message = ?, status = ?, retried_us = ?"
                        " WHERE id = ?",
                        (str(error), error.status, time.time_ns() // 1000, letter_id),
                    )
                continue
            sent += 1
            with self.ledger.transaction() as db:
                db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
        return sent, refused

    def rewind(self, feed: Feed, position: int) -> None:
        """Send everything after ``position`` again (a backfill); never moves a cursor forward."""
        with self.ledger.transaction() as db:
            db.execute(
                "UPDATE sink_cursors SET position = min(position, ?) WHERE name = ?",
                (position, feed.name),
            )


def pending_where_followed(ledger: Ledger, feeds: Sequence[Feed]) -> dict[str, int]:
    """Rows past the cursor of each feed that has one; unlike `Outbox.pending`, a reader
    never creates a cursor (a feed not started yet has nothing pending)."""
    cursors = dict(ledger.db.execute("SELECT name, position FROM sink_cursors").fetchall())
    return {f.name: f.pending(ledger, cursors[f.name]) for f in feeds if f.name in cursors}


def dead_letter_count(ledger: Ledger) -> int:
    """How many batches the server refused for good and wait to be retried."""
    return int(ledger.db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])


def dead_letters(ledger: Ledger) -> list[dict[str, Any]]:
    columns = (
        "id",
        "cursor",
        "first_position",
        "last_position",
        "status",
        "message",
        "created_us",
        "retried_us",
    )
    rows = ledger.db.execute(f"SELECT {', '.join(columns)} FROM dead_letters ORDER BY id")
    return [dict(zip(columns, row, strict=True)) for row in rows]


class EventFeed(Feed):
    """``llm_call`` or ``llm_score`` points from the ``calls`` or ``scores`` table, by row id.

    Rows older than the raw retention are skipped (InfluxDB refuses points past a bucket's
    retention); the tiers still carry them.
    """

    def __init__(
        self,
        table: events.Table,
        bucket: str,
        encode: Callable[[int, Sequence[Any]], str | None],
        oldest_us: Callable[[], int | None],
    ) -> None:
        super().__init__(f"influx:{table}", bucket)
        self.table: events.Table = table
        self.encode = encode
        self.oldest_us = oldest_us

    def fetch(self, ledger: Ledger, after: int, limit: int) -> Rows:
        cutoff = self.oldest_us()
        rows = events.rows_after(ledger.db, self.table, after, limit)
        return [(r[0], self._line(r[0], r[1:], cutoff)) for r in rows]

    def _line(self, row_id: int, row: Sequence[Any], cutoff: int | None) -> str | Skipped:
        if cutoff is not None and row[0] < cutoff:
            return Skipped.EXPIRED
        return _or_out_of_range(self.encode(row_id, row))

    def last_position(self, ledger: Ledger) -> int:
        return events.last_id(ledger.db, self.table)

    def pending(self, ledger: Ledger, after: int) -> int:
        return max(0, self.last_position(ledger) - after)

    def first_time(self, ledger: Ledger, after: int) -> int | None:
        return events.time_after(ledger.db, self.table, after)

    def position_at(self, ledger: Ledger, since_us: int) -> int | None:
        return events.first_id_since(ledger.db, self.table, since_us)


class RollupFeed(Feed):
    """``llm_rollup`` points of one tier, in the tier's bucket, by the rows' ``seq``.

    A re-rolled window gets a new ``seq`` and goes out again; same tags and window start, so
    InfluxDB overwrites the earlier point.
    """

    def __init__(self, tier: str, bucket: str, encoder: LineEncoder) -> None:
        super().__init__(f"influx:{tier}", bucket)
        self.tier = tier
        self.encoder = encoder

    def fetch(self, ledger: Ledger, after: int, limit: int) -> Rows:
        rows = tiers.tier_rows_after(ledger.db, self.tier, after, limit)
        return [(row["seq"], self._line(row)) for row in rows]

    def _line(self, row: dict[str, Any]) -> str | Skipped:
        metrics = dict(row["metrics"])
        if row["sketch"] is not None:
            metrics["latency_sketch"] = base64.b64encode(row["sketch"]).decode()
        return _or_out_of_range(
            self.encoder.rollup(self.tier, row["window_start_us"], row["dimensions"], metrics)
        )

    def last_position(self, ledger: Ledger) -> int:
        return tiers.last_seq(ledger.db, self.tier)

    def pending(self, ledger: Ledger, after: int) -> int:
        return tiers.count_after(ledger.db, self.tier, after)

    def first_time(self, ledger: Ledger, after: int) -> int | None:
        return tiers.first_window_after(ledger.db, self.tier, after)

    def position_at(self, ledger: Ledger, since_us: int) -> int | None:
        return tiers.first_seq_since(ledger.db, self.tier, since_us)


def _or_out_of_range(line: str | None) -> str | Skipped:
    """The encoder's point, or why there is none (it refuses only times out of range)."""
    return Skipped.OUT_OF_RANGE if line is None else line


def raw_feeds(
    bucket: str,
    encoder: LineEncoder,
    retention: timedelta | None,
    now_us: Callable[[], int] = lambda: time.time_ns() // 1000,
) -> list[Feed]:
    """The ``llm_call`` and ``llm_score`` feeds into the raw bucket."""

    def oldest_us() -> int | None:
        """The raw retention's cutoff; None (no cutoff, not 1970) when raw is kept forever."""
        return None if retention is None else now_us() - int(retention.total_seconds() * 1e6)

    encoders = {"calls": encoder.call, "scores": encoder.score}
    return [EventFeed(table, bucket, encoders[table], oldest_us) for table in events.TABLES]


def rollup_feeds(buckets: Callable[[str], str], encoder: LineEncoder) -> list[Feed]:
    """One ``llm_rollup`` feed per rollup tier."""
    return [RollupFeed(tier, buckets(tier), encoder) for tier in ("1h", "1d", "1mo")]
