"""The receiver's store step on a real ledger: a request's rows, the tiers' marks, its spans'
keys and the receiver's counts commit together; a span sent again is a duplicate; rejected
spans are quarantined without content; a failed commit stores nothing and quarantines nothing
for good; old keys are forgotten after the raw retention."""

import sqlite3

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.tiers.windows import HOUR_US
from tests.collector.receivers.otlp_bodies import Recorder, protobuf_body
from tests.collector.receivers.receiver_harness import (
    PROTOBUF,
    Rig,
    chat_spans,
    model_less_span,
    other_span,
    start_ns,
)

DAY_US = 86_400_000_000


@pytest.fixture
def rig(tmp_path):
    made = Rig(tmp_path)
    yield made
    made.receiver.close()


def test_a_request_commits_its_rows_marks_keys_and_counts_together(rig):
    recorder = Recorder(**{"service.name": "bot"})
    sent = chat_spans(recorder, 3)
    other_span(recorder)
    outcome = rig.receive(protobuf_body(recorder.spans()), PROTOBUF)
    assert (outcome.accepted, outcome.duplicates, outcome.skipped, outcome.rejected) == (
        3,
        0,
        1,
        [],
    )
    assert rig.call_ids() == sorted(s.call_id for s in sent)
    rows = rig.query("SELECT call_id, model, latency_ms, cost_usd, stream_id FROM calls")
    by_id = {s.call_id: s for s in sent}
    for call_id, model, latency, cost, stream_id in rows:
        assert (model, cost, stream_id) == (by_id[call_id].model, by_id[call_id].cost_usd, 1)
        assert latency == pytest.approx(by_id[call_id].latency_ms)
    hours = {ts // HOUR_US for (ts,) in rig.query("SELECT ts_us FROM calls")}
    assert {h for (h,) in rig.query("SELECT hour FROM rollup_pending")} == hours
    keys = rig.query("SELECT lower(hex(span_id)), received_us FROM otlp_spans")
    assert sorted(keys) == sorted((s.call_id, rig.now_us) for s in sent)
    assert rig.counts() == (4, 3, 0, 1)
    assert [len(batch.calls) for batch in rig.committed] == [3]


def test_the_same_request_again_is_counted_once(rig):
    recorder = Recorder()
    sent = chat_spans(recorder, 5)
    body = protobuf_body(recorder.spans())
    rig.receive(body, PROTOBUF)
    again = rig.receive(body, PROTOBUF)
    assert (again.accepted, again.duplicates) == (0, 5)
    assert rig.call_ids() == sorted(s.call_id for s in sent)
    assert rig.counts() == (5, 5, 0, 0)
    assert len(rig.committed) == 1  # nothing new: no commit for the metrics


def test_a_span_twice_in_one_request_is_stored_once(rig):
    recorder = Recorder()
    chat_spans(recorder, 2)
    spans = recorder.spans()
    outcome = rig.receive(protobuf_body([*spans, spans[0]]), PROTOBUF)
    assert (outcome.accepted, outcome.duplicates) == (2, 1)
    assert len(rig.call_ids()) == 2


def test_rejected_spans_are_quarantined_without_content_and_not_stored(rig):
    recorder = Recorder()
    chat_spans(recorder, 1)
    span_id = model_less_span(recorder)
    outcome = rig.receive(protobuf_body(recorder.spans()), PROTOBUF)
    assert outcome.accepted == 1
    ((label, reason),) = outcome.rejected
    assert span_id in label and reason == "model: required for an llm_call event"
    (entry,) = rig.quarantined()
    assert (entry["source"], entry["reason"]) == ("otlp", reason)
    assert orjson.loads(entry["line"]) == {"span": label}
    assert rig.counts() == (2, 1, 1, 0)
    assert rig.query("SELECT count(*) FROM otlp_spans") == [(1,)]


def test_a_commit_that_fails_stores_nothing_and_takes_its_quarantine_entries_back(rig):
    recorder = Recorder()
    sent = chat_spans(recorder, 2)
    model_less_span(recorder)
    body = protobuf_body(recorder.spans())
    rig.receiver.ledger.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(rig.config.ledger.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the ledger
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        rig.receive(body, PROTOBUF)
    other.execute("ROLLBACK")
    other.close()
    assert (rig.call_ids(), rig.quarantined()) == ([], [])
    assert rig.query("SELECT count(*) FROM otlp_spans") == [(0,)]
    retried = rig.receive(body, PROTOBUF)  # the sender retries
    assert (retried.accepted, retried.duplicates, len(retried.rejected)) == (2, 0, 1)
    assert rig.call_ids() == sorted(s.call_id for s in sent)
    assert len(rig.quarantined()) == 1


def test_keys_are_forgotten_after_the_raw_retention_then_a_span_counts_again(tmp_path):
    rig = Rig(tmp_path, tiers={"retention": {"raw": "2d"}})
    recorder = Recorder()
    chat_spans(recorder, 2)
    body = protobuf_body(recorder.spans())
    rig.receive(body, PROTOBUF)
    rig.now_us += 2 * DAY_US
    assert rig.receiver.expire_keys() == 0  # received exactly the retention ago: kept
    assert rig.receive(body, PROTOBUF).duplicates == 2
    rig.now_us += 1
    assert rig.receiver.expire_keys() == 2
    assert rig.receive(body, PROTOBUF).accepted == 2
    rig.receiver.close()


def test_a_span_from_long_ago_keeps_its_key_until_it_came_the_retention_ago(tmp_path):
    rig = Rig(tmp_path, tiers={"retention": {"raw": "2d"}})
    recorder = Recorder()
    chat_spans(recorder, 1, start=start_ns(minutes_ago=10 * 24 * 60))  # ten days old
    body = protobuf_body(recorder.spans())
    rig.receive(body)
    rig.now_us += DAY_US
    assert rig.receiver.expire_keys() == 0  # a retry is still a duplicate
    assert rig.receive(body).duplicates == 1
    rig.now_us += DAY_US + 1
    assert rig.receiver.expire_keys() == 1
    rig.receiver.close()


def test_raw_retention_forever_keeps_every_key(tmp_path):
    rig = Rig(tmp_path, tiers={"retention": {"raw": "forever", "1h": "forever", "1d": "forever"}})
    recorder = Recorder()
    chat_spans(recorder, 1)
    rig.receive(protobuf_body(recorder.spans()), PROTOBUF)
    rig.now_us += 10**16
    assert rig.receiver.expire_keys() == 0
    assert rig.query("SELECT count(*) FROM otlp_spans") == [(1,)]
    rig.receiver.close()


POOL = 12


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(st.lists(st.integers(0, POOL - 1), max_size=8), max_size=8))
def test_any_sequence_of_requests_stores_each_span_sent_exactly_once(tmp_path_factory, requests):
    """Requests made of any spans of a pool, repeated within and across requests (retries,
    overlapping batches): the ledger holds each span sent once, and the outcomes add up."""
    rig = Rig(tmp_path_factory.mktemp("r"))
    recorder = Recorder()
    sent = chat_spans(recorder, POOL)
    spans = recorder.spans()
    accepted = duplicates = 0
    for request in requests:
        outcome = rig.receive(protobuf_body([spans[i] for i in request]), PROTOBUF)
        accepted, duplicates = accepted + outcome.accepted, duplicates + outcome.duplicates
    wanted = sorted({sent[i].call_id for request in requests for i in request})
    assert rig.call_ids() == wanted
    assert (accepted, duplicates) == (len(wanted), sum(map(len, requests)) - len(wanted))
    rig.receiver.close()
