"""Latency sketches: DDSketch (``ddsketch`` package, 1% relative accuracy), exactly mergeable.

Bin keys are computed in SQL, bit for bit as the package's `LogarithmicMapping` computes them,
so a window's sketch is built from (key, count) pairs rather than one Python call per event.
The byte form is the dense store's offset and counts plus the zero count; the package's own
serialization needs protobuf, which this project does not otherwise use.
"""

from __future__ import annotations

import math
import sqlite3
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence

from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

RELATIVE_ACCURACY = 0.01
QUANTILES = (50, 90, 95, 99)
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
MIN_POSITIVE = _MAPPING.min_possible
"""Values at or below this go to the zero count, as in `BaseDDSketch.add`."""
KEY_MULTIPLIER = _MAPPING._multiplier
KEY_SQL = "CAST(ceil(ln(latency_ms) / ln(2.0) * :key_multiplier) AS INTEGER)"
"""The bin key of ``latency_ms`` (> MIN_POSITIVE): CPython's ``math.log(v, 2)`` is
``log(v) / log(2)`` and SQLite's ``ln`` is the same C ``log``, so keys match the package's."""

_FORMAT = 1
_HEADER = struct.Struct("<BBqq")  # format, count width, zero count, key of the first count
_WIDTHS = {1: "B", 2: "H", 4: "I", 8: "Q"}


def ensure_math_functions(db: sqlite3.Connection) -> None:
    """Provide ``ln`` and ``ceil`` where SQLite was built without its math functions."""
    try:
        db.execute("SELECT ln(2.0), ceil(0.5)")
    except sqlite3.OperationalError:
        db.create_function("ln", 1, math.log, deterministic=True)
        db.create_function("ceil", 1, math.ceil, deterministic=True)


def empty() -> BaseDDSketch:
    return BaseDDSketch(LogarithmicMapping(RELATIVE_ACCURACY), DenseStore(), DenseStore(), 0.0)


def from_bins(zero_count: int, bins: Iterable[tuple[int, int]]) -> BaseDDSketch:
    """A sketch of ``zero_count`` zeros and ``count`` values in each ``(key, count)`` bin."""
    pairs = list(bins)
    if not pairs:
        return _sketch(zero_count, 0, [])
    first = min(key for key, _ in pairs)
    counts = [0] * (max(key for key, _ in pairs) - first + 1)
    for key, count in pairs:
        counts[key - first] += count
    return _sketch(zero_count, first, counts)


def _sketch(zero_count: int, first: int, counts: Sequence[int]) -> BaseDDSketch:
    """Fill the dense store's documented attributes at once (``store.add`` per bin would
    re-check the range each time); ``counts`` runs from ``first`` to the last non-empty key."""
    store = DenseStore()
    if counts:
        store.bins = [float(count) for count in counts]
        store.offset = store.min_key = first
        store.max_key = first + len(counts) - 1
        store.count = float(sum(counts))
    return BaseDDSketch(LogarithmicMapping(RELATIVE_ACCURACY), store, DenseStore(), zero_count)


def encode(sketch: BaseDDSketch) -> bytes:
    """Format byte, count width, zero count, first key, then one count per key up to the last."""
    store: DenseStore = sketch._store
    low, high = store.min_key - store.offset, store.max_key - store.offset
    counts = [int(c) for c in store.bins[low : high + 1]] if store.count else []
    width = next(w for w in _WIDTHS if max(counts, default=0) < 1 << (8 * w))
    packed = array(_WIDTHS[width], counts)
    if sys.byteorder == "big":
        packed.byteswap()
    first = store.min_key if counts else 0
    return _HEADER.pack(_FORMAT, width, int(sketch._zero_count), first) + packed.tobytes()


def decode(data: bytes) -> BaseDDSketch:
    """The sketch `encode` wrote; counts come back exactly."""
    version, width, zero_count, first = _HEADER.unpack_from(data)
    if version != _FORMAT:
        raise ValueError(f"unknown latency sketch format {version}")
    counts = array(_WIDTHS[width], data[_HEADER.size :])
    if sys.byteorder == "big":
        counts.byteswap()
    return _sketch(zero_count, first, counts)


def quantiles(
    sketch: BaseDDSketch, low: float | None, high: float | None
) -> dict[int, float | None]:
    """p50/p90/p95/p99, clamped to the exact min and max (which only brings them closer)."""
    result: dict[int, float | None] = {}
    for q in QUANTILES:
        value = sketch.get_quantile_value(q / 100)
        if value is not None and low is not None and high is not None:
            value = min(max(value, low), high)
        result[q] = value
    return result
