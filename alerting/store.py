"""The alerting tables in the ledger: alert state, rule evaluations, notifications, notify
groups and silences. Their migration scripts are run by ``collector.ledger.migrations``; every
query on them is here, and other packages call these functions.

The evaluation pass's writes (alert state, evaluations, queued notices) join the caller's
transaction (`joins_transaction`: outside one they raise), so a whole pass commits at once; the
delivery's marks and the silence commands commit on their own (`transaction`: inside one they
raise).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from alerting.alert import Alert, AlertPayload
from alerting.db import joins_transaction, transaction
from alerting.lifecycle import AlertState, Notice, Timers

SCHEMA: tuple[str, ...] = (
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
    # v7: a notification that a silence covered when it came due is marked silenced_us (when
    # the delivery found it so) instead of sent; it leaves the unsent index. sent_us is the
    # time the receiver acknowledged the message.
    """
    ALTER TABLE notifications ADD COLUMN silenced_us INTEGER;
    DROP INDEX notifications_unsent;
    CREATE INDEX notifications_unsent ON notifications (due_us)
        WHERE sent_us IS NULL AND silenced_us IS NULL;
    """,
)


# Alert state and rule evaluations

_ALERT_COLUMNS = (
    "rule, labels, state, active_since_us, last_active_us, fired_us, value, threshold, summary"
)


def _alert(row: Sequence[Any]) -> Alert:
    rule, labels, state, active_since_us, last_active_us, fired_us, value, threshold, summary = row
    timers = Timers(AlertState(state), active_since_us, last_active_us, fired_us)
    return Alert(rule, orjson.loads(labels), timers, value, threshold, summary)


def load_alerts(db: sqlite3.Connection) -> dict[str, dict[str, Alert]]:
    """Stored pending and firing alerts, by rule name and label key."""
    alerts: dict[str, dict[str, Alert]] = {}
    for row in db.execute(f"SELECT {_ALERT_COLUMNS} FROM alert_state ORDER BY rule, labels"):
        alert = _alert(row)
        alerts.setdefault(alert.rule, {})[alert.key] = alert
    return alerts


def list_alerts(db: sqlite3.Connection) -> list[Alert]:
    """Every pending and firing alert, by state (firing first), rule and labels."""
    rows = db.execute(f"SELECT {_ALERT_COLUMNS} FROM alert_state ORDER BY state, rule, labels")
    return [_alert(row) for row in rows]


def firing_alerts(db: sqlite3.Connection) -> list[Alert]:
    """The alerts firing now, the longest-firing first."""
    rows = db.execute(
        f"SELECT {_ALERT_COLUMNS} FROM alert_state WHERE state = ? ORDER BY fired_us, rule, labels",
        (AlertState.FIRING,),
    )
    return [_alert(row) for row in rows]


@joins_transaction
def save_alert(db: sqlite3.Connection, alert: Alert) -> None:
    """Store ``alert`` (replacing its previous state); joins the caller's transaction."""
    timers = alert.timers
    db.execute(
        f"INSERT OR REPLACE INTO alert_state ({_ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert.rule,
            alert.key,
            timers.state,
            timers.active_since_us,
            timers.last_active_us,
            timers.fired_us,
            alert.value,
            alert.threshold,
            alert.summary,
        ),
    )


@joins_transaction
def delete_alert(db: sqlite3.Connection, alert: Alert) -> None:
    """Forget ``alert``: it is inactive; joins the caller's transaction."""
    db.execute("DELETE FROM alert_state WHERE rule = ? AND labels = ?", (alert.rule, alert.key))


@joins_transaction
def record_evaluation(db: sqlite3.Connection, rule: str, now_us: int, error: str | None) -> None:
    """Note that ``rule`` was evaluated at ``now_us``, and the error that stopped it if any;
    joins the caller's transaction."""
    db.execute(
        "INSERT INTO alert_rules (rule, evaluated_us, error) VALUES (?, ?, ?)"
        " ON CONFLICT (rule) DO UPDATE SET evaluated_us = excluded.evaluated_us,"
        " error = excluded.error",
        (rule, now_us, error),
    )


def rule_errors(db: sqlite3.Connection) -> dict[str, str]:
    """The error of each rule whose last evaluation failed, by rule name."""
    rows = db.execute("SELECT rule, error FROM alert_rules WHERE error IS NOT NULL ORDER BY rule")
    return dict(rows.fetchall())


# The notification outbox and its log


@dataclass(frozen=True)
class Queued:
    """A notice waiting in the outbox."""

    id: int
    receiver: str
    group_key: str
    alert_key: str
    payload: AlertPayload


@dataclass(frozen=True)
class LastNotice:
    """The latest notice a receiver was to be told about an alert."""

    status: Notice
    created_us: int


@dataclass(frozen=True)
class Logged:
    """A notice with its outcome so far (``llm-collector notify log``)."""

    id: int
    receiver: str
    status: Notice
    payload: AlertPayload
    due_us: int
    sent_us: int | None
    """When the receiver acknowledged it."""
    silenced_us: int | None
    """When a silence stopped it at send time."""
    attempts: int
    last_error: str | None


def _payload(text: str) -> AlertPayload:
    payload = cast("AlertPayload", orjson.loads(text))
    payload["status"] = Notice(payload["status"])
    return payload


@joins_transaction
def queue_notice(
    db: sqlite3.Connection,
    receiver: str,
    group_key: str,
    alert_key: str,
    payload: AlertPayload,
    now_us: int,
    due_us: int,
) -> None:
    """Queue ``payload`` for ``receiver``, to go at ``due_us`` with the rest of its group;
    joins the caller's transaction."""
    db.execute(
        "INSERT INTO notifications (receiver, group_key, alert_key, status, payload,"
        " created_us, due_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            receiver,
            group_key,
            alert_key,
            payload["status"],
            orjson.dumps(payload).decode(),
            now_us,
            due_us,
        ),
    )


def last_notice(db: sqlite3.Connection, alert_key: str, receiver: str) -> LastNotice | None:
    """The latest notice queued for the receiver; one a silence stopped at send time does not
    count (the receiver was not told)."""
    row = db.execute(
        "SELECT status, created_us FROM notifications WHERE alert_key = ? AND receiver = ?"
        " AND silenced_us IS NULL ORDER BY id DESC LIMIT 1",
        (alert_key, receiver),
    ).fetchone()
    return LastNotice(Notice(row[0]), row[1]) if row else None


def group_waiting_until(db: sqlite3.Connection, receiver: str, group_key: str) -> int | None:
    """When the group's waiting batch goes (its earliest unsent notice), if it has one."""
    (due_us,) = db.execute(
        "SELECT min(due_us) FROM notifications WHERE receiver = ? AND group_key = ?"
        " AND sent_us IS NULL AND silenced_us IS NULL",
        (receiver, group_key),
    ).fetchone()
    return None if due_us is None else int(due_us)


def group_last_sent(db: sqlite3.Connection, receiver: str, group_key: str) -> int | None:
    """The pass time of the group's last send (the start of its ``group_interval``)."""
    row = db.execute(
        "SELECT last_sent_us FROM notify_groups WHERE receiver = ? AND group_key = ?",
        (receiver, group_key),
    ).fetchone()
    return None if row is None else int(row[0])


def due_notices(db: sqlite3.Connection, now_us: int) -> list[Queued]:
    """Notices neither sent nor silenced whose time has come, oldest first."""
    rows = db.execute(
        "SELECT id, receiver, group_key, alert_key, payload FROM notifications"
        " WHERE sent_us IS NULL AND silenced_us IS NULL AND due_us <= ? ORDER BY id",
        (now_us,),
    )
    return [
        Queued(row_id, receiver, group_key, alert_key, _payload(payload))
        for row_id, receiver, group_key, alert_key, payload in rows
    ]


def mark_silenced(db: sqlite3.Connection, ids: Sequence[int], now_us: int) -> None:
    """A silence stopped these notices at ``now_us``: they leave the outbox unsent. Commits
    on its own."""
    with transaction(db):
        db.execute(
            f"UPDATE notifications SET silenced_us = ? WHERE id IN ({_marks(ids)})",
            (now_us, *ids),
        )


def mark_sent(
    db: sqlite3.Connection,
    ids: Sequence[int],
    acked_us: int,
    receiver: str,
    group_key: str,
    pass_us: int,
) -> None:
    """The receiver acknowledged these notices at ``acked_us``; the group's
    ``group_interval`` runs from ``pass_us``, the delivery pass that sent them. Commits on its
    own."""
    with transaction(db):
        db.execute(
            "UPDATE notifications SET sent_us = ?, attempts = attempts + 1, last_error = NULL"
            f" WHERE id IN ({_marks(ids)})",
            (acked_us, *ids),
        )
        db.execute(
            "INSERT INTO notify_groups (receiver, group_key, last_sent_us) VALUES (?, ?, ?)"
            " ON CONFLICT (receiver, group_key) DO UPDATE SET"
            " last_sent_us = excluded.last_sent_us",
            (receiver, group_key, pass_us),
        )


def mark_failed(db: sqlite3.Connection, ids: Sequence[int], error: str, due_us: int) -> None:
    """The receiver did not take these notices: they stay, due again at ``due_us``. Commits
    on its own."""
    with transaction(db):
        db.execute(
            "UPDATE notifications SET attempts = attempts + 1, last_error = ?, due_us = ?"
            f" WHERE id IN ({_marks(ids)})",
            (error, due_us, *ids),
        )


def notification_log(db: sqlite3.Connection, limit: int) -> list[Logged]:
    """The latest ``limit`` notices, newest first."""
    rows = db.execute(
        "SELECT id, receiver, status, payload, due_us, sent_us, silenced_us, attempts,"
        " last_error FROM notifications ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [
        Logged(row_id, receiver, Notice(status), _payload(payload), *rest)
        for row_id, receiver, status, payload, *rest in rows
    ]


def notices_created(db: sqlite3.Connection, start_us: int, end_us: int) -> list[Queued]:
    """The notices queued in ``[start_us, end_us)``, whatever became of them, oldest first."""
    rows = db.execute(
        "SELECT id, receiver, group_key, alert_key, payload FROM notifications"
        " WHERE created_us >= ? AND created_us < ? ORDER BY id",
        (start_us, end_us),
    )
    return [
        Queued(row_id, receiver, group_key, alert_key, _payload(payload))
        for row_id, receiver, group_key, alert_key, payload in rows
    ]


def _marks(ids: Sequence[int]) -> str:
    return ", ".join("?" * len(ids))


# Silences added from the command line


@dataclass(frozen=True)
class StoredSilence:
    """A silence in the ledger (``llm-collector silence add``)."""

    id: int
    matchers: dict[str, str]
    starts_us: int
    ends_us: int
    comment: str


_SILENCE_COLUMNS = "id, matchers, starts_us, ends_us, comment"


def _silences(rows: sqlite3.Cursor) -> list[StoredSilence]:
    return [
        StoredSilence(silence_id, orjson.loads(matchers), starts_us, ends_us, comment)
        for silence_id, matchers, starts_us, ends_us, comment in rows
    ]


def add_silence(
    db: sqlite3.Connection, matchers: dict[str, str], starts_us: int, ends_us: int, comment: str
) -> int:
    """Store a silence of label sets equal to ``matchers`` on every name; its id. Commits on
    its own."""
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO silences (matchers, starts_us, ends_us, comment, created_us)"
            " VALUES (?, ?, ?, ?, ?)",
            (orjson.dumps(matchers).decode(), starts_us, ends_us, comment, starts_us),
        )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def list_silences(db: sqlite3.Connection, not_ended_at: int | None = None) -> list[StoredSilence]:
    """Stored silences by id: all, or those not ended at ``not_ended_at``."""
    if not_ended_at is None:
        return _silences(db.execute(f"SELECT {_SILENCE_COLUMNS} FROM silences ORDER BY id"))
    return _silences(
        db.execute(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE ends_us > ? ORDER BY id",
            (not_ended_at,),
        )
    )


def active_silences(db: sqlite3.Connection, now_us: int) -> list[StoredSilence]:
    """Stored silences in force at ``now_us``."""
    return _silences(
        db.execute(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE starts_us <= ? AND ends_us > ?",
            (now_us, now_us),
        )
    )


def expire_silence(db: sqlite3.Connection, silence_id: int, now_us: int) -> bool:
    """End silence ``silence_id`` at ``now_us``; False when there is no such silence in force.
    Commits on its own."""
    with transaction(db):
        changed = db.execute(
            "UPDATE silences SET ends_us = ? WHERE id = ? AND ends_us > ?",
            (now_us, silence_id, now_us),
        ).rowcount
    return changed > 0
