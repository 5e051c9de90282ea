"""The SQLite ledger: events, read positions and counters, committed together.

WAL mode lets readers (summary, reports, alerts) run while the daemon writes. The schema is
versioned with ``PRAGMA user_version`` and upgraded on open by the ordered migrations of every
table's owner (`collector.ledger.migrations`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain
from pathlib import Path
from typing import Any

from alerting.db import joins_transaction, transaction
from collector import files
from collector.errors import describe
from collector.ledger import events
from collector.ledger.migrations import MIGRATIONS
from schemas.errors import CollectorError


def _bind_null(value: None) -> None:
    return value


# sqlite3 sends every parameter that is not an int, float, str or bytearray through its adapter
# look-up, whose not-found fallback costs ~0.45 µs per None on CPython 3.11 (a call row has ~9
# NULLs). Registered for NoneType, the look-up hits at once (~0.2 µs); None still binds NULL.
sqlite3.register_adapter(type(None), _bind_null)


class LedgerError(CollectorError):
    """The ledger cannot be opened, upgraded or written; the message says what to do."""


class OffsetMoved(LedgerError):
    """A stream's offset in the ledger is not the one its batch was read from: another writer
    committed it. The batch is rolled back; the reader must continue from the stored offset."""


class StreamState(StrEnum):
    """Where a followed file stands; ``streams.state`` stores the value."""

    ACTIVE = "active"
    """Read at the path it is found under."""
    ROTATED = "rotated"
    """Renamed away by rotation: read to its end, then done."""
    DONE = "done"
    """Read to its end (or gone); kept to recognise the file if it shows up again."""
    RECEIVER = "receiver"
    """Not a file: the events a receiver took over the network (``source`` names it, e.g.
    ``otlp``). Never opened or read; its counts are the receiver's."""


FOLLOWED = (StreamState.ACTIVE, StreamState.ROTATED)
"""The states of the files still read."""

MarkWritten = Callable[[sqlite3.Connection, Iterable[int]], None]
"""Called inside a batch's commit transaction with the times (UTC µs) of its events: the tiers
mark the hours they must roll (`collector.tiers.marks.mark_written`, passed by the wiring), so
no event is ever committed unmarked."""


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
    state: StreamState = StreamState.ACTIVE
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


def _stream(row: tuple[Any, ...]) -> Stream:
    """A stream from its ``streams`` columns: id .. offset, state, then the four counts."""
    stream_id, source, path, dev, ino, fp_len, fp, offset, state, *counts = row
    return Stream(
        stream_id,
        source,
        path,
        dev,
        ino,
        fp_len,
        fp,
        offset,
        StreamState(state),
        dict(zip(("lines", "events", "quarantined", "skipped"), counts, strict=True)),
    )


def _identity(stream: Stream) -> tuple[str, int, int, int, bytes, str]:
    """The columns that say which file a stream is and where it stands."""
    return (stream.path, stream.dev, stream.ino, stream.fp_len, stream.fp, stream.state)


def _now_us() -> int:
    return time.time_ns() // 1000


class Ledger:
    """A connection to the ledger file; one per thread. Its methods that write commit on their
    own (and refuse to run inside a transaction)."""

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
                " (llm-collector backup; see docs/operations.md#backups) or move the file aside"
                " to start a new ledger"
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

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; refused inside a
        transaction (`alerting.db.transaction`)."""
        return transaction(self.db)

    def streams(
        self,
        states: Sequence[StreamState] = FOLLOWED,
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
        return [_stream(row) for row in rows]

    def stream_by_inode(self, dev: int, ino: int) -> Stream | None:
        """The newest stream of any state recorded for this device and inode."""
        found = self.streams(tuple(StreamState), where="dev = ? AND ino = ?", params=(dev, ino))
        return found[-1] if found else None

    def add_stream(
        self, source: str, path: str, dev: int, ino: int, fp_len: int, fp: bytes
    ) -> Stream:
        """A new stream for this file, or the one being followed already (by another
        connection): one stream per file, so no second offset reads it again. Commits on its
        own."""
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
        """Persist a stream's identity and state (not its offset: that moves only with
        events). Commits on its own."""
        with self.transaction():
            self._save_identity(stream)

    def _save_identity(self, stream: Stream) -> None:
        self.db.execute(
            "UPDATE streams SET path = ?, dev = ?, ino = ?, fp_len = ?, fp = ?, state = ?,"
            " updated_us = ? WHERE id = ?",
            (*_identity(stream), _now_us(), stream.id),
        )

    def commit(
        self, stream: Stream, batch: Batch, new_offset: int, mark_written: MarkWritten
    ) -> None:
        """Store a batch's events and the stream's new offset in one transaction of its own,
        in which ``mark_written`` marks the hours the tiers must roll again."""
        with self.transaction() as db:
            if batch.events:
                events.insert(db, "calls", batch.calls)
                events.insert(db, "scores", batch.scores)
                mark_written(db, (row[0] for row in chain(batch.calls, batch.scores)))
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

    def receiver_stream(self, source: str) -> Stream:
        """The stream of the receiver ``source`` (created the first time): the rows of the
        events it takes carry its id, and it counts them (`count_received`). Commits on its
        own."""
        with self.transaction():
            found = self.streams((StreamState.RECEIVER,), where="source = ?", params=(source,))
            if found:
                return found[0]
            cursor = self.db.execute(
                "INSERT INTO streams (source, path, dev, ino, fp_len, fp, state, updated_us)"
                " VALUES (?, ?, 0, 0, 0, ?, ?, ?)",
                (source, source, b"", StreamState.RECEIVER, _now_us()),
            )
        return Stream(
            cursor.lastrowid or 0, source, source, 0, 0, 0, b"", state=StreamState.RECEIVER
        )

    def sources_seen(self) -> dict[str, int]:
        """When (UTC µs) each source's files were last looked at (`mark_sources_seen`)."""
        return dict(self.db.execute("SELECT source, looked_us FROM source_looks").fetchall())

    def mark_sources_seen(self, sources: Sequence[str], seen_us: int) -> None:
        """Note that these sources' files were looked at, at ``seen_us``. Commits on its own."""
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


@joins_transaction
def count_received(db: sqlite3.Connection, stream: Stream, batch: Batch) -> None:
    """Add what a receiver took in one request to its stream's counts (``lines``: the spans
    or records counted, whatever became of them); joins the caller's transaction, the one
    that stores the batch's events."""
    db.execute(
        "UPDATE streams SET lines = lines + ?, events = events + ?,"
        " quarantined = quarantined + ?, skipped = skipped + ?, updated_us = ?"
        " WHERE id = ? AND state = ?",
        (
            batch.lines,
            batch.events,
            batch.quarantined,
            batch.skipped,
            _now_us(),
            stream.id,
            StreamState.RECEIVER,
        ),
    )
