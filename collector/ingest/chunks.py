"""Parsing a chunk of complete lines into a batch, inline or on the other cores.

Parsing costs most of ingest's CPU time and needs nothing from the ledger, so big chunks are
parsed by worker processes while the main process commits the previous ones. Batches are
still committed one by one, in file order, each with the offset after its last line.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from collector.ingest.parsing import LineParser, Rejected
from collector.ingest.quarantine import QuarantineEntry
from collector.ledger.connection import Batch

log = logging.getLogger(__name__)

POOL_MIN_LINES = 2_000
"""Chunks with fewer lines are parsed inline: a round trip to a worker would cost more."""
POOL_AFTER_LINES = 50_000
"""The workers start once this many lines came in big chunks: a sustained backlog, not a
burst (starting them costs a second or two of CPU on every core)."""


@dataclass
class ParsedChunk:
    """The batch to commit and the rejected lines to quarantine first."""

    batch: Batch
    rejected: list[QuarantineEntry] = field(default_factory=list)


@dataclass(frozen=True)
class ChunkJob:
    lines: list[bytes]
    offset: int
    zone: ZoneInfo
    stream_id: int
    path: str


def parse_chunk(parser: LineParser, job: ChunkJob, max_line: int) -> ParsedChunk:
    """Every line of the chunk becomes a row, a skip or a quarantine entry; none is lost."""
    batch = Batch(lines=len(job.lines))
    rejected: list[QuarantineEntry] = []
    parse, zone, stream_id, path = parser.parse, job.zone, job.stream_id, job.path
    calls, scores = batch.calls, batch.scores
    position = job.offset
    for line in job.lines:
        start, position = position, position + len(line) + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            if len(line) > max_line:
                raise Rejected(f"line longer than max_line_bytes ({max_line})")
            parsed = parse(line, zone, stream_id)
        except Rejected as error:
            rejected.append(QuarantineEntry(path, start, str(error), line, len(line)))
            continue
        except Exception as error:  # a parser bug must not stop ingestion or lose the line
            log.exception("unexpected error parsing %s at offset %d", path, start)
            reason = f"unexpected error: {type(error).__name__}: {error}"
            rejected.append(QuarantineEntry(path, start, reason, line, len(line)))
            continue
        if parsed.row is None:
            batch.skipped += 1
        elif parsed.kind == "call":
            calls.append(parsed.row)
        else:
            scores.append(parsed.row)
    batch.quarantined = len(rejected)
    return ParsedChunk(batch, rejected)


_worker: tuple[LineParser, int] | None = None


PARENT_CHECK_SECONDS = 1.0
"""How often a parse worker checks that the process that started it is still there."""


def _start_worker(parser: LineParser, max_line: int, parent: int) -> None:
    """``parser`` arrives pickled: a copy of the main process's, with caches of its own."""
    global _worker
    # The main process decides when to stop; a terminal's Ctrl-C must not kill a worker first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker = (parser, max_line)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A parent killed with SIGKILL cannot stop its workers: they notice it is gone (it may
    be gone already, while the worker was still importing)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _ready() -> bool:
    return _worker is not None


def _parse_in_worker(job: ChunkJob) -> ParsedChunk:
    assert _worker is not None
    parser, max_line = _worker
    return parse_chunk(parser, job, max_line)


class ChunkParser:
    """Parses chunks inline when small, on a pool of worker processes when big."""

    def __init__(
        self,
        parser: LineParser,
        max_line: int,
        *,
        workers: int | None = None,
    ) -> None:
        self.parser = parser
        self.max_line = max_line
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._starting: list[Future[bool]] = []
        self._backlog_lines = 0

    def submit(self, job: ChunkJob) -> Callable[[], ParsedChunk]:
        """Start parsing; the returned function waits for and returns the result."""
        big = len(job.lines) >= POOL_MIN_LINES
        self._backlog_lines += len(job.lines) if big else 0
        if (
            self.workers < 2
            or not big
            or (self._pool is None and self._backlog_lines < POOL_AFTER_LINES)
            or not self._pool_ready()
        ):
            result = parse_chunk(self.parser, job, self.max_line)
            return lambda: result
        assert self._pool is not None
        future: Future[ParsedChunk] = self._pool.submit(_parse_in_worker, job)
        return lambda: self._result(future, job)

    def _result(self, future: Future[ParsedChunk], job: ChunkJob) -> ParsedChunk:
        try:
            return future.result()
        except BrokenProcessPool:
            log.warning("a parse worker died; parsing inline from now on")
            self.workers = 0
            return parse_chunk(self.parser, job, self.max_line)

    def wait_ready(self, timeout: float) -> bool:
        """Start the workers now and wait until they are up (or ``timeout`` seconds)."""
        if self.workers < 2:
            return False
        self._pool_ready()
        futures.wait(self._starting, timeout=timeout)
        return self._pool_ready()

    def _pool_ready(self) -> bool:
        """Start the workers on first need; parse inline until they are up (a second or two)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                # The workers price, keep content and judge times as this parser does.
                initargs=(self.parser, self.max_line, os.getpid()),
            )
            self._starting = [self._pool.submit(_ready) for _ in range(self.workers)]
        return all(future.done() for future in self._starting)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
