"""Property: however the writer splits its lines and whenever the tailer polls, scans, restarts
or the file is rotated (rename+create or copytruncate), every line reaches the ledger once."""

import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.collector.tailing_harness import ROTATE_WAIT, Rig, cids, line

BOM = b"\xef\xbb\xbf"


class Writer:
    """An application appending trace lines to logs/trace.jsonl in arbitrary pieces."""

    def __init__(self, rig: Rig, rng: random.Random) -> None:
        self.rig = rig
        self.rng = rng
        self.count = 0  # lines started; each is finished before the end
        self.pending = b""  # the rest of the line being written
        self.rotations = 0
        self.fd = -1
        self._open_new()

    def _open_new(self) -> None:
        self.fd = os.open(self.rig.trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.fresh = True  # a BOM may start the file
        self.truncated_unseen = False  # copied and truncated, not looked at since

    def _next_line(self) -> bytes:
        data = line(self.count, b"\r\n" if self.rng.random() < 0.3 else b"\n")
        if self.fresh and self.rng.random() < 0.5:
            data = BOM + data
        self.fresh = False
        self.count += 1
        return data

    def write(self, size: int) -> None:
        """Append ``size`` bytes, cut anywhere: inside a line, a CRLF or a BOM."""
        while size > 0:
            if not self.pending:
                self.pending = self._next_line()
            piece, self.pending = self.pending[:size], self.pending[size:]
            os.write(self.fd, piece)
            size -= len(piece)

    def finish_line(self) -> None:
        self.write(len(self.pending))

    def _next_rotated_name(self) -> Path:
        self.rotations += 1
        return self.rig.logs / f"trace.jsonl.{self.rotations}"

    def rename_create(self, late_bytes: int, poll_between: bool) -> None:
        """logrotate's default: rename; the writer ends its line (and a few more) in the old
        file before it reopens the path, which creates a new file."""
        # Rotated before the first look, a file is history; copied, truncated and then renamed
        # before any look (both of logrotate's modes at once), its identity is lost.
        if self.truncated_unseen or not self.rig.ledger.sources_seen():
            self.rig.tailer.scan()
        os.rename(self.rig.trace, self._next_rotated_name())
        self.write(late_bytes)
        if poll_between:
            self.rig.tailer.poll()
        self.finish_line()
        os.close(self.fd)
        self._open_new()

    def copytruncate(self) -> None:
        """logrotate's copytruncate between two writes; the writer goes on at offset 0."""
        self.finish_line()
        # A file's identity is the fingerprint of its first bytes taken at a scan or a poll;
        # one that is copied and truncated before it was ever looked at cannot be recognised.
        self.rig.tailer.scan()
        shutil.copyfile(self.rig.trace, self._next_rotated_name())
        os.truncate(self.rig.trace, 0)
        self.fresh, self.truncated_unseen = True, True

    def close(self) -> None:
        os.close(self.fd)


_WRITE = st.tuples(st.just("write"), st.integers(1, 2500) | st.integers(1, 12))
OPS = st.one_of(
    _WRITE,
    _WRITE,
    st.sampled_from([("poll",), ("scan",), ("cycle",), ("poll",), ("restart",)]),
    st.tuples(st.just("tick"), st.sampled_from([0.5, ROTATE_WAIT - 0.5, ROTATE_WAIT, 7.0])),
    st.tuples(st.just("rotate"), st.integers(0, 600), st.booleans()),
    st.just(("copytruncate",)),
)


def _run(rig: Rig, writer: Writer, ops) -> None:
    for op in ops:
        match op:
            case ("write", size):
                writer.write(size)
            case ("poll",):
                rig.tailer.poll()
            case ("scan",):
                rig.tailer.scan()
                writer.truncated_unseen = False
            case ("cycle",):
                rig.cycle()
                writer.truncated_unseen = False
            case ("restart",):
                rig.restart()
            case ("tick", seconds):
                rig.clock.advance(seconds)
            case ("rotate", late_bytes, poll_between):
                writer.rename_create(late_bytes, poll_between)
            case ("copytruncate",):
                writer.copytruncate()
    writer.finish_line()
    for _ in range(2):
        rig.cycle()
        rig.clock.advance(ROTATE_WAIT)
        rig.cycle()


@pytest.mark.parametrize("pattern", ["logs/trace.jsonl", "logs/trace.jsonl*"])
@settings(max_examples=50, deadline=None)
@given(ops=st.lists(OPS, min_size=10, max_size=100), seed=st.integers(0, 2**32 - 1))
def test_every_written_line_is_in_the_ledger_once(pattern, ops, seed):
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), pattern)
        writer = Writer(rig, random.Random(seed))
        try:
            _run(rig, writer, ops)
            assert rig.call_ids() == cids(range(writer.count))
            assert rig.totals() == {
                "lines": writer.count,
                "events": writer.count,
                "quarantined": 0,
                "skipped": 0,
            }
        finally:
            writer.close()
            rig.close()
