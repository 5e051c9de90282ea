"""The quarantine file: one JSON line per rejected trace line, with where it came from and why.

The line is kept under the same content policy as the ledger: prompts and other content fields
are dropped, redacted or hashed, so a rejected line leaks nothing an accepted one would not.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from collector import files
from collector.errors import describe
from collector.ingest.content import ContentPolicy
from collector.ingest.parsing import BOM
from schemas.errors import CollectorError


class QuarantineError(CollectorError):
    """The quarantine file cannot be written; the message names it."""


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    path: str
    offset: int
    reason: str
    line: bytes
    line_bytes: int


class QuarantineFile:
    """Appends entries and syncs them before the batch that rejected them commits.

    A crash between the two can write an entry twice, never lose one; ``(source, offset)``
    identifies a line. The tailer and a receiver share one, from their own threads.
    """

    def __init__(self, path: Path, keep_bytes: int, content: ContentPolicy) -> None:
        self.path = path
        self.keep_bytes = keep_bytes
        self.content = content
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._last: tuple[int, int] | None = None
        """Where the last write began and ended: `take_back` cuts only that write."""

    def open(self) -> None:
        """Open (create) the file now, so that a writer refuses to start on a quarantine it
        cannot use; raises `QuarantineError`."""
        if self._file is not None:
            return
        try:
            files.make_dirs(self.path.parent)
            self._file = files.open_private(self.path, "ab")
        except OSError as error:
            raise self._error(error) from None

    def write(self, entries: list[QuarantineEntry]) -> int | None:
        """Append and sync the entries; the file's size before them (for `take_back`), None
        when there are none. On an error (a full disk) the file is cut back to that size, so
        that a retry does not follow half a line. Raises `QuarantineError`."""
        if not entries:
            return None
        with self._lock:
            self.open()
            assert self._file is not None
            start = self._file.seek(0, os.SEEK_END)
            try:
                self._append(self._file, entries)
            except OSError as error:
                file, self._file = self._file, None
                with contextlib.suppress(OSError):
                    file.close()  # its buffer cannot be written either
                with contextlib.suppress(OSError):
                    os.truncate(self.path, start)
                raise self._error(error) from None
            self._last = (start, self._file.tell())
        return start

    def take_back(self, size: int | None) -> None:
        """Cut the file back to ``size`` (what `write` returned): the batch whose entries these
        were was not committed, and its retry writes them again. Entries another batch wrote
        after them stay, and so do these then (written twice, never lost)."""
        with self._lock:
            if size is None or self._file is None or self._last is None:
                return
            start, end = self._last
            with contextlib.suppress(OSError):
                if start == size and os.fstat(self._file.fileno()).st_size == end:
                    os.ftruncate(self._file.fileno(), size)
            self._last = None

    def _error(self, error: OSError) -> QuarantineError:
        named = OSError(error.errno, error.strerror, error.filename or str(self.path))
        return QuarantineError(f"cannot write the quarantine file: {describe(named)}")

    def _append(self, file: IO[bytes], entries: list[QuarantineEntry]) -> None:
        now = time.time()
        for entry in entries:
            line, redacted = self._kept(entry)
            record = {
                "time": now,
                "source": entry.path,
                "offset": entry.offset,
                "reason": entry.reason,
                "line_bytes": entry.line_bytes,
                "line": line,
                "line_redacted": redacted,
            }
            file.write(orjson.dumps(record) + b"\n")
        file.flush()
        os.fsync(file.fileno())

    def _kept(self, entry: QuarantineEntry) -> tuple[str, bool]:
        """The line cut to ``keep_bytes``: a JSON object with its content fields as the ledger
        keeps them, or other text PII-redacted (True: it cannot be parsed to drop a prompt).
        Cut after redaction, so an address or number is never cut in two before it is seen."""
        try:
            data = orjson.loads(entry.line.removeprefix(BOM))
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            kept = orjson.dumps(self.content.apply(data))
            redacted = False
        else:
            text = entry.line.decode("utf-8", "backslashreplace")
            text, redacted = self.content.scrub(text, len(entry.line) < entry.line_bytes)
            kept = text.encode()
        return kept[: self.keep_bytes].decode("utf-8", "ignore"), redacted

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
