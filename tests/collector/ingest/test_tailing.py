"""Tailing on real files into a real ledger: rotation, truncation, discovery, partial and long
lines, restarts. Time is a fake clock; the tests call scan() and poll() as the daemon would."""

import bz2
import gzip
import lzma
import os
import shutil
import time
import tracemalloc

import orjson
import pytest

from collector.ingest.tailing import CHUNK_BYTES, TailEnd
from tests.collector.tailing_harness import ROTATE_WAIT, Rig, append, cid, cids, line, lines

MB = 1024 * 1024
# The tailer reads in chunks: whatever the line length, it never holds more than a few.
MEMORY_BOUND = 3 * CHUNK_BYTES + MB


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path)
    yield rig
    rig.close()


@pytest.fixture(params=["logs/trace.jsonl", "logs/trace.jsonl*"], ids=["exact", "glob-matches-old"])
def rot_rig(request, tmp_path):
    """A rig whose pattern either names the live file only or also matches rotated files."""
    rig = Rig(tmp_path, request.param)
    yield rig
    rig.close()


# ----- rename + create ------------------------------------------------------------------


def test_rename_create_rotation_reads_old_file_to_its_end_then_new_one(rot_rig):
    rig = rot_rig
    old_matches = rig.config.sources[0].path.endswith("*")
    old = rig.logs / "trace.jsonl.1"
    append(rig.trace, lines(range(10)))
    rig.cycle()
    assert rig.call_ids() == cids(range(10))

    append(rig.trace, lines(range(10, 15)))  # written but not yet read when the rotation comes
    os.rename(rig.trace, old)
    append(old, lines(range(15, 20)))  # the writer still had the old file open
    append(rig.trace, lines(range(100, 110)))
    rig.cycle()
    assert rig.call_ids() == cids([*range(20), *range(100, 110)])

    # Before rotate_wait has passed the old file is still followed, partial lines waited for.
    rig.clock.advance(ROTATE_WAIT - 0.5)
    append(old, lines(range(20, 25)) + line(25)[:-1])
    append(rig.trace, lines(range(110, 115)))
    rig.cycle()
    assert rig.call_ids() == cids([*range(25), *range(100, 115)])

    # Then it is finished: its unterminated last line is taken, and it is let go.
    rig.clock.advance(0.5)
    rig.cycle()
    assert rig.call_ids() == cids([*range(26), *range(100, 115)])
    assert rig.call_ids_of(old) == cids(range(26))
    assert rig.call_ids_of(rig.trace) == cids(range(100, 115))
    assert rig.streams() == {
        str(old): ("done", old.stat().st_size),
        str(rig.trace): ("active", rig.trace.stat().st_size),
    }

    # Lines written to the old file after the wait are lost, unless the glob matches it: then
    # it is followed again from where it was finished.
    append(old, lines(range(26, 30)))
    append(rig.trace, lines(range(115, 120)))
    rig.cycle()
    late = range(26, 30) if old_matches else []
    assert rig.call_ids() == cids([*range(26), *late, *range(100, 120)])
    assert rig.totals()["lines"] == 46 + len(late)
    assert rig.streams()[str(old)][0] == ("active" if old_matches else "done")


def test_rotated_file_waits_for_its_last_line_between_scans(rig):
    """Polls after a rotation but before the next rescan keep reading the old inode."""
    old = rig.logs / "trace.jsonl.1"
    append(rig.trace, lines(range(5)) + line(5)[:17])
    rig.cycle()
    os.rename(rig.trace, old)
    append(old, line(5)[17:] + lines(range(6, 8)))
    assert rig.tailer.poll() == 3
    append(rig.trace, lines(range(50, 53)))
    assert rig.tailer.poll() == 0  # the new file is found by the next scan
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids([*range(8), *range(50, 53)])
    assert rig.totals()["lines"] == 11


def test_two_rotations_between_polls(rig):
    """trace -> .1 and the next trace -> .1 again after .1 -> .2, each finished once."""
    one, two = rig.logs / "trace.jsonl.1", rig.logs / "trace.jsonl.2"
    append(rig.trace, lines(range(10)))
    rig.cycle()
    os.rename(rig.trace, one)
    append(rig.trace, lines(range(10, 20)))
    rig.tailer.scan()
    append(rig.trace, lines(range(20, 25)))
    os.rename(one, two)
    os.rename(rig.trace, one)
    append(rig.trace, lines(range(25, 30)))
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids(range(30))
    assert rig.call_ids_of(two) == cids(range(10))
    assert rig.call_ids_of(one) == cids(range(10, 25))
    assert rig.call_ids_of(rig.trace) == cids(range(25, 30))
    assert rig.totals()["lines"] == 30


# ----- copytruncate and truncation ------------------------------------------------------


@pytest.mark.parametrize("unread_before_copy", [False, True], ids=["all-read", "unread-copied"])
@pytest.mark.parametrize("written_after", [3, 80], ids=["short-rewrite", "longer-rewrite"])
@pytest.mark.parametrize("poll_first", [False, True], ids=["scan-first", "poll-first"])
def test_copytruncate_finishes_the_copy_then_reads_the_file_again(
    rot_rig, unread_before_copy, written_after, poll_first
):
    rig = rot_rig
    copy_matches = rig.config.sources[0].path.endswith("*")
    copy = rig.logs / "trace.jsonl.1"
    append(rig.trace, lines(range(40)))
    rig.cycle()
    last = 40
    if unread_before_copy:
        append(rig.trace, lines(range(40, 50)))
        last = 50
    shutil.copyfile(rig.trace, copy)
    os.truncate(rig.trace, 0)
    new = range(1000, 1000 + written_after)
    append(rig.trace, lines(new))  # the writer goes on at the start of the truncated file
    if poll_first:  # the daemon polls more often than it rescans
        rig.tailer.poll()
    rig.cycle()
    assert rig.call_ids() == cids([*range(last), *new])
    assert rig.call_ids_of(copy) == cids(range(last))
    assert rig.call_ids_of(rig.trace) == cids(new)
    assert rig.streams() == {
        # a copy the glob matches is followed on (from its end) like any matching file
        str(copy): ("active" if copy_matches else "done", copy.stat().st_size),
        str(rig.trace): ("active", rig.trace.stat().st_size),
    }

    append(rig.trace, lines(range(2000, 2005)))
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids([*range(last), *new, *range(2000, 2005)])
    assert rig.totals() == {
        "lines": last + written_after + 5,
        "events": last + written_after + 5,
        "quarantined": 0,
        "skipped": 0,
    }
    assert rig.quarantined() == []


def test_copy_matched_by_the_glob_before_the_truncation_is_not_read_twice(tmp_path):
    """copytruncate is not atomic: a rescan can see the copy before the original is emptied."""
    rig = Rig(tmp_path, "logs/trace.jsonl*")
    copy = rig.logs / "trace.jsonl.1"
    append(rig.trace, lines(range(40)))
    rig.cycle()
    append(rig.trace, lines(range(40, 45)))
    shutil.copyfile(rig.trace, copy)
    rig.cycle()
    os.truncate(rig.trace, 0)
    append(rig.trace, lines(range(1000, 1010)))
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids([*range(45), *range(1000, 1010)])
    assert rig.totals()["lines"] == 55
    rig.close()


@pytest.mark.parametrize("written_after", [3, 80], ids=["short-rewrite", "longer-rewrite"])
@pytest.mark.parametrize("poll_first", [False, True], ids=["scan-first", "poll-first"])
def test_plain_truncation_reads_the_file_again_from_the_start(rig, written_after, poll_first):
    append(rig.trace, lines(range(40)))
    rig.cycle()
    old_size = rig.trace.stat().st_size
    with rig.trace.open("wb"):  # truncate in place, no copy kept
        pass
    new = range(1000, 1000 + written_after)
    append(rig.trace, lines(new))
    if poll_first:
        rig.tailer.poll()
    rig.cycle()
    assert rig.call_ids() == cids([*range(40), *new])
    rows = rig.ledger.db.execute("SELECT path, state, offset FROM streams ORDER BY id").fetchall()
    assert rows == [
        (str(rig.trace), "done", old_size),
        (str(rig.trace), "active", rig.trace.stat().st_size),
    ]
    assert rig.totals()["lines"] == 40 + written_after
    assert rig.quarantined() == []


# ----- discovery ------------------------------------------------------------------------


@pytest.mark.parametrize("start_at", ["beginning", "end"])
def test_file_created_after_the_first_scan_is_read_from_its_beginning(tmp_path, start_at):
    rig = Rig(tmp_path, "logs/app/trace-*.jsonl", start_at=start_at)
    rig.cycle()  # neither the file nor its directory exist yet
    assert rig.streams() == {}
    (rig.logs / "app").mkdir()
    later = rig.logs / "app" / "trace-1.jsonl"
    append(later, lines(range(5)))
    assert rig.tailer.poll() == 0  # unknown until the next scan
    rig.cycle()
    append(later, lines(range(5, 8)))
    rig.cycle()
    assert rig.call_ids() == cids(range(8))
    assert rig.totals()["lines"] == 8
    rig.close()


def test_glob_follows_every_matching_file_and_only_those(tmp_path):
    rig = Rig(tmp_path, "logs/**/*.jsonl")
    a, b, c = rig.logs / "a.jsonl", rig.logs / "b.jsonl", rig.logs / "sub" / "c.jsonl"
    c.parent.mkdir()
    (rig.logs / "dir.jsonl").mkdir()  # matches the glob but is no file
    append(rig.logs / "notes.txt", lines(range(900, 905)))  # does not match
    append(a, lines(range(0, 10)))
    append(b, lines(range(10, 20)))
    append(c, lines(range(20, 30)))
    rig.cycle()
    d = rig.logs / "sub" / "d.jsonl"
    append(d, lines(range(30, 40)))
    for offset, path in enumerate((a, b, c)):
        append(path, lines(range(100 + 10 * offset, 105 + 10 * offset)))
    rig.cycle()
    assert rig.call_ids_of(a) == cids([*range(0, 10), *range(100, 105)])
    assert rig.call_ids_of(b) == cids([*range(10, 20), *range(110, 115)])
    assert rig.call_ids_of(c) == cids([*range(20, 30), *range(120, 125)])
    assert rig.call_ids_of(d) == cids(range(30, 40))
    assert sum(rig.call_ids().values()) == 55
    assert rig.totals()["lines"] == 55
    rig.close()


# ----- line framing ---------------------------------------------------------------------


def test_partial_last_line_is_parsed_only_once_its_newline_arrives(rig):
    second = line(1)
    append(rig.trace, line(0) + second[:50])
    rig.cycle()
    assert rig.call_ids() == cids([0])
    assert rig.tailer.counts.pending_partial == {str(rig.trace): 50}

    append(rig.trace, second[50:-1])  # the whole JSON value, still without its newline
    rig.tailer.poll(TailEnd.WAIT)
    rig.cycle()
    assert rig.call_ids() == cids([0])
    assert rig.tailer.counts.pending_partial == {str(rig.trace): len(second) - 1}

    append(rig.trace, b"\n")
    rig.tailer.poll(TailEnd.WAIT)
    assert rig.call_ids() == cids([0, 1])
    assert rig.tailer.counts.pending_partial == {}
    assert rig.totals() == {"lines": 2, "events": 2, "quarantined": 0, "skipped": 0}
    assert rig.quarantined() == []


def test_one_shot_ingest_takes_an_unterminated_line_only_when_it_is_complete_json(rig):
    append(rig.trace, line(0) + line(1)[:-1])
    rig.tailer.scan()
    rig.tailer.poll(TailEnd.IF_COMPLETE)
    assert rig.call_ids() == cids([0, 1])
    append(rig.trace, b"\n" + line(2)[:40])
    rig.tailer.poll(TailEnd.IF_COMPLETE)
    # the late newline ends an empty line (skipped); line 2 is not JSON yet and waits
    assert rig.call_ids() == cids([0, 1])
    assert rig.tailer.counts.pending_partial == {str(rig.trace): 40}
    append(rig.trace, line(2)[40:])
    rig.tailer.poll(TailEnd.IF_COMPLETE)
    assert rig.call_ids() == cids([0, 1, 2])
    assert rig.totals() == {"lines": 4, "events": 3, "quarantined": 0, "skipped": 1}


def test_crlf_and_bom(rig):
    data = b"\xef\xbb\xbf" + lines(range(3), b"\r\n") + b"\r\n" + lines(range(3, 6), b"\r\n")
    mid_crlf = data.index(b"\r\n", data.index(cid(1).encode())) + 1
    append(rig.trace, data[:mid_crlf])  # ends between the \r and the \n of line 1
    rig.cycle()
    assert rig.call_ids() == cids([0])
    append(rig.trace, data[mid_crlf:])
    rig.cycle()
    rows = rig.ledger.db.execute("SELECT call_id, model, tenant_id FROM calls ORDER BY id")
    assert rows.fetchall() == [
        (cid(n), orjson.loads(line(n))["model"], f"tenant-{n % 7}") for n in range(6)
    ]
    assert rig.totals() == {"lines": 7, "events": 6, "quarantined": 0, "skipped": 1}
    assert rig.quarantined() == []


def _long_line(size):
    return b'{"call_id":"huge","pad":"' + b"x" * size + b'"}\n'


@pytest.mark.parametrize("megabytes", [10, 40])
def test_very_long_line_is_quarantined_with_bounded_memory(rig, megabytes):
    """The peak is the same for 10 and 40 MB: a few read chunks, never the line."""
    huge = _long_line(megabytes * MB)
    append(rig.trace, line(0) + huge + lines(range(1, 4)))
    tracemalloc.start()
    try:
        rig.cycle()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND
    assert rig.call_ids() == cids(range(4))
    (entry,) = rig.quarantined()
    assert entry["source"] == str(rig.trace)
    assert entry["offset"] == len(line(0))
    assert entry["reason"] == "line longer than max_line_bytes (1048576)"
    assert entry["line_bytes"] == len(huge) - 1  # without its newline, like any other entry
    assert entry["line"] == huge[:256].decode()
    assert rig.totals() == {"lines": 5, "events": 4, "quarantined": 1, "skipped": 0}


def test_long_line_written_in_pieces_is_quarantined_once(rig):
    huge = _long_line(10 * MB)
    append(rig.trace, line(0) + huge[: 6 * MB])
    rest = huge[6 * MB :] + lines(range(1, 3))  # made before tracing: only the tailer counts
    tracemalloc.start()
    try:
        rig.cycle()
        rig.cycle()
        assert rig.call_ids() == cids([0])
        assert rig.quarantined() == []
        append(rig.trace, rest)
        rig.cycle()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND
    assert rig.call_ids() == cids(range(3))
    (entry,) = rig.quarantined()
    assert (entry["offset"], entry["line_bytes"]) == (len(line(0)), len(huge) - 1)
    assert rig.totals() == {"lines": 4, "events": 3, "quarantined": 1, "skipped": 0}


def test_line_over_the_limit_but_within_one_chunk_is_quarantined(tmp_path):
    rig = Rig(tmp_path, max_line_bytes=4096)
    long = _long_line(5000)
    append(rig.trace, line(0) + long + line(1))
    rig.cycle()
    assert rig.call_ids() == cids([0, 1])
    (entry,) = rig.quarantined()
    assert entry["reason"] == "line longer than max_line_bytes (4096)"
    assert (entry["offset"], entry["line_bytes"]) == (len(line(0)), len(long) - 1)
    assert rig.totals() == {"lines": 3, "events": 2, "quarantined": 1, "skipped": 0}
    rig.close()


# ----- start position and restarts ------------------------------------------------------


def test_start_at_end_skips_what_was_there_at_start_up_only(tmp_path):
    rig = Rig(tmp_path, start_at="end")
    append(rig.trace, lines(range(10)) + line(10)[:30])
    rig.cycle()
    assert rig.call_ids() == cids([])
    append(rig.trace, line(10)[30:] + lines(range(11, 15)))
    rig.cycle()
    # the line being written at start-up is completed afterwards, so it is read
    assert rig.call_ids() == cids(range(10, 15))
    rig.restart()  # a known file is resumed where it was, not skipped to its end again
    append(rig.trace, lines(range(15, 20)))
    rig.cycle()
    assert rig.call_ids() == cids(range(10, 20))
    assert rig.totals()["lines"] == 10
    rig.close()


def test_restart_resumes_at_the_committed_offset(rig):
    append(rig.trace, lines(range(10)))
    rig.cycle()
    append(rig.trace, lines(range(10, 20)) + line(20)[:33])
    rig.restart()
    rig.cycle()
    assert rig.call_ids() == cids(range(20))
    append(rig.trace, line(20)[33:])
    rig.restart()
    rig.cycle()
    rig.restart()
    rig.cycle()
    assert rig.call_ids() == cids(range(21))
    assert rig.totals() == {"lines": 21, "events": 21, "quarantined": 0, "skipped": 0}


def test_file_rotated_while_stopped_is_finished_from_its_new_name(rig):
    old = rig.logs / "trace.jsonl.1"
    append(rig.trace, lines(range(10)))
    rig.cycle()
    rig.close()
    append(rig.trace, lines(range(10, 15)))
    os.rename(rig.trace, old)
    append(old, lines(range(15, 17)))
    append(rig.trace, lines(range(100, 105)))
    rig.restart()
    rig.cycle()
    assert rig.call_ids() == cids([*range(17), *range(100, 105)])
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids_of(old) == cids(range(17))
    assert rig.call_ids_of(rig.trace) == cids(range(100, 105))
    assert rig.streams() == {
        str(old): ("done", old.stat().st_size),
        str(rig.trace): ("active", rig.trace.stat().st_size),
    }
    assert rig.totals()["lines"] == 22


def test_stopped_during_rotate_wait_finishes_the_old_file_after_restart(rig):
    old = rig.logs / "trace.jsonl.1"
    append(rig.trace, lines(range(10)))
    rig.cycle()
    os.rename(rig.trace, old)
    append(rig.trace, lines(range(100, 105)))
    rig.cycle()  # the rotation is noticed and persisted
    rig.close()
    append(old, lines(range(10, 13)))
    rig.restart()
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids([*range(13), *range(100, 105)])
    assert rig.streams()[str(old)][0] == "done"
    assert rig.totals()["lines"] == 18


def test_file_deleted_while_stopped_is_given_up_and_its_successor_read(rig):
    append(rig.trace, lines(range(10)))
    rig.cycle()
    rig.close()
    rig.trace.unlink()
    append(rig.trace, lines(range(100, 103)))
    rig.restart()
    rig.cycle()
    assert rig.call_ids() == cids([*range(10), *range(100, 103)])
    rows = rig.ledger.db.execute("SELECT path, state, offset FROM streams ORDER BY id").fetchall()
    assert rows == [
        (str(rig.trace), "done", len(lines(range(10)))),
        (str(rig.trace), "active", rig.trace.stat().st_size),
    ]
    assert rig.totals()["lines"] == 13


def _logrotate(rig, count: int) -> None:
    """logrotate's default scheme, ``rotate count``: .N-1 -> .N ... trace -> .1."""
    for n in range(count - 1, 0, -1):
        if (rig.logs / f"trace.jsonl.{n}").exists():
            os.rename(rig.logs / f"trace.jsonl.{n}", rig.logs / f"trace.jsonl.{n + 1}")
    os.rename(rig.trace, rig.logs / "trace.jsonl.1")


def test_two_rotations_while_stopped_read_the_middle_file_too(rig):
    """The reviewer's case: the file created and rotated away during the downtime was never
    read (5,000 of 40,000 lines lost). It is found by identity among the rotated names."""
    append(rig.trace, lines(range(10_000)))
    rig.cycle()
    rig.close()
    append(rig.trace, lines(range(10_000, 15_000)))
    _logrotate(rig, 3)
    append(rig.trace, lines(range(15_000, 20_000)))  # the middle file, never seen
    _logrotate(rig, 3)
    append(rig.trace, lines(range(20_000, 40_000)))
    rig.restart()
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids(range(40_000))
    assert rig.call_ids_of(rig.logs / "trace.jsonl.1") == cids(range(15_000, 20_000))
    assert rig.totals()["lines"] == 40_000
    rig.restart()  # and known from then on: nothing is read twice
    rig.cycle()
    assert rig.totals()["lines"] == 40_000


def test_file_created_and_rotated_away_between_two_scans_is_read(rig):
    append(rig.trace, lines(range(10)))
    rig.cycle()
    _logrotate(rig, 5)
    append(rig.trace, lines(range(10, 20)))  # never scanned while it was trace.jsonl
    _logrotate(rig, 5)
    append(rig.trace, lines(range(20, 25)))
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids(range(25))
    assert rig.totals()["lines"] == 25


def test_rotated_files_older_than_the_first_look_are_not_read(tmp_path):
    """At the first start the pattern names the live file: earlier rotations are history."""
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "trace.jsonl.1", lines(range(100, 110)))
    append(logs / "trace.jsonl-20261101", lines(range(110, 120)))
    for old in ("trace.jsonl.1", "trace.jsonl-20261101"):  # rotated an hour before the start
        os.utime(logs / old, (time.time() - 3600,) * 2)
    append(logs / "trace.jsonl", lines(range(10)))
    rig = Rig(tmp_path)
    rig.cycle()
    rig.cycle()
    rig.restart()
    rig.cycle()
    assert rig.call_ids() == cids(range(10))
    rig.close()


def test_rotated_and_compressed_while_stopped_is_named_in_a_warning(rig, caplog):
    append(rig.trace, lines(range(10)))
    rig.cycle()
    rig.close()
    _logrotate(rig, 3)
    append(rig.trace, lines(range(10, 15)))  # compressed before it was ever read
    _logrotate(rig, 3)
    append(rig.trace, lines(range(15, 20)))
    _logrotate(rig, 3)
    append(rig.trace, lines(range(20, 25)))
    middle = rig.logs / "trace.jsonl.2"
    compressed = rig.logs / "trace.jsonl.2.gz"
    compressed.write_bytes(gzip.compress(middle.read_bytes()))
    middle.unlink()
    rig.restart()
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    rig.cycle()
    assert rig.call_ids() == cids([*range(10), *range(15, 25)])
    warnings = [r.getMessage() for r in caplog.records if "and compressed" in r.getMessage()]
    assert len(warnings) == 1 and str(compressed) in warnings[0]


def test_a_file_rotated_away_after_the_last_scan_is_read_after_a_restart(rig):
    """The last look is the last scan, not the last commit: a file made and rotated away
    between a scan and the stop (a commit came later) is read after the restart."""
    append(rig.trace, lines(range(10)))
    now = time.time()
    rig.tailer.wall_clock = lambda: now - 4
    rig.cycle()
    missed = rig.logs / "trace.jsonl.1"
    append(missed, lines(range(10, 20)))
    os.utime(missed, (now - 3.5, now - 3.5))
    append(rig.trace, lines(range(20, 30)))
    rig.tailer.poll()  # a commit after the scan
    rig.restart()
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids(range(30))


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_delaycompress_of_a_file_read_before_gives_no_warning(rig, caplog, suffix):
    """logrotate's delaycompress: .1 is compressed at the next rotation, after it was read."""
    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[suffix]
    one = rig.logs / "trace.jsonl.1"
    append(rig.trace, lines(range(10)))
    rig.cycle()
    os.rename(rig.trace, one)
    append(rig.trace, lines(range(10, 20)))
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    (rig.logs / f"trace.jsonl.2{suffix}").write_bytes(compress(one.read_bytes()))
    one.unlink()
    os.rename(rig.trace, one)
    append(rig.trace, lines(range(20, 30)))
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids(range(30))
    assert not [r for r in caplog.records if "and compressed" in r.getMessage()]


def test_rotated_files_below_a_recursive_glob_are_found(tmp_path):
    rig = Rig(tmp_path, "logs/**/trace.jsonl")
    deep = rig.logs / "a" / "b"
    deep.mkdir(parents=True)
    live = deep / "trace.jsonl"
    append(live, lines(range(10)))
    rig.cycle()
    os.rename(live, deep / "trace.jsonl.1")
    append(live, lines(range(10, 20)))  # never scanned under its live name
    os.rename(deep / "trace.jsonl.1", deep / "trace.jsonl.2")
    os.rename(live, deep / "trace.jsonl.1")
    append(live, lines(range(20, 25)))
    rig.cycle()
    rig.clock.advance(ROTATE_WAIT)
    rig.cycle()
    assert rig.call_ids() == cids(range(25))
    rig.close()
