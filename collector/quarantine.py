"""The quarantine file: one JSON line per rejected trace line, with where it came from and why."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from collector.errors import CollectorError, describe


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
    identifies a line.
    """

    def __init__(self, path: Path, keep_bytes: int) -> None:
        self.path = path
        self.keep_bytes = keep_bytes
        self._file = None

    def check_writable(self) -> None:
        """Create the file (and its directory) now, so that a writer refuses to start on a
        quarantine it could not use; raises `QuarantineError`."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.open("ab").close()
        except OSError as error:
            raise QuarantineError(f"cannot write the quarantine file: {describe(error)}") from None

    def write(self, entries: list[QuarantineEntry]) -> None:
        if not entries:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        now = time.time()
        for entry in entries:
            record = {
                "time": now,
                "source": entry.path,
                "offset": entry.offset,
                "reason": entry.reason,
                "line_bytes": entry.line_bytes,
                "line": entry.line[: self.keep_bytes].decode("utf-8", "backslashreplace"),
            }
            self._file.write(orjson.dumps(record) + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
