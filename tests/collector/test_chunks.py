"""Chunks parsed on worker processes give exactly what inline parsing gives."""

from zoneinfo import ZoneInfo

from collector.chunks import POOL_MIN_LINES, ChunkJob, ChunkParser
from collector.content import ContentPolicy
from collector.parsing import LineParser
from collector.pricing import Pricer
from schemas.config import ContentConfig, PriceOverride

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


def parser(workers):
    content = ContentConfig()
    return ChunkParser(
        LineParser(Pricer(OVERRIDES), ContentPolicy(content)),
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
