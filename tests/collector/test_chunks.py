"""Chunks parsed on worker processes give exactly what inline parsing gives."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson

from collector.chunks import POOL_MIN_LINES, ChunkJob, ChunkParser
from collector.content import ContentPolicy
from collector.parsing import LineParser
from collector.pricing import Pricer
from collector.timerange import DEFAULT_RANGE, TimeRange
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


def parser(workers, times=DEFAULT_RANGE):
    content = ContentConfig()
    return ChunkParser(
        LineParser(Pricer(OVERRIDES), ContentPolicy(content), times),
        1 << 20,
        overrides=OVERRIDES,
        content=content,
        workers=workers,
    )


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
