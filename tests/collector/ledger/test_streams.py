"""Stream states are a `StreamState`, stored as the strings every ledger already holds."""

from collector.ledger.connection import Ledger, StreamState


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
    assert [state.value for state in StreamState] == ["active", "rotated", "done"]
