"""The trace writer of applications: what it writes is what the collector reads, line by line
from many threads and processes, across rotation, and failures never reach the app."""

import errno
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import trace
from collector.clock import TimeRange
from collector.ingest.content import CONTENT_FIELDS, ContentPolicy
from collector.ingest.parsing import LineParser
from collector.ingest.pricing import Pricer
from collector.ledger.events import CALL_COLUMNS
from collector.trace import PIPE_BUF, RESERVED, TraceWriter
from schemas import events
from schemas.config import ContentConfig, TimestampsConfig
from schemas.events import LlmCall, without_control_characters
from tests.collector.cli.test_main import cli

UTC_ZONE = ZoneInfo("UTC")
NOW = datetime.now(UTC)
PARSER = LineParser(
    Pricer({}),
    ContentPolicy(ContentConfig()),
    TimeRange.from_config(TimestampsConfig(), lambda: int(NOW.timestamp() * 1e6)),
)
DIMENSIONS = {"provider", "task_type", "operation", "error_type", "tenant_id", "agent_name"}


def written(path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def row(line: bytes) -> dict:
    parsed = PARSER.parse(line, UTC_ZONE, 1)
    assert parsed.kind == "call"
    return dict(zip(CALL_COLUMNS, parsed.row, strict=True))


# ----- light to import -----------------------------------------------------------------


def modules_loaded_by(module: str) -> set[str]:
    """The modules ``import module`` adds in a fresh interpreter."""
    probe = (
        "import json, sys; before = set(sys.modules); "
        f"import {module}; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_importing_the_writer_loads_only_the_standard_library_and_orjson():
    loaded = modules_loaded_by("collector.trace")
    packages = {name.split(".")[0] for name in loaded}
    assert packages - set(sys.stdlib_module_names) == {"collector", "orjson"}
    assert {name for name in loaded if name.startswith("collector")} == {
        "collector",
        "collector.trace",
    }
    assert "sqlite3" not in loaded


# ----- record() writes what the collector reads ----------------------------------------

texts = st.text(max_size=trace.MAX_TEXT)
counts = st.integers(0, trace.MAX_TOKENS)


def amounts(limit):
    return st.floats(0, limit, allow_nan=False) | st.integers(0, int(limit))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
extra_keys = st.text(min_size=1).filter(
    lambda k: (
        k not in RESERVED
        and k not in CONTENT_FIELDS
        and not k.startswith(("gen_ai.prompt.", "gen_ai.completion."))
    )
)


@st.composite
def call_fields(draw):
    """Any fields record() accepts: each optional field present or not."""
    fields = {}
    for name in DIMENSIONS | {"user_id", "session_id", "trace_id", "call_id"}:
        fields[name] = draw(st.none() | texts)
    fields["error_type"] = draw(st.none() | texts.filter(bool))
    for name in ("output_tokens", "total_tokens", "reasoning_tokens"):
        fields[name] = draw(st.none() | counts)
    inputs = draw(st.none() | counts)
    fields["input_tokens"] = inputs
    if inputs is not None:
        cache_read = draw(st.none() | st.integers(0, inputs))
        fields["cache_read_tokens"] = cache_read
        fields["cache_write_tokens"] = draw(st.none() | st.integers(0, inputs - (cache_read or 0)))
    fields["cost_usd"] = draw(st.none() | amounts(trace.MAX_COST_USD))
    fields["latency_ms"] = draw(st.none() | amounts(trace.MAX_LATENCY_MS))
    fields["quality_score"] = draw(st.none() | amounts(1))
    fields["status"] = draw(st.sampled_from([None, "ok", "error"]))
    fields["timestamp"] = draw(
        st.none()
        | st.datetimes(
            min_value=datetime(1971, 1, 1),
            max_value=NOW.replace(tzinfo=None) - timedelta(days=1),
            timezones=st.timezones(),
        )
    )
    fields["extra"] = draw(st.none() | st.dictionaries(extra_keys, json_values, max_size=4))
    return fields


def expected_row(model: str, fields: dict) -> dict:
    """What the collector makes of the fields, per docs/trace-format.md."""
    expected = {name: fields[name] for name in ("user_id", "session_id", "trace_id", "call_id")}
    for name in DIMENSIONS:
        value = fields[name]
        expected[name] = None if value is None else without_control_characters(value)
    expected["model"] = without_control_characters(model)
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "latency_ms",
        "quality_score",
    ):
        expected[name] = fields.get(name)
    total, inputs, outputs = fields["total_tokens"], fields["input_tokens"], fields["output_tokens"]
    if total is None and (inputs is not None or outputs is not None):
        total = (inputs or 0) + (outputs or 0)
    expected["total_tokens"] = total
    expected["status"] = fields["status"] or ("error" if fields["error_type"] is not None else "ok")
    if fields["cost_usd"] is not None:
        expected["cost_usd"] = fields["cost_usd"]
    expected["extra"] = fields["extra"] or None
    expected["prompt"] = expected["response"] = None
    return expected


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.text(min_size=1, max_size=trace.MAX_TEXT), fields=call_fields())
def test_what_record_writes_the_collector_reads_back_unchanged(tmp_path, model, fields):
    path = tmp_path / "trace.jsonl"
    path.unlink(missing_ok=True)
    before = datetime.now(UTC)
    with TraceWriter(path) as writer:
        assert writer.record(model, **fields)
    after = datetime.now(UTC)
    (line,) = path.read_bytes().splitlines()
    got = row(line)
    got["extra"] = None if got["extra"] is None else orjson.loads(got["extra"])
    expected = expected_row(model, fields)
    assert {name: got[name] for name in expected} == expected
    stamp = fields["timestamp"]
    ts_us = got["ts_us"]
    if stamp is None:
        assert int(before.timestamp() * 1e6) - 1 <= ts_us <= int(after.timestamp() * 1e6) + 1
    else:
        assert ts_us == (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_the_writers_limits_are_the_collectors():
    assert (trace.MAX_TOKENS, trace.MAX_COST_USD, trace.MAX_LATENCY_MS) == (
        events.MAX_TOKENS,
        events.MAX_COST_USD,
        events.MAX_LATENCY_MS,
    )
    base = {"timestamp": "2026-01-01T00:00:00Z", "model": "m"}
    LlmCall.model_validate(base | {"user_id": "x" * trace.MAX_TEXT})
    with pytest.raises(ValueError, match="at most 512 characters"):
        LlmCall.model_validate(base | {"user_id": "x" * (trace.MAX_TEXT + 1)})


def test_extra_may_hold_every_key_but_those_the_collector_reads_as_fields():
    read_as_fields = {"type"}
    for name, info in LlmCall.model_fields.items():
        read_as_fields.add(name)
        for alias in getattr(info.validation_alias, "choices", []):
            read_as_fields.add(alias if isinstance(alias, str) else alias.path[0])
    # prompt and response are content, dropped unless the collector stores content
    assert read_as_fields - {"prompt", "response"} == RESERVED


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"input_token": 3}, TypeError, "unknown trace field.*input_token.*extra="),
        ({"input_tokens": "12"}, TypeError, "input_tokens: expected an int, got str"),
        ({"output_tokens": True}, TypeError, "output_tokens: expected an int, got bool"),
        ({"input_tokens": 2.0}, TypeError, "input_tokens: expected an int, got float"),
        ({"input_tokens": -1}, ValueError, "input_tokens: -1 is not between 0 and"),
        ({"cost_usd": float("nan")}, ValueError, "cost_usd: nan is not between"),
        ({"latency_ms": float("inf")}, ValueError, "latency_ms: inf is not between"),
        ({"quality_score": 1.5}, ValueError, "quality_score: 1.5 is not between 0 and 1"),
        ({"tenant_id": 42}, TypeError, "tenant_id: expected a str, got int"),
        ({"tenant_id": "t" * 513}, ValueError, "tenant_id: longer than 512 characters"),
        ({"status": "timeout"}, ValueError, "status: 'timeout' is neither ok nor error"),
        ({"timestamp": datetime(2026, 1, 1)}, ValueError, "timestamp: a naive datetime"),
        ({"timestamp": "2026-01-01"}, TypeError, "timestamp: expected a datetime"),
        (
            {"input_tokens": 10, "cache_read_tokens": 8, "cache_write_tokens": 3},
            ValueError,
            "cache_read_tokens \\+ cache_write_tokens exceed input_tokens",
        ),
        ({"extra": {"prompt_tokens": 3, "ts": 1}}, ValueError, "extra: prompt_tokens, ts would"),
    ],
)
def test_arguments_the_collector_would_reject_raise_and_write_nothing(
    tmp_path, fields, error, message
):
    with TraceWriter(tmp_path / "trace.jsonl") as writer:
        with pytest.raises(error, match=message):
            writer.record("gpt-4o", **fields)
        with pytest.raises(ValueError, match="model: must not be empty"):
            writer.record("")
        with pytest.raises(ValueError, match="error_type: must not be empty"):
            writer.record("gpt-4o", error_type="")
        with pytest.raises(error, match=message):
            writer.call("gpt-4o", **fields)
    assert (tmp_path / "trace.jsonl").read_bytes() == b""


def test_values_json_cannot_hold_are_written_as_text(tmp_path):
    with TraceWriter(tmp_path / "trace.jsonl") as writer:
        writer.record("m", extra={"path": tmp_path, "when": {1: datetime(2026, 1, 1, tzinfo=UTC)}})
    (line,) = written(tmp_path / "trace.jsonl")
    assert line["path"] == str(tmp_path)
    assert line["when"] == {"1": "2026-01-01T00:00:00+00:00"}


# ----- call(): timing and errors ---------------------------------------------------------


class FakeAPIError(Exception):
    pass


def test_call_times_the_block_and_records_its_tokens(tmp_path, monkeypatch):
    ticks = iter([100.0, 100.8125])
    monkeypatch.setattr(trace, "perf_counter", lambda: next(ticks))
    with (
        TraceWriter(tmp_path / "trace.jsonl") as writer,
        writer.call("gpt-4o", provider="openai", tenant_id="acme") as call,
    ):
        call.tokens(1200, 300, cache_read=400)
        call.model = "gpt-4o-2024-08-06"
        call.set(cost_usd=0.0065)
    (line,) = written(tmp_path / "trace.jsonl")
    assert {k: v for k, v in line.items() if k != "timestamp"} == {
        "model": "gpt-4o-2024-08-06",
        "provider": "openai",
        "tenant_id": "acme",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 400,
        "cost_usd": 0.0065,
        "latency_ms": 812.5,
        "status": "ok",
    }


def test_call_records_an_error_with_the_exceptions_class_and_reraises(tmp_path, monkeypatch):
    ticks = iter([5.0, 5.25])
    monkeypatch.setattr(trace, "perf_counter", lambda: next(ticks))
    with (
        TraceWriter(tmp_path / "trace.jsonl") as writer,
        pytest.raises(FakeAPIError),
        writer.call("gpt-4o") as call,
    ):
        call.tokens(10, None)
        raise FakeAPIError("rate limited")
    (line,) = written(tmp_path / "trace.jsonl")
    assert line["status"] == "error"
    assert line["error_type"] == "FakeAPIError"
    assert line["latency_ms"] == 250.0
    assert line["input_tokens"] == 10
    assert row(orjson.dumps(line))["status"] == "error"


def test_a_bad_field_set_inside_the_block_raises_there_and_keeps_the_others(tmp_path):
    with TraceWriter(tmp_path / "trace.jsonl") as writer, writer.call("gpt-4o") as call:
        call.tokens(10, 2)
        with pytest.raises(TypeError, match="cost_usd: expected a number"):
            call.set(cost_usd="0.1")
    (line,) = written(tmp_path / "trace.jsonl")
    assert (line["input_tokens"], line["output_tokens"], "cost_usd" in line) == (10, 2, False)


def test_the_module_functions_write_to_the_file_of_the_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(trace, "_default", None)
    monkeypatch.delenv(trace.ENV_VAR, raising=False)
    with pytest.raises(RuntimeError, match="set LLM_COLLECTOR_TRACE_FILE"):
        trace.record("gpt-4o")
    monkeypatch.setenv(trace.ENV_VAR, str(tmp_path / "logs" / "trace.jsonl"))
    trace.record("gpt-4o", input_tokens=3)
    with trace.call("gpt-4o") as call:
        call.tokens(4, 5)
    trace.default_writer().close()
    assert [line["input_tokens"] for line in written(tmp_path / "logs" / "trace.jsonl")] == [3, 4]


# ----- many writers at once ------------------------------------------------------------

LONG = 3 * PIPE_BUF


def numbered(writer, who: str, n: int) -> None:
    """Every other line longer than PIPE_BUF; call_id says who wrote it and which it is."""
    padding = "x" * (LONG if n % 2 else 10)
    assert writer.record("m", call_id=f"{who}:{n}", extra={"padding": padding})


def write_many(writer, who: str, threads: int, lines: int) -> None:
    def run(t: int) -> None:
        for n in range(lines):
            numbered(writer, f"{who}/{t}", n)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def own_writer(path, who: str, threads: int, lines: int) -> None:
    with TraceWriter(path) as writer:
        write_many(writer, who, threads, lines)


def call_ids(*paths) -> list[str]:
    """Every line's call_id; fails on a line that is not one complete event."""
    ids = []
    for path in paths:
        for line in path.read_bytes().splitlines():
            ids.append(row(line)["call_id"])
    return ids


def expected_ids(writers, threads: int, lines: int) -> list[str]:
    return sorted(f"{w}/{t}:{n}" for w in writers for t in range(threads) for n in range(lines))


def test_threads_and_processes_write_whole_lines(tmp_path):
    """Forked children share the parent's writer, others open their own; each has threads."""
    path = tmp_path / "trace.jsonl"
    shared = TraceWriter(path)
    fork = multiprocessing.get_context("fork")
    children = [
        fork.Process(target=write_many, args=(shared, "shared-0", 3, 150)),
        fork.Process(target=write_many, args=(shared, "shared-1", 3, 150)),
        fork.Process(target=own_writer, args=(path, "own-0", 3, 150)),
        fork.Process(target=own_writer, args=(path, "own-1", 3, 150)),
    ]
    for child in children:
        child.start()
    write_many(shared, "parent", 3, 150)
    for child in children:
        child.join()
        assert child.exitcode == 0
    shared.close()
    writers = ["parent", "shared-0", "shared-1", "own-0", "own-1"]
    assert sorted(call_ids(path)) == expected_ids(writers, 3, 150)


def test_long_lines_are_never_split_by_the_other_writers(tmp_path, monkeypatch):
    """A kernel may write a long line in pieces: here each write stops after 512 bytes and
    lets another thread run. The lock keeps the pieces of a line together."""
    real_write = os.write
    writers = [TraceWriter(tmp_path / "trace.jsonl") for _ in range(4)]
    trace_fds = {w._fd for w in writers}

    def piecewise(fd, data):
        if fd not in trace_fds:
            return real_write(fd, data)
        done = real_write(fd, bytes(data[:512]))
        os.sched_yield()
        return done

    monkeypatch.setattr(os, "write", piecewise)
    workers = [
        threading.Thread(target=write_many, args=(w, f"w{i}", 1, 60)) for i, w in enumerate(writers)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    monkeypatch.undo()
    for writer in writers:
        writer.close()
    assert sorted(call_ids(tmp_path / "trace.jsonl")) == expected_ids(
        [f"w{i}" for i in range(4)], 1, 60
    )


# ----- rotation --------------------------------------------------------------------------


def test_after_a_rename_the_next_line_goes_to_a_new_file(tmp_path):
    path, rotated = tmp_path / "trace.jsonl", tmp_path / "trace.jsonl.1"
    with TraceWriter(path) as writer:
        for n in range(3):
            numbered(writer, "a", n)
        path.rename(rotated)
        for n in range(3, 6):
            numbered(writer, "a", n)
    assert call_ids(rotated) == ["a:0", "a:1", "a:2"]
    assert call_ids(path) == ["a:3", "a:4", "a:5"]


def test_a_deleted_file_is_created_again(tmp_path):
    path = tmp_path / "trace.jsonl"
    with TraceWriter(path) as writer:
        numbered(writer, "a", 0)
        path.unlink()
        numbered(writer, "a", 1)
    assert call_ids(path) == ["a:1"]


def test_copytruncate_leaves_no_hole(tmp_path):
    path = tmp_path / "trace.jsonl"
    with TraceWriter(path) as writer:
        for n in range(3):
            numbered(writer, "a", n)
        shutil.copy(path, tmp_path / "trace.jsonl.1")
        os.truncate(path, 0)
        numbered(writer, "a", 3)
    assert call_ids(tmp_path / "trace.jsonl.1") == ["a:0", "a:1", "a:2"]
    assert call_ids(path) == ["a:3"]


def write_around_rotation(path, who: str, lines: int, halfway, rotated) -> None:
    with TraceWriter(path) as writer:
        for n in range(lines):
            if n == lines // 2:
                halfway.set()
                rotated.wait()
            numbered(writer, who, n)


def test_rotation_while_processes_write_loses_no_line(tmp_path):
    """The file is renamed while the children write; each child's second half is written
    after the rename, so it must all be in the new file."""
    path, rotated_path = tmp_path / "trace.jsonl", tmp_path / "trace.jsonl.1"
    path.touch()
    fork = multiprocessing.get_context("fork")
    halfway, rotated = fork.Event(), fork.Event()
    who = [f"p{i}" for i in range(4)]
    children = [
        fork.Process(target=write_around_rotation, args=(path, w, 200, halfway, rotated))
        for w in who
    ]
    for child in children:
        child.start()
    assert halfway.wait(timeout=60)
    path.rename(rotated_path)
    rotated.set()
    for child in children:
        child.join()
        assert child.exitcode == 0
    everything = sorted(call_ids(rotated_path, path))
    assert everything == sorted(f"{w}:{n}" for w in who for n in range(200))
    after = {f"{w}:{n}" for w in who for n in range(100, 200)}
    assert after <= set(call_ids(path))


def test_the_collector_reads_every_line_across_rotation(tmp_path):
    """The real `llm-collector ingest` on what threads wrote before and after a rename."""
    (tmp_path / "collector.yaml").write_text(
        "sources: [{path: 'logs/trace.jsonl*'}]\nledger: {path: state/ledger.db}\n"
        "quarantine: {path: state/quarantine.jsonl}\n"
    )
    path = tmp_path / "logs" / "trace.jsonl"
    with TraceWriter(path) as writer:
        threads = [
            threading.Thread(
                target=lambda t=t: [
                    writer.record(
                        "gpt-4o", input_tokens=10, cost_usd=0.25, call_id=f"{t}:{n}", latency_ms=n
                    )
                    for n in range(100)
                ]
            )
            for t in range(4)
        ]
        for thread in threads[:2]:
            thread.start()
        for thread in threads[:2]:
            thread.join()
        path.rename(path.with_name("trace.jsonl.1"))
        for thread in threads[2:]:
            thread.start()
        for thread in threads[2:]:
            thread.join()
        numbered(writer, "long", 1)
    counts = json.loads(cli("ingest", "--json", cwd=tmp_path).stdout)
    assert counts == {"lines": 401, "events": 401, "quarantined": 0, "skipped": 0}
    summary = json.loads(cli("summary", "--json", "--since", "-1h", cwd=tmp_path).stdout)
    assert summary["totals"]["requests"] == 401
    assert summary["totals"]["cost_usd"] == 100.0
    assert summary["totals"]["input_tokens"] == 4000


# ----- write failures --------------------------------------------------------------------


def test_write_failures_are_counted_and_logged_once_never_raised(tmp_path, caplog):
    """/dev/full refuses every write (ENOSPC); the trace file is a link to it until rotation
    puts a regular file in its place."""
    path = tmp_path / "trace.jsonl"
    path.symlink_to("/dev/full")
    caplog.set_level(logging.WARNING, logger="collector.trace")
    with TraceWriter(path) as writer:
        assert [writer.record("gpt-4o", call_id=str(n)) for n in range(3)] == [False] * 3
        with writer.call("gpt-4o"):
            pass
        assert writer.dropped == 4
        assert [r.levelname for r in caplog.records] == ["ERROR"]
        assert "No space left on device" in caplog.records[0].getMessage()
        path.unlink()
        assert writer.record("gpt-4o", call_id="after")
        assert writer.record("gpt-4o", call_id="after 2")
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
    assert "4 were dropped" in caplog.records[1].getMessage()
    assert call_ids(path) == ["after", "after 2"]


def test_a_line_cut_short_by_a_failure_is_ended_before_the_next(tmp_path, monkeypatch):
    """The disk fills in the middle of a line (a short write, then ENOSPC): the next line
    starts on a line of its own, so only the cut one is quarantined."""
    real_write = os.write
    with TraceWriter(tmp_path / "trace.jsonl") as writer:
        steps = ["short", "full"]

        def disk_fills(fd, data):
            step = steps.pop(0) if fd == writer._fd and steps else None
            if step == "short":
                return real_write(fd, bytes(data[:20]))
            if step == "full":
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", disk_fills)
        assert not writer.record("m", call_id="cut")
        assert writer.record("m", call_id="next")
        monkeypatch.undo()
    first, second = (tmp_path / "trace.jsonl").read_bytes().splitlines()
    assert len(first) == 20
    assert row(second)["call_id"] == "next"
