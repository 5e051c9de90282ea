"""Stream states are a `StreamState`, stored as the strings every ledger already holds."""

import pytest

from alerting.db import TransactionMisuse
from collector.ledger.connection import Batch, Ledger, StreamState, count_received


def test_states_are_stored_as_their_strings_and_read_back_as_states(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        rotated = ledger.add_stream("s", "t.jsonl.1", 1, 42, 4, b"old")
        rotated.state = StreamState.ROTATED
        ledger.save_stream(rotated)
        ledger.add_stream("s", "t.jsonl", 1, 43, 4, b"new")
        with ledger.transaction() as db:  # as an older llm-collector left a finished file
            db.execute("UPDATE streams SET state = 'done' WHERE ino = 43")
        stored = ledger.db.execute("SELECT ino, state FROM streams ORDER BY ino").fetchall()
        assert stored == [(42, "rotated"), (43, "done")]
        assert [(s.ino, s.state) for s in ledger.streams(tuple(StreamState))] == [
            (42, StreamState.ROTATED),
            (43, StreamState.DONE),
        ]
        assert all(type(s.state) is StreamState for s in ledger.streams(tuple(StreamState)))
        assert [s.ino for s in ledger.streams()] == [42]  # done is no longer followed
    finally:
        ledger.close()


def test_the_stored_strings_are_those_of_the_schema():
    assert [state.value for state in StreamState] == ["active", "rotated", "done", "receiver"]


def test_a_receiver_has_one_stream_that_is_never_followed_and_counts_in_the_totals(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        ledger.add_stream("logs/*.jsonl", "logs/a.jsonl", 1, 42, 4, b"file")
        stream = ledger.receiver_stream("otlp")
        assert ledger.receiver_stream("otlp") == stream  # the same one at every start
        assert (stream.source, stream.state) == ("otlp", StreamState.RECEIVER)
        with ledger.transaction() as db:
            count_received(db, stream, Batch(calls=[()] * 3, lines=5, quarantined=1, skipped=1))
        with pytest.raises(TransactionMisuse):
            count_received(ledger.db, stream, Batch(lines=1, skipped=1))
        assert [s.path for s in ledger.streams()] == ["logs/a.jsonl"]  # what the tailer follows
        assert ledger.stream_by_inode(1, 42).path == "logs/a.jsonl"
        (received,) = ledger.streams((StreamState.RECEIVER,))
        assert received.counts == {"lines": 5, "events": 3, "quarantined": 1, "skipped": 1}
        assert ledger.totals() == {"lines": 5, "events": 3, "quarantined": 1, "skipped": 1}
    finally:
        ledger.close()
