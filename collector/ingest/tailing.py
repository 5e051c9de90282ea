"""Following trace files across rotation: discovery, identity and reading complete lines.

A file is a *stream*: a device + inode whose first bytes hash to a stored fingerprint. The
stream survives renames (rename+create rotation is finished from the old inode before it is
let go) and notices truncation (copytruncate: the copy is finished from the saved offset when
it can be found). Only complete lines are read; the offset after the last of them is
committed with their events (`collector.ledger.connection.Ledger.commit`).
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import logging
import lzma
import os
import stat
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from io import BufferedIOBase
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from collector.ingest.chunks import ChunkJob, ChunkParser, ParsedChunk
from collector.ingest.quarantine import QuarantineEntry, QuarantineFile
from collector.ledger.connection import (
    Batch,
    Ledger,
    MarkWritten,
    OffsetMoved,
    Stream,
    StreamState,
)

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 1024
MIN_ADOPT_FINGERPRINT = 64
CHUNK_BYTES = 1024 * 1024
ROTATED_NAMES = (".*", "-*")
"""A rotated file is named like the pattern plus one of these: logrotate's ``trace.jsonl.1``
and ``trace.jsonl-20261204``, Python's ``trace.jsonl.2026-12-04``."""
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z")
DECOMPRESSORS: dict[str, Callable[[str], BufferedIOBase]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}
"""The compressions whose first bytes can be read to recognise a file read before."""
MTIME_SLACK_S = 2.0
"""File times come from the kernel's coarse clock: a file written just after a scan may show
a time just before it."""


class TailEnd(Enum):
    """What to do with an unterminated last line."""

    WAIT = "wait"  # the writer is still writing it: leave it for the next poll
    IF_COMPLETE = "if_complete"  # one-shot ingest: take it only if it is a whole JSON value
    TAKE = "take"  # the file is finished (rotated away): take it whatever it is


@dataclass(frozen=True)
class Source:
    pattern: str
    zone: ZoneInfo
    start_at: str = "beginning"


@dataclass
class _Open:
    stream: Stream
    fd: int
    zone: ZoneInfo
    rotated_at: float | None = None
    long_line: _LongLine | None = None


@dataclass
class _LongLine:
    start: int
    head: bytes
    scanned_to: int


@dataclass
class TailCounts:
    lines: int = 0
    events: int = 0
    quarantined: int = 0
    skipped: int = 0
    pending_partial: dict[str, int] = field(default_factory=dict)

    def add(self, batch: Batch) -> None:
        self.lines += batch.lines
        self.events += batch.events
        self.quarantined += batch.quarantined
        self.skipped += batch.skipped


def _fingerprint(fd: int, length: int) -> bytes:
    return hashlib.blake2b(os.pread(fd, length, 0), digest_size=16).digest()


def _regular_file(path: str) -> os.stat_result | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


class Tailer:
    """Reads every source's files into the ledger; call `scan` then `poll` repeatedly."""

    def __init__(
        self,
        ledger: Ledger,
        sources: list[Source],
        chunks: ChunkParser,
        quarantine: QuarantineFile,
        *,
        mark_written: MarkWritten,
        max_line_bytes: int,
        rotate_wait: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_progress: Callable[[int], None] | None = None,
        on_commit: Callable[[Batch], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.mark_written = mark_written
        """Marks the hours of each batch for the tiers, in its commit (`Ledger.commit`)."""
        self.sources = sources
        self.chunks = chunks
        self.quarantine = quarantine
        self.max_line_bytes = max_line_bytes
        self.chunk_bytes = max(CHUNK_BYTES, max_line_bytes + 1)
        self.rotate_wait = rotate_wait
        self.clock = clock
        self.wall_clock = wall_clock
        self.on_progress = on_progress
        self.on_commit = on_commit
        """Called with each batch once the ledger committed it (the daemon's metrics)."""
        self.counts = TailCounts()
        self.stop_requested = False
        self._open: dict[int, _Open] = {}
        self._zones = {source.pattern: source.zone for source in sources}
        self._seen_at = {
            pattern: seen_us / 1e6
            for pattern, seen_us in ledger.sources_seen().items()
            if pattern in self._zones
        }
        """When each source was last looked at (wall clock): a file rotated away after that
        may hold lines never read. A source never looked at before has no entry."""
        self._warned: set[str] = set()
        self._resume()

    # ----- discovery -------------------------------------------------------------------

    def _resume(self) -> None:
        """Reopen the streams the ledger was following, wherever their files went."""
        for stream in self.ledger.streams():
            if stream.source not in self._zones:
                continue
            path = self._locate(stream)
            if path is None:
                log.warning(
                    "%s is gone; %d lines had been read from it",
                    stream.path,
                    stream.counts["lines"],
                )
                stream.state = StreamState.DONE
                self.ledger.save_stream(stream)
                continue
            stream.path = path
            self._attach(stream, rotated=stream.state == StreamState.ROTATED)

    def _locate(self, stream: Stream) -> str | None:
        info = _regular_file(stream.path)
        if info and (info.st_dev, info.st_ino) == (stream.dev, stream.ino):
            return stream.path
        directory = Path(stream.path).parent
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return None
        for entry in entries:
            try:
                info = entry.stat()
            except OSError:
                continue
            if (info.st_dev, info.st_ino) == (stream.dev, stream.ino):
                return entry.path
        return None

    def _attach(
        self, stream: Stream, zone: ZoneInfo | None = None, *, rotated: bool = False
    ) -> _Open | None:
        try:
            fd = os.open(stream.path, os.O_RDONLY)
        except OSError as error:
            log.warning("cannot open %s: %s", stream.path, error)
            return None
        handle = _Open(stream, fd, zone or self._zones.get(stream.source, ZoneInfo("UTC")))
        if rotated:
            handle.rotated_at = self.clock()
        self._open[stream.id] = handle
        return handle

    def scan(self) -> None:
        """Re-expand every glob: pick up new files, notice rotation and truncation, and find
        the files rotated away since the last scan (or while stopped) before they were read."""
        started = self.wall_clock()
        seen: set[int] = set()
        for source in self.sources:
            matched = sorted(glob.glob(source.pattern, recursive=True))
            for path in matched:
                info = _regular_file(path)
                if info is not None:
                    try:
                        self._scan_path(source, path, info, seen)
                    except OSError as error:
                        self._warn_unreadable(path, error)
            self._adopt_missed_rotations(source, set(matched))
        for stream_id, handle in list(self._open.items()):
            if stream_id not in seen and handle.rotated_at is None:
                self._mark_rotated(handle)
        self._seen_at = dict.fromkeys(self._zones, started)
        self.ledger.mark_sources_seen(list(self._zones), int(started * 1e6))

    def _scan_path(self, source: Source, path: str, info: os.stat_result, seen: set[int]) -> None:
        key = (info.st_dev, info.st_ino)
        handle = next((h for h in self._open.values() if (h.stream.dev, h.stream.ino) == key), None)
        if handle is not None:
            seen.add(handle.stream.id)
            handle.stream.path = path
            if self._truncated(handle, info.st_size):
                restarted = self._restart_truncated(handle, source, path, info)
                seen.add(restarted.id)
            return
        for other in self._open.values():
            if other.stream.path == path and other.rotated_at is None:
                self._mark_rotated(other)
        if self._copy_of_open_stream(path):
            return
        stream = self._known_stream(path, info) or self._new_stream(source, path, info)
        opened = self._attach(stream, source.zone)
        if opened is not None:
            seen.add(stream.id)

    def _copy_of_open_stream(self, path: str) -> bool:
        """A new file that starts like a followed one is its copy (copytruncate's first half).

        It is left alone: when the original is truncated its stream is finished from the copy
        (`_find_copy`), and later scans continue the copy from there (`_known_stream`).
        """
        try:
            with Path(path).open("rb") as file:
                head = file.read(FINGERPRINT_BYTES)
        except OSError:
            return False
        directory = Path(path).parent
        return any(
            MIN_ADOPT_FINGERPRINT <= h.stream.fp_len <= len(head)
            and Path(h.stream.path).parent == directory
            and hashlib.blake2b(head[: h.stream.fp_len], digest_size=16).digest() == h.stream.fp
            for h in self._open.values()
        )

    def _truncated(self, handle: _Open, size: int) -> bool:
        stream = handle.stream
        if size < stream.offset or size < stream.fp_len:
            return True
        if _fingerprint(handle.fd, stream.fp_len) != stream.fp:
            return True
        if stream.fp_len < FINGERPRINT_BYTES and size > stream.fp_len:
            stream.fp_len = min(size, FINGERPRINT_BYTES)
            stream.fp = _fingerprint(handle.fd, stream.fp_len)
            self.ledger.save_stream(stream)  # a restart must recognise the file's copy too
        return False

    def _restart_truncated(
        self, handle: _Open, source: Source, path: str, info: os.stat_result
    ) -> Stream:
        """copytruncate: finish the copy of the old content if it is near, then start over."""
        old = handle.stream
        log.info("%s was truncated; reading it again from the start", path)
        copy = self._find_copy(old, exclude=(info.st_dev, info.st_ino))
        self._release(handle)
        if copy is not None:
            copy_path, copy_info = copy
            old.path, old.dev, old.ino = copy_path, copy_info.st_dev, copy_info.st_ino
            copied = self._attach(old)
            if copied is not None:
                self._drain(copied, TailEnd.TAKE)
                self._finish(copied)
        else:
            old.state = StreamState.DONE
            self.ledger.save_stream(old)
        stream = self._new_stream(source, path, info, from_start=True)
        self._attach(stream)
        return stream

    def _find_copy(
        self, stream: Stream, exclude: tuple[int, int]
    ) -> tuple[str, os.stat_result] | None:
        if stream.fp_len < MIN_ADOPT_FINGERPRINT:
            return None
        directory = Path(stream.path).parent
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            info = _regular_file(entry.path)
            if (
                info is None
                or (info.st_dev, info.st_ino) == exclude
                or info.st_size < stream.offset
            ):
                continue
            if self._same_head(entry.path, stream):
                return entry.path, info
        return None

    @staticmethod
    def _same_head(path: str, stream: Stream) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            return _fingerprint(fd, stream.fp_len) == stream.fp
        finally:
            os.close(fd)

    def _known_stream(self, path: str, info: os.stat_result) -> Stream | None:
        """A stream the ledger already has for this file: the same inode (read through another
        glob or path before), or a finished stream's content under a new inode (a copy)."""
        same_inode = self.ledger.stream_by_inode(info.st_dev, info.st_ino)
        if (
            same_inode is not None
            and info.st_size >= same_inode.offset
            and self._same_head(path, same_inode)
        ):
            return self._reuse(same_inode, path, info)
        directory = str(Path(path).parent)
        for stream in self.ledger.streams(states=(StreamState.DONE,)):
            if (
                str(Path(stream.path).parent) == directory
                and stream.fp_len >= MIN_ADOPT_FINGERPRINT
                and info.st_size >= stream.offset
                and self._same_head(path, stream)
            ):
                return self._reuse(stream, path, info)
        return None

    def _reuse(self, stream: Stream, path: str, info: os.stat_result) -> Stream:
        stream.path, stream.dev, stream.ino = path, info.st_dev, info.st_ino
        stream.state = StreamState.ACTIVE
        self.ledger.save_stream(stream)
        return stream

    def _new_stream(
        self, source: Source, path: str, info: os.stat_result, *, from_start: bool = False
    ) -> Stream:
        with Path(path).open("rb") as file:
            head = file.read(FINGERPRINT_BYTES)
        stream = self.ledger.add_stream(
            source.pattern,
            path,
            info.st_dev,
            info.st_ino,
            len(head),
            hashlib.blake2b(head, digest_size=16).digest(),
        )
        first_look = source.pattern not in self._seen_at
        if source.start_at == "end" and first_look and not from_start:
            end = self._end_of_last_line(path, info.st_size)
            self.ledger.commit(stream, Batch(), end, self.mark_written)
        return stream

    def _adopt_missed_rotations(self, source: Source, matched: set[str]) -> None:
        """Read the rotated files of ``source`` written since it was last looked at whose
        identity (device, inode and first bytes) the ledger does not know: a file created and
        rotated away between two looks (or two rotations while stopped) is found by this."""
        since = self._seen_at.get(source.pattern)
        if since is None:  # the first look: files rotated before it are history, not missed
            return
        for path in self._rotated_names(source.pattern) - matched:
            info = _regular_file(path)
            if info is None or info.st_mtime < since - MTIME_SLACK_S or self._followed(path, info):
                continue
            try:
                self._adopt(source, path, info)
            except OSError as error:
                self._warn_unreadable(path, error)

    def _adopt(self, source: Source, path: str, info: os.stat_result) -> None:
        """Follow a rotated file the ledger does not know, from its start, to its end."""
        if path.endswith(COMPRESSED):
            if not self._compressed_copy_of_a_read_file(source, path):
                self._warn_once(
                    path,
                    f"{path} was rotated and compressed before it was read; its lines are not"
                    " read (compressed files are not; delay compression by a rotation, e.g."
                    " logrotate's delaycompress)",
                )
            return
        if self._copy_of_open_stream(path):
            return
        stream = self._known_stream(path, info)
        if stream is None:
            log.warning("%s was rotated away before it was read; reading it now", path)
            stream = self._new_stream(source, path, info, from_start=True)
        stream.state = StreamState.ROTATED
        self.ledger.save_stream(stream)
        self._attach(stream, source.zone, rotated=True)

    @staticmethod
    def _rotated_names(pattern: str) -> set[str]:
        return {
            path for suffix in ROTATED_NAMES for path in glob.glob(pattern + suffix, recursive=True)
        }

    def _compressed_copy_of_a_read_file(self, source: Source, path: str) -> bool:
        """Whether a compressed rotated file starts like a file of ``source`` read before
        (logrotate's delaycompress compresses a file already read at the next rotation)."""
        opener = DECOMPRESSORS.get(Path(path).suffix)
        if opener is None:
            return False
        try:
            with opener(path) as file:
                head = file.read(FINGERPRINT_BYTES)
        except (OSError, EOFError, ValueError):  # truncated or not what its name says
            return False
        directory = Path(path).parent
        return any(
            0 < stream.fp_len <= len(head)
            and Path(stream.path).parent == directory
            and hashlib.blake2b(head[: stream.fp_len], digest_size=16).digest() == stream.fp
            for stream in self.ledger.streams(
                tuple(StreamState), where="source = ?", params=(source.pattern,)
            )
        )

    def _followed(self, path: str, info: os.stat_result) -> bool:
        """Whether this file is open or was read before (the same inode and first bytes)."""
        key = (info.st_dev, info.st_ino)
        if any((h.stream.dev, h.stream.ino) == key for h in self._open.values()):
            return True
        known = self.ledger.stream_by_inode(*key)
        return known is not None and self._same_head(path, known)

    def _warn_unreadable(self, path: str, error: OSError) -> None:
        self._warn_once(
            path,
            f"cannot read {path} ({error.strerror or error}); it is skipped until it can be,"
            " the other files are read",
        )

    def _warn_once(self, path: str, message: str) -> None:
        """Log ``message`` the first time only, for each path."""
        if path not in self._warned:
            self._warned.add(path)
            log.warning("%s", message)

    @staticmethod
    def _end_of_last_line(path: str, size: int) -> int:
        with Path(path).open("rb") as file:
            file.seek(max(0, size - CHUNK_BYTES))
            tail = file.read(size)
        cut = tail.rfind(b"\n")
        return size - len(tail) + cut + 1 if cut >= 0 else 0

    def _mark_rotated(self, handle: _Open) -> None:
        handle.stream.path = self._locate(handle.stream) or handle.stream.path
        handle.rotated_at = self.clock()
        handle.stream.state = StreamState.ROTATED
        self.ledger.save_stream(handle.stream)

    def _release(self, handle: _Open) -> None:
        os.close(handle.fd)
        self._open.pop(handle.stream.id, None)

    def _finish(self, handle: _Open) -> None:
        handle.stream.path = self._locate(handle.stream) or handle.stream.path
        handle.stream.state = StreamState.DONE
        self.ledger.save_stream(handle.stream)
        self._release(handle)

    # ----- reading ---------------------------------------------------------------------

    def poll(self, tail_end: TailEnd = TailEnd.WAIT) -> int:
        """Read what every open file has; rotated files past their wait are finished."""
        before = self.counts.lines
        now = self.clock()
        for handle in list(self._open.values()):
            if handle.rotated_at is None and self._truncated(handle, os.fstat(handle.fd).st_size):
                continue  # truncated or rewritten in place: the next scan starts it over
            rotated_out = (
                handle.rotated_at is not None and now - handle.rotated_at >= self.rotate_wait
            )
            self._drain(handle, TailEnd.TAKE if rotated_out else tail_end)
            if rotated_out:
                self._finish(handle)
        return self.counts.lines - before

    def finish_rotated(self) -> None:
        """Finish every rotated file now (one-shot ingest and shutdown do not wait)."""
        for handle in list(self._open.values()):
            if handle.rotated_at is not None:
                self._drain(handle, TailEnd.TAKE)
                self._finish(handle)

    def lag_bytes(self) -> dict[str, int]:
        """Unread bytes per open file."""
        lag = {}
        for handle in self._open.values():
            try:
                size = os.fstat(handle.fd).st_size
            except OSError:
                continue
            lag[handle.stream.path] = max(0, size - handle.stream.offset)
        return lag

    def close(self) -> None:
        for handle in list(self._open.values()):
            self._release(handle)
        self.chunks.close()

    def _drain(self, handle: _Open, tail_end: TailEnd) -> None:
        """Read, parse and commit everything the file has; a batch whose offset another writer
        moved meanwhile is dropped (`OffsetMoved`), and reading resumes from the stored one."""
        try:
            self._drain_chunks(handle, tail_end)
        except OffsetMoved as error:
            log.error("%s", error)
            self.ledger.reload(handle.stream)
        self.counts.pending_partial.pop(handle.stream.path, None)
        size = os.fstat(handle.fd).st_size
        if size > handle.stream.offset and handle.long_line is None:
            self.counts.pending_partial[handle.stream.path] = size - handle.stream.offset

    def _drain_chunks(self, handle: _Open, tail_end: TailEnd) -> None:
        """Chunks are parsed ahead, in parallel when big, and committed strictly in file order."""
        in_flight: deque[tuple[Callable[[], ParsedChunk], int]] = deque()
        while not self.stop_requested and self._read_ahead(handle, tail_end, in_flight):
            if len(in_flight) > 2 * self.chunks.workers + 1:
                self._commit_next(handle, in_flight)
        # On a stop (or an error), chunks parsed ahead are dropped, not committed: the offset
        # stays before them, so they are read again later; nothing is lost.
        while in_flight and not self.stop_requested:
            self._commit_next(handle, in_flight)

    def _read_ahead(
        self,
        handle: _Open,
        tail_end: TailEnd,
        in_flight: deque[tuple[Callable[[], ParsedChunk], int]],
    ) -> bool:
        """Submit the complete lines of the next chunk; False when there is nothing more."""
        offset = in_flight[-1][1] if in_flight else handle.stream.offset
        data = b"" if handle.long_line else os.pread(handle.fd, self.chunk_bytes, offset)
        cut = data.rfind(b"\n")
        if cut >= 0:
            in_flight.append(
                (self._submit(handle, data[:cut].split(b"\n"), offset), offset + cut + 1)
            )
            return True
        while in_flight:  # what follows needs the committed offset
            self._commit_next(handle, in_flight)
        if handle.long_line is not None:
            return self._skip_long_line(handle, tail_end)
        if len(data) > self.max_line_bytes:
            handle.long_line = _LongLine(offset, data[: self.quarantine.keep_bytes], offset)
            return self._skip_long_line(handle, tail_end)
        if data and len(data) < self.chunk_bytes and self._take_unterminated(data, tail_end):
            in_flight.append((self._submit(handle, [data], offset), offset + len(data)))
        return False

    def _submit(self, handle: _Open, lines: list[bytes], offset: int) -> Callable[[], ParsedChunk]:
        stream = handle.stream
        return self.chunks.submit(ChunkJob(lines, offset, handle.zone, stream.id, stream.path))

    def _commit_next(
        self, handle: _Open, in_flight: deque[tuple[Callable[[], ParsedChunk], int]]
    ) -> None:
        result, end = in_flight.popleft()
        parsed = result()
        self._store(handle, parsed.batch, end, parsed.rejected)

    @staticmethod
    def _take_unterminated(data: bytes, tail_end: TailEnd) -> bool:
        if tail_end is TailEnd.TAKE:
            return True
        if tail_end is TailEnd.IF_COMPLETE:
            try:
                orjson.loads(data.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r"))
            except orjson.JSONDecodeError:
                return False
            return True
        return False

    def _skip_long_line(self, handle: _Open, tail_end: TailEnd) -> bool:
        """Look for the end of an over-long line without holding it in memory."""
        long_line = handle.long_line
        assert long_line is not None
        while True:
            data = os.pread(handle.fd, CHUNK_BYTES, long_line.scanned_to)
            newline = data.find(b"\n")
            if newline >= 0:
                end = long_line.scanned_to + newline + 1
                length = end - 1 - long_line.start
                break
            long_line.scanned_to += len(data)
            if len(data) < CHUNK_BYTES:
                if tail_end is not TailEnd.TAKE:
                    return False
                end = long_line.scanned_to
                length = end - long_line.start
                break
        handle.long_line = None
        reason = f"line longer than max_line_bytes ({self.max_line_bytes})"
        entry = QuarantineEntry(handle.stream.path, long_line.start, reason, long_line.head, length)
        self._store(handle, Batch(lines=1, quarantined=1), end, [entry])
        return True

    def _store(
        self, handle: _Open, batch: Batch, end: int, rejected: list[QuarantineEntry]
    ) -> None:
        """Write the batch's quarantine entries, then commit it with the file's new offset; a
        commit that fails takes the entries back (its retry writes them again)."""
        advanced = end - handle.stream.offset
        written = self.quarantine.write(rejected)
        try:
            self.ledger.commit(handle.stream, batch, end, self.mark_written)
        except BaseException:
            self.quarantine.take_back(written)
            raise
        self.counts.add(batch)
        if self.on_progress is not None:
            self.on_progress(advanced)
        if self.on_commit is not None:
            self.on_commit(batch)
