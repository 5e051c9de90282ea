"""The ledger's writes are explicit about transactions: the store functions that join the
caller's transaction refuse to run outside one (they would autocommit statement by statement),
and the `Ledger` methods that commit on their own refuse to run inside one."""

import pytest

from alerting.db import TransactionMisuse
from collector.ledger import events, sequences
from collector.ledger.connection import Batch, Ledger
from collector.tiers import marks, rawrollup, store
from tests.collector.rollup_harness import call


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    yield ledger
    ledger.close()


def _changes(ledger) -> int:
    return ledger.db.total_changes


JOINING = {
    "events.insert": lambda db: events.insert(db, "calls", [call(1_000_000)]),
    "events.delete": lambda db: events.delete(db, "calls", "true", ()),
    "sequences.raise_to": lambda db: sequences.raise_to(db, "calls.id", 5),
    "sequences.take": lambda db: sequences.take(db, "rollups", 1),
    "marks.mark_written": lambda db: marks.mark_written(db, [1_000_000]),
    "store.write_window": lambda db: store.write_window(db, "1h", 0, 3_600_000_000, {}),
    "rawrollup.consume_raw": lambda db: rawrollup.consume_raw(db, 0, 3_600_000_000),
}


@pytest.mark.parametrize("write", JOINING.values(), ids=JOINING.keys())
def test_a_joining_write_outside_a_transaction_is_refused_and_writes_nothing(ledger, write):
    before = _changes(ledger)
    with pytest.raises(TransactionMisuse, match="joins the caller's transaction"):
        write(ledger.db)
    assert _changes(ledger) == before


@pytest.mark.parametrize("write", JOINING.values(), ids=JOINING.keys())
def test_a_joining_write_commits_with_its_caller(ledger, write):
    with ledger.transaction() as db:
        write(db)
        assert db.in_transaction


COMMITTING = {
    "add_stream": lambda ledger: ledger.add_stream("s", "t.jsonl", 1, 2, 0, b""),
    "save_stream": lambda ledger: ledger.save_stream(ledger.streams()[0]),
    "commit": lambda ledger: ledger.commit(
        ledger.streams()[0], Batch(calls=[call(1_000_000)]), 1, marks.mark_written
    ),
    "mark_sources_seen": lambda ledger: ledger.mark_sources_seen(["s"], 1),
}


@pytest.mark.parametrize("write", COMMITTING.values(), ids=COMMITTING.keys())
def test_a_ledger_write_inside_a_transaction_is_refused(ledger, write):
    """It would commit the caller's half-done work; the caller's transaction rolls back."""
    ledger.add_stream("s", "t.jsonl", 1, 1, 0, b"")
    with pytest.raises(TransactionMisuse, match="commits on its own"), ledger.transaction() as db:
        events.insert(db, "calls", [call(2_000_000)])
        write(ledger)
    assert events.last_id(ledger.db, "calls") == 0
    assert len(ledger.streams()) == 1
