"""The quarantine file keeps a rejected line under the ledger's content policy: no prompt, SSN
or e-mail address verbatim by default, and still the source, offset, size and reason."""

import hashlib
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.ingest.content import ContentPolicy
from collector.ingest.quarantine import QuarantineEntry, QuarantineFile
from schemas.config import ContentConfig
from tests.collector.tailing_harness import Rig, append, line

SSN, EMAIL = "219-09-9999", "jane.doe@example.com"
PROMPT = f"My SSN is {SSN}, write to {EMAIL}"


def rejected_line(**fields) -> bytes:
    """A call that fails validation (the model is a list) with PII in its prompt."""
    event = {"timestamp": "2026-11-20T10:00:00Z", "model": ["gpt-4o"], "prompt": PROMPT}
    return orjson.dumps({**event, **fields})


def quarantine(tmp_path, raw: bytes, keep_bytes: int = 4096, **content) -> dict:
    """``raw`` rejected and written through the real tailer; its one quarantine entry."""
    rig = Rig(tmp_path, max_line_bytes=4096)
    rig.config = rig.config.model_copy(
        update={
            "content": ContentConfig(**content),
            "quarantine": rig.config.quarantine.model_copy(update={"keep_bytes": keep_bytes}),
        }
    )
    rig.restart()
    append(rig.trace, line(0) + raw + b"\n" + line(1))
    rig.cycle()
    (entry,) = rig.quarantined()
    assert rig.totals() == {"lines": 3, "events": 2, "quarantined": 1, "skipped": 0}
    assert (entry["source"], entry["offset"]) == (str(rig.trace), len(line(0)))
    assert entry["line_bytes"] == len(raw)
    rig.close()
    return entry


def test_a_rejected_line_keeps_no_prompt_ssn_or_email_by_default(tmp_path):
    raw = rejected_line(messages=[{"role": "user", "content": PROMPT}], experiment="B")
    entry = quarantine(tmp_path, raw)
    assert SSN not in entry["line"] and EMAIL not in entry["line"]
    assert entry["reason"].startswith("model: Input should be a valid string")
    assert entry["line_redacted"] is False
    # The rest of the line is there to see why it failed; content is dropped as in the ledger.
    assert json.loads(entry["line"]) == {
        "timestamp": "2026-11-20T10:00:00Z",
        "model": ["gpt-4o"],
        "experiment": "B",
    }


def test_a_rejected_line_is_redacted_as_the_ledger_does_when_content_is_stored(tmp_path):
    raw = rejected_line(**{"gen_ai.prompt.0.content": PROMPT})
    entry = quarantine(tmp_path, raw, store=True)
    assert SSN not in entry["line"] and EMAIL not in entry["line"]
    kept = json.loads(entry["line"])
    assert kept["prompt"] == kept["gen_ai.prompt.0.content"] == "My SSN is [ssn], write to [email]"


def test_a_rejected_line_keeps_hashes_when_content_is_hashed(tmp_path):
    entry = quarantine(tmp_path, rejected_line(), store=True, hash=True)
    digest = hashlib.sha256(PROMPT.encode()).hexdigest()
    assert json.loads(entry["line"])["prompt"] == f"sha256:{digest}"


def test_a_line_that_is_not_json_is_redacted_and_its_content_strings_masked(tmp_path):
    raw = b'{"model": "m", "prompt": "' + PROMPT.encode() + b'", "note": "call 219-09-9999",'
    entry = quarantine(tmp_path, raw)
    assert entry["reason"].startswith("invalid JSON")
    assert entry["line_redacted"] is True
    assert entry["line"] == '{"model": "m", "prompt": "[removed]", "note": "call [ssn]",'


def test_a_line_over_the_limit_is_parsed_when_it_was_read_whole(tmp_path):
    entry = quarantine(tmp_path, rejected_line(pad="x" * 5000), keep_bytes=64)
    assert entry["reason"] == "line longer than max_line_bytes (4096)"
    assert entry["line_redacted"] is False
    assert entry["line"] == '{"timestamp":"2026-11-20T10:00:00Z","model":["gpt-4o"],"pad":"xx'


def test_the_head_of_a_line_too_long_to_read_is_redacted_and_a_cut_number_dropped(tmp_path):
    raw = rejected_line(pad="x" * 2 * 2**20)  # longer than a read: only its head is kept
    head = len(b'{"timestamp":"2026-11-20T10:00:00Z","model":["gpt-4o"],"prompt":"My SSN is 219-0')
    entry = quarantine(tmp_path, raw, keep_bytes=head, store=True)
    assert entry["reason"] == "line longer than max_line_bytes (4096)"
    assert entry["line_redacted"] is True
    assert entry["line"] == (
        '{"timestamp":"2026-11-20T10:00:00Z","model":["gpt-4o"],"prompt":"My SSN is'
    )


def test_content_stored_verbatim_keeps_the_line_verbatim(tmp_path):
    entry = quarantine(tmp_path, b"not json " + EMAIL.encode(), store=True, redact=False)
    assert (entry["line"], entry["line_redacted"]) == ("not json " + EMAIL, False)


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    fields=st.dictionaries(st.sampled_from(["model", "note", "n"]), st.text(max_size=20)),
    keep_bytes=st.integers(min_value=1, max_value=400),
    store=st.booleans(),
    head=st.booleans(),
)
def test_no_part_of_a_secret_survives_any_cut_of_a_rejected_line(
    tmp_path_factory, before, after, fields, keep_bytes, store, head
):
    """Cut anywhere, read whole or only its head (as the tailer does with a line too long to
    read), content dropped or stored redacted: neither the SSN nor the address appears."""
    prompt = f"{before} {SSN} {after} {EMAIL} ."
    raw = orjson.dumps({**fields, "messages": [{"role": "user", "content": prompt}], "x": 1})
    path = tmp_path_factory.mktemp("q") / "quarantine.jsonl"
    file = QuarantineFile(path, keep_bytes, ContentPolicy(ContentConfig(store=store)))
    line = raw[:keep_bytes] if head else raw
    file.write([QuarantineEntry("trace.jsonl", 0, "bad", line, len(raw))])
    file.close()
    kept = orjson.loads(path.read_bytes())["line"]
    for secret in ("219-0", "jane.doe@", "@example"):
        assert secret not in kept


@pytest.mark.parametrize("content", [{}, {"store": True}])
def test_no_secret_in_a_line_that_is_a_json_array(tmp_path, content):
    raw = orjson.dumps([{"prompt": PROMPT}])
    entry = quarantine(tmp_path, raw, **content)
    assert entry["reason"] == "not a JSON object but list"
    assert SSN not in entry["line"] and EMAIL not in entry["line"]


def entry(source: str, n: int) -> QuarantineEntry:
    return QuarantineEntry(source, n, "bad", b"x", 1)


def test_taking_back_a_write_leaves_the_entries_written_after_it(tmp_path):
    """The tailer and the OTLP receiver share the file: a batch that did not commit takes its
    entries back only while nothing followed them; else they stay (written twice on its retry,
    never lost), and so do the other writer's."""
    path = tmp_path / "quarantine.jsonl"
    file = QuarantineFile(path, 4096, ContentPolicy(ContentConfig()))
    tailer = file.write([entry("trace.jsonl", 1)])
    file.write([entry("otlp", 0)])  # the receiver's, committed
    file.take_back(tailer)  # the tailer's commit failed
    alone = file.write([entry("trace.jsonl", 2)])
    file.take_back(alone)  # nothing followed: cut
    kept = [(e["source"], e["offset"]) for e in map(orjson.loads, path.read_bytes().splitlines())]
    assert kept == [("trace.jsonl", 1), ("otlp", 0)]
