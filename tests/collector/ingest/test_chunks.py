"""Chunks parsed on worker processes give exactly what inline parsing gives."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.clock import DEFAULT_RANGE, TimeRange
from collector.ingest.chunks import POOL_MIN_LINES, ChunkJob, ChunkParser
from collector.ingest.content import ContentPolicy, redact
from collector.ingest.parsing import LineParser
from collector.ingest.pricing import SOURCE_OVERRIDE, Pricer
from collector.ledger.events import CALL_COLUMNS
from schemas.config import ContentConfig, PriceOverride, TimestampsConfig

OVERRIDES = {"my-finetune": PriceOverride(input=1.0, output=2.0)}


def chunk_lines(count):
    lines = []
    for n in range(count):
        model = ("gpt-4o-mini", "my-finetune", "unknown-model")[n % 3]
        lines.append(
            f'{{"timestamp": "2026-11-20T10:{n % 60:02d}:00", "model": "{model}",'
            f' "input_tokens": {n}, "output_tokens": 7, "call_id": "c{n}"}}'.encode()
        )
        if n % 500 == 0:
            lines.append(b'{"timestamp": "2026-11-20T10:00:00Z", "model": "x", "input_tokens": -1}')
        if n % 700 == 0:
            lines.append(b'{"type": "log"}\r')
    return lines


def parser(workers, times=DEFAULT_RANGE, content=None):
    policy = ContentPolicy(content or ContentConfig())
    line_parser = LineParser(Pricer(OVERRIDES), policy, times)
    return ChunkParser(line_parser, 1 << 20, workers=workers)


def test_pool_and_inline_parse_identically():
    job = ChunkJob(chunk_lines(POOL_MIN_LINES + 500), 1000, ZoneInfo("Europe/Berlin"), 7, "t.jsonl")
    inline, pooled = parser(0), parser(2)
    try:
        expected = inline.submit(job)()
        assert pooled.wait_ready(timeout=60)
        result = pooled.submit(job)()
    finally:
        pooled.close()
    assert result.batch == expected.batch
    assert result.rejected == expected.rejected
    assert result.batch.lines == len(job.lines)
    assert len(result.rejected) == 5
    assert result.batch.skipped == 4
    assert result.rejected[0].offset > job.offset
    assert result.batch.events + result.batch.skipped + len(result.rejected) == len(job.lines)


def test_chunks_are_parsed_inline_while_the_workers_start():
    job = ChunkJob(chunk_lines(POOL_MIN_LINES), 0, ZoneInfo("UTC"), 1, "t.jsonl")
    pooled = parser(2)
    try:
        first = pooled.submit(job)  # the pool starts now; this chunk does not wait for it
        assert first().batch.lines == len(job.lines)
    finally:
        pooled.close()


def test_the_workers_judge_times_by_the_configured_range_as_inline_parsing_does():
    """ahead: 2h, so an event 3 hours ahead of the clock is out (the default 1d would take it)."""
    times = TimeRange.from_config(TimestampsConfig(earliest="2020-01-01", ahead="2h"))
    now = datetime.now(UTC)
    kinds = {
        "in": now - timedelta(hours=1),
        "ahead": now + timedelta(hours=3),
        "old": datetime(2019, 6, 1, tzinfo=UTC),
    }
    order = [("in", "ahead", "old")[n % 3] for n in range(POOL_MIN_LINES)]
    lines = [orjson.dumps({"timestamp": kinds[k].isoformat(), "model": "m"}) for k in order]
    job = ChunkJob(lines, 0, ZoneInfo("UTC"), 1, "t.jsonl")
    inline, pooled = parser(0, times), parser(2, times)
    try:
        expected = inline.submit(job)()
        assert pooled.wait_ready(timeout=60)
        result = pooled.submit(job)()
    finally:
        pooled.close()
    assert result.batch == expected.batch

    def verdicts(chunk):  # the reason ends with the clock's reading, which moved meanwhile
        return [(e.offset, e.reason.split(" after the clock")[0]) for e in chunk.rejected]

    assert verdicts(result) == verdicts(expected)
    assert len(result.batch.calls) == order.count("in")
    reasons = [entry.reason for entry in result.rejected]
    assert sum("ingest.timestamps.ahead (2h)" in r for r in reasons) == order.count("ahead")
    assert sum("earliest (2020-01-01T00:00:00Z)" in r for r in reasons) == order.count("old")


# ----- one configuration, inline and on the workers -------------------------------------------

STORED_REDACTED = ContentConfig(store=True, redact=True)
SINCE_2020_AHEAD_2H = TimestampsConfig(earliest="2020-01-01", ahead="2h")
WHEN = {"in": timedelta(hours=-1), "ahead": timedelta(hours=3), "old": None}
"""Event times relative to the clock, far from the range's ends (the clock moves meanwhile)."""


@pytest.fixture(scope="module")
def inline_and_pooled():
    """Two parsers given only a `LineParser`: an override price, content stored redacted, and
    a range from 2020 to the clock + 2h (defaults: no override, content dropped, + 1 day)."""
    times = TimeRange.from_config(SINCE_2020_AHEAD_2H)
    inline = parser(0, times, STORED_REDACTED)
    pooled = parser(2, times, STORED_REDACTED)
    try:
        assert pooled.wait_ready(timeout=60)
        yield inline, pooled
    finally:
        pooled.close()


EVENTS = st.fixed_dictionaries(
    {
        "when": st.sampled_from(sorted(WHEN)),
        "model": st.sampled_from(["my-finetune", "gpt-4o-mini", "unknown-model"]),
        "input_tokens": st.integers(0, 10**6),
        "output_tokens": st.integers(0, 10**6),
        "prompt": st.one_of(st.text(max_size=40), st.emails().map("write to {}".format)),
    }
)


def trace_line(event, now):
    when = WHEN[event["when"]]
    moment = datetime(2019, 6, 1, tzinfo=UTC) if when is None else now + when
    fields = {k: v for k, v in event.items() if k != "when"}
    return orjson.dumps({"timestamp": moment.isoformat(), **fields, "messages": event["prompt"]})


@settings(max_examples=25, deadline=None)
@given(events=st.lists(EVENTS, min_size=1, max_size=20))
def test_the_workers_price_keep_content_and_judge_times_as_the_inline_parser(
    inline_and_pooled, events
):
    inline, pooled = inline_and_pooled
    now = datetime.now(UTC)
    cycle = [events[n % len(events)] for n in range(POOL_MIN_LINES)]
    job = ChunkJob([trace_line(e, now) for e in cycle], 0, ZoneInfo("UTC"), 1, "t.jsonl")

    expected, result = inline.submit(job)(), pooled.submit(job)()

    assert result.batch == expected.batch
    assert [(e.offset, e.reason[:60]) for e in result.rejected] == [
        (e.offset, e.reason[:60]) for e in expected.rejected
    ]
    kept = [e for e in cycle if e["when"] == "in"]
    assert len(result.batch.calls) == len(kept)
    for event, row in zip(kept, result.batch.calls, strict=True):
        values = dict(zip(CALL_COLUMNS, row, strict=True))
        assert values["prompt"] == redact(event["prompt"])
        assert orjson.loads(values["extra"]) == {"messages": redact(event["prompt"])}
        if event["model"] == "my-finetune":
            cost = event["input_tokens"] * 1e-6 + event["output_tokens"] * 2e-6
            assert values["cost_usd"] == pytest.approx(cost)
            assert values["price_source"] == SOURCE_OVERRIDE
