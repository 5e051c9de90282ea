"""The alerting tables in the ledger: alert state, rule evaluations, notifications, notify
groups and silences. Their migration scripts are run by ``collector.ledger.migrations``."""

from __future__ import annotations

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
