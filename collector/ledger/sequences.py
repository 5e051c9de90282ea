"""Named counters in the ledger (``sequences``) that only grow: the tiers' write stamps
('rollups') and the highest row id each event table ever gave ('calls.id', 'scores.id')."""

from __future__ import annotations

import sqlite3

from alerting.db import joins_transaction


def value(db: sqlite3.Connection, name: str) -> int | None:
    """The counter's value; None when it was never set."""
    row = db.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


@joins_transaction
def raise_to(db: sqlite3.Connection, name: str, at_least: int) -> None:
    """Set the counter to ``at_least`` unless it is higher already; joins the caller's
    transaction."""
    db.execute(
        "INSERT INTO sequences (name, value) VALUES (?, ?) ON CONFLICT (name)"
        " DO UPDATE SET value = max(value, excluded.value)",
        (name, at_least),
    )


@joins_transaction
def take(db: sqlite3.Connection, name: str, count: int) -> range:
    """``count`` fresh values of an existing counter; joins the caller's transaction, the one
    that uses them, so that a later commit always gets higher ones."""
    db.execute("UPDATE sequences SET value = value + ? WHERE name = ?", (count, name))
    last = value(db, name)
    assert last is not None, f"no sequence {name!r} in the ledger"
    return range(last - count + 1, last + 1)
