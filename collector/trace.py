"""Writing trace lines from a Python application: one complete JSON line per call.

Light on purpose (the standard library and orjson only), so an application can import it
without the collector's own dependencies. What a line holds is docs/trace-format.md; how to
use this module is docs/send-from-your-app.md.

Failures: arguments the collector would reject (an unknown field, a wrong type, a number out
of range) raise `TypeError` / `ValueError` at the call, as do a trace file that cannot be
opened when a writer is made and a missing ``LLM_COLLECTOR_TRACE_FILE``: those are mistakes
in the calling code, found by its first run. A write that fails later (a full disk, a file
system gone) never raises into the application: the line is dropped, counted in
`TraceWriter.dropped`, and logged once per run of failures (and once when writing works
again) on the ``collector.trace`` logger.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import threading
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack

import orjson

log = logging.getLogger(__name__)

ENV_VAR = "LLM_COLLECTOR_TRACE_FILE"
"""The trace file of the module-level `record` and `call` (the default writer)."""
PIPE_BUF = select.PIPE_BUF
"""Appends up to this many bytes are atomic; longer lines are written under a lock file."""

# The collector's limits (schemas/events.py; tests/collector/test_trace.py checks they agree).
MAX_TEXT = 512
MAX_TOKENS = 10**12
MAX_COST_USD = 10**7
MAX_LATENCY_MS = 10**9


class CallFields(TypedDict, total=False):
    """The fields of an ``llm_call`` line besides ``model``; None values are left out."""

    provider: str | None
    task_type: str | None
    operation: str | None
    input_tokens: int | None
    """Includes cached tokens (the OpenTelemetry convention)."""
    output_tokens: int | None
    total_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    """Trusted by the collector; without it the call is priced from its tokens."""
    latency_ms: float | None
    status: Literal["ok", "error"] | None
    """Defaults to ``error`` when ``error_type`` is given, else ``ok``."""
    error_type: str | None
    tenant_id: str | None
    user_id: str | None
    session_id: str | None
    agent_name: str | None
    trace_id: str | None
    call_id: str | None
    quality_score: float | None
    timestamp: datetime | None
    """Timezone-aware; defaults to now. Written in UTC with microseconds."""
    extra: Mapping[str, Any] | None
    """Any other fields: kept as JSON in the ledger (content such as ``prompt`` is dropped
    unless the collector stores content). Values JSON cannot hold are written as ``str()``."""


_TEXT = frozenset(
    {
        "provider",
        "task_type",
        "operation",
        "error_type",
        "tenant_id",
        "user_id",
        "session_id",
        "agent_name",
        "trace_id",
        "call_id",
    }
)
_TOKENS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    }
)
_LIMITS = {"cost_usd": MAX_COST_USD, "latency_ms": MAX_LATENCY_MS, "quality_score": 1}
_FIELDS = frozenset(CallFields.__annotations__)

RESERVED = frozenset(
    {
        *(_FIELDS - {"extra"}),
        "type",
        "model",
        # the names the collector also reads these fields from (schemas/events.py)
        "ts",
        "time",
        "start_time",
        "@timestamp",
        "model_name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.operation.name",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "usage",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "llm.usage.total_tokens",
        "cost",
        "duration_ms",
        "latency_s",
        "duration_s",
        "duration_seconds",
        "error",
        "error.type",
    }
)
"""Keys ``extra`` may not hold: the collector would read them as one of the fields."""


def _checked_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{name}: longer than {MAX_TEXT} characters")
    if not value and name in ("model", "error_type"):
        raise ValueError(f"{name}: must not be empty")
    return value


def _checked_number(name: str, value: object) -> int | float:
    if name in _TOKENS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        limit: float = MAX_TOKENS
    else:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
        limit = _LIMITS[name]
    if not 0 <= value <= limit:  # also refuses NaN
        raise ValueError(f"{name}: {value!r} is not between 0 and {limit}")
    return value


def _utc_text(value: object) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"timestamp: expected a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError("timestamp: a naive datetime; give it a timezone (datetime.now(UTC))")
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _checked(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` checked against what the collector accepts, None values left out."""
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise TypeError(
            f"unknown trace field(s) {', '.join(unknown)}: the fields are "
            f"{', '.join(sorted(_FIELDS))}; put anything else in extra={{...}}"
        )
    checked: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None or name in ("timestamp", "extra"):
            continue
        if name in _TEXT:
            checked[name] = _checked_text(name, value)
        elif name == "status":
            if value not in ("ok", "error"):
                raise ValueError(f"status: {value!r} is neither ok nor error")
            checked[name] = value
        else:
            checked[name] = _checked_number(name, value)
    cached = checked.get("cache_read_tokens", 0) + checked.get("cache_write_tokens", 0)
    if cached > checked.get("input_tokens", 0):
        raise ValueError("cache_read_tokens + cache_write_tokens exceed input_tokens")
    extra = fields.get("extra") or {}
    clashing = sorted(RESERVED.intersection(extra))
    if clashing:
        raise ValueError(f"extra: {', '.join(clashing)} would be read as a trace field")
    return checked | dict(extra)


def _line(model: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``llm_call`` event for ``model`` and ``fields``, checked."""
    _checked_text("model", model)
    timestamp = fields.get("timestamp")
    event = {
        "timestamp": _utc_text(datetime.now(UTC) if timestamp is None else timestamp),
        "model": model,
    }
    event |= _checked(fields)
    event.setdefault("status", "error" if "error_type" in event else "ok")
    return event


_WRITERS: weakref.WeakSet[TraceWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for writer in list(_WRITERS):
        writer._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class TraceWriter:
    """Appends trace lines to one file, safely from many threads and processes.

    Each line is one ``write`` on an ``O_APPEND`` descriptor, so lines from several writers
    never mix. Appends up to `PIPE_BUF` bytes are atomic; a longer line could be split by
    the kernel, so it is written holding an exclusive ``flock`` on the hidden sidecar file
    ``.<name>.lock``, which the short lines hold shared. Before each write the path is
    checked: when rotation renamed or deleted the file, a new one is created there
    (copytruncate needs nothing: appends go to the new end).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Opens (and creates, with its directories) the trace file; raises `OSError` when
        it cannot."""
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self.dropped = 0
        """Lines lost to write failures since this writer was made."""
        self._lock = threading.Lock()
        self._failing = 0  # lines dropped in the current run of failures
        self._unterminated = False  # a failed write may have left part of a line
        self._fd: int | None = None
        self._identity = (0, 0)
        self._open()
        self._lock_fd = self._open_lock()
        _WRITERS.add(self)

    def record(self, model: str, **fields: Unpack[CallFields]) -> bool:
        """Writes one ``llm_call`` line; False if the write failed (see the module's doc)."""
        return self.write(_line(model, fields))

    def call(self, model: str, **fields: Unpack[CallFields]) -> Call:
        """A context manager that times its block and records it as one call."""
        return Call(self, model, fields)

    def write(self, event: Mapping[str, Any]) -> bool:
        """Writes any trace event (a ``score`` too) as one line, unchecked; False if the
        write failed. Raises `TypeError` for what JSON cannot hold."""
        data = orjson.dumps(
            event, default=str, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
        )
        with self._lock:
            if self._fd is None:
                raise ValueError(f"TraceWriter for {self.path} is closed")
            try:
                self._append(b"\n" + data if self._unterminated else data)
            except OSError as error:
                self._failed(error)
                return False
            self._succeeded()
        return True

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                if self._lock_fd >= 0:
                    os.close(self._lock_fd)
                self._fd = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        info = os.fstat(fd)
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)

    def _open_lock(self) -> int:
        return os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _after_fork(self) -> None:
        """In a forked child: a lock held by another thread at fork time would stay held,
        and an inherited lock descriptor would share its ``flock`` with the parent."""
        self._lock = threading.Lock()
        if self._fd is not None:
            os.close(self._lock_fd)  # closing, unlike LOCK_UN, leaves the parent's lock be
            try:
                self._lock_fd = self._open_lock()
            except OSError:
                self._lock_fd = -1  # each write fails (EBADF) and is counted

    def _rotated(self) -> bool:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (info.st_dev, info.st_ino) != self._identity

    def _append(self, data: bytes) -> None:
        if self._rotated():
            self._open()
        fcntl.flock(self._lock_fd, fcntl.LOCK_SH if len(data) <= PIPE_BUF else fcntl.LOCK_EX)
        try:
            self._write_all(data)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError:
                if len(view) < len(data):
                    self._unterminated = True
                raise
            view = view[written:]
        self._unterminated = False

    def _failed(self, error: OSError) -> None:
        self.dropped += 1
        self._failing += 1
        if self._failing == 1:
            log.error(
                "cannot write trace lines to %s (%s): dropping them until it works again, "
                "counted in TraceWriter.dropped",
                self.path,
                error,
            )

    def _succeeded(self) -> None:
        if self._failing:
            log.warning(
                "writing trace lines to %s again; %d were dropped", self.path, self._failing
            )
            self._failing = 0


class Call:
    """One timed call (`TraceWriter.call`): recorded when its block ends, as ``error`` with
    the exception's class name as ``error_type`` when the block raises (which it re-raises).
    """

    _started_at: datetime
    _start: float

    def __init__(self, writer: TraceWriter, model: str, fields: CallFields) -> None:
        self.model = model
        """The model recorded; set it to the response's model name if that is more exact."""
        self._writer = writer
        self._fields = fields
        _line(model, fields)  # the same checks as record(), before the block runs

    def tokens(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        cache_read: int | None = None,
        cache_write: int | None = None,
        reasoning: int | None = None,
    ) -> None:
        """The call's token counts (``input_tokens`` including the cached ones)."""
        self.set(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
        )

    def set(self, **fields: Unpack[CallFields]) -> None:
        """Adds or replaces fields of the line (checked now, like `TraceWriter.record`)."""
        merged: CallFields = {**self._fields, **fields}
        _line(self.model, merged)
        self._fields = merged

    def __enter__(self) -> Call:
        self._started_at = datetime.now(UTC)
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        fields: CallFields = {
            "timestamp": self._started_at,
            **self._fields,
            "latency_ms": min((perf_counter() - self._start) * 1000.0, MAX_LATENCY_MS),
        }
        if exc_type is not None:
            fields |= {"status": "error", "error_type": exc_type.__name__}
        self._writer.record(self.model, **fields)


_default: TraceWriter | None = None
_default_lock = threading.Lock()


def default_writer() -> TraceWriter:
    """The writer to the file named by ``LLM_COLLECTOR_TRACE_FILE``, made at first use."""
    global _default
    with _default_lock:
        if _default is None:
            path = os.environ.get(ENV_VAR)
            if not path:
                raise RuntimeError(
                    f"set {ENV_VAR} to the trace file the collector reads, or write through "
                    "collector.trace.TraceWriter(path)"
                )
            _default = TraceWriter(path)
        return _default


def record(model: str, **fields: Unpack[CallFields]) -> bool:
    """`TraceWriter.record` on the default writer."""
    return default_writer().record(model, **fields)


def call(model: str, **fields: Unpack[CallFields]) -> Call:
    """`TraceWriter.call` on the default writer."""
    return default_writer().call(model, **fields)
