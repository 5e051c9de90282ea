"""The persisted sent-log (ledger table ``report_log``): one row per report, period and channel.

Rows are opened once per period, all channels in one transaction, so a report that fell due is
queued exactly once however often the daemon restarts; a channel's row is marked sent after the
channel took it, and a failure pushes its ``due_us`` back by the retry interval.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from enum import StrEnum

from alerting.db import transaction

SCHEMA: tuple[str, ...] = (
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
)
"""The sent-log's table in the ledger, migrated by collector.ledger.migrations."""

Key = tuple[str, str]
"""(report kind, period label)."""


class Channel(StrEnum):
    """Where a report goes (``report_log.channel``)."""

    FILES = "files"
    EMAIL = "email"
    SLACK = "slack"


def open_once(
    db: sqlite3.Connection, kind: str, label: str, channels: Sequence[Channel], now_us: int
) -> bool:
    """Queue the channels of a report unless this period was ever queued; whether it was now.
    Commits on its own."""
    with transaction(db):
        seen = db.execute(
            "SELECT 1 FROM report_log WHERE kind = ? AND period = ? LIMIT 1", (kind, label)
        ).fetchone()
        if seen:
            return False
        db.executemany(
            "INSERT INTO report_log (kind, period, channel, created_us, due_us)"
            " VALUES (?, ?, ?, ?, ?)",
            [(kind, label, channel, now_us, now_us) for channel in channels],
        )
    return True


def due(db: sqlite3.Connection, now_us: int) -> dict[Key, list[Channel]]:
    """Channels not yet sent whose time has come, by report."""
    found: dict[Key, list[Channel]] = {}
    rows = db.execute(
        "SELECT kind, period, channel FROM report_log WHERE sent_us IS NULL AND due_us <= ?"
        " ORDER BY created_us, kind, period, channel",
        (now_us,),
    )
    for kind, label, channel in rows:
        found.setdefault((kind, label), []).append(Channel(channel))
    return found


def mark_sent(db: sqlite3.Connection, key: Key, channel: Channel, now_us: int) -> None:
    """The channel took the report at ``now_us``. Commits on its own."""
    with transaction(db):
        db.execute(
            "UPDATE report_log SET sent_us = ?, attempts = attempts + 1, last_error = NULL"
            " WHERE kind = ? AND period = ? AND channel = ?",
            (now_us, *key, channel),
        )


def mark_failed(
    db: sqlite3.Connection, key: Key, channel: Channel, error: str, retry_us: int
) -> None:
    """The channel did not take the report: tried again at ``retry_us``. Commits on its
    own."""
    with transaction(db):
        db.execute(
            "UPDATE report_log SET due_us = ?, attempts = attempts + 1, last_error = ?"
            " WHERE kind = ? AND period = ? AND channel = ?",
            (retry_us, error, *key, channel),
        )
