"""Latency sketches: SQL bin keys match the ddsketch package, the byte form is exact, merging
is exact, quantiles keep the 1% relative accuracy."""

import math
import random
import sqlite3

import pytest
from ddsketch import DDSketch
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.tiers import sketch as sketches
from tests.collector.rollup_harness import within_accuracy

LATENCIES = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)


def sql_sketch(values):
    """The sketch the rollup builds: keys and zero count from SQL, bins from (key, count)."""
    db = sqlite3.connect(":memory:")
    sketches.ensure_math_functions(db)
    db.execute("CREATE TABLE calls (latency_ms REAL)")
    db.executemany("INSERT INTO calls VALUES (?)", [(v,) for v in values])
    params = {"key_multiplier": sketches.KEY_MULTIPLIER, "min_positive": sketches.MIN_POSITIVE}
    bins = db.execute(
        f"SELECT {sketches.KEY_SQL} AS k, count(*) FROM calls WHERE latency_ms > :min_positive"
        " GROUP BY k",
        params,
    ).fetchall()
    (zeros,) = db.execute(
        "SELECT count(*) FROM calls WHERE latency_ms <= :min_positive", params
    ).fetchone()
    return sketches.from_bins(zeros, bins)


def package_sketch(values):
    sketch = DDSketch(sketches.RELATIVE_ACCURACY)
    for value in values:
        sketch.add(value)
    return sketch


@settings(max_examples=60, deadline=None)
@given(st.lists(LATENCIES, min_size=1, max_size=80))
def test_sql_bins_equal_the_packages_own(values):
    assert sketches.encode(sql_sketch(values)) == sketches.encode(package_sketch(values))


def test_sql_keys_on_many_magnitudes_and_bin_edges():
    rng = random.Random(7)
    values = [math.exp(rng.uniform(-20, 20)) for _ in range(20_000)]
    gamma = (1 + sketches.RELATIVE_ACCURACY) / (1 - sketches.RELATIVE_ACCURACY)
    edges = [gamma**k for k in range(-300, 300)]
    values += (
        edges + [math.nextafter(e, 0) for e in edges] + [math.nextafter(e, 2e9) for e in edges]
    )
    assert sketches.encode(sql_sketch(values)) == sketches.encode(package_sketch(values))


@settings(max_examples=60, deadline=None)
@given(st.lists(LATENCIES, max_size=80), st.lists(LATENCIES, max_size=80))
def test_merge_is_exact_and_survives_the_byte_form(first, second):
    merged = sketches.decode(sketches.encode(sql_sketch(first)))
    merged.merge(sketches.decode(sketches.encode(sql_sketch(second))))
    assert sketches.encode(merged) == sketches.encode(sql_sketch(first + second))
    assert merged.count == len(first) + len(second)


@pytest.mark.parametrize(("count", "width"), [(255, 1), (256, 2), (70_000, 4), (2**33, 8)])
def test_counts_of_every_size_round_trip(count, width):
    original = sketches.from_bins(3, [(10, count), (12, 1)])
    data = sketches.encode(original)
    assert data[1] == width
    back = sketches.decode(data)
    assert sketches.encode(back) == data
    assert back.count == count + 4
    assert back.get_quantile_value(0) == 0


def test_empty_and_zero_only_sketches():
    assert sketches.decode(sketches.encode(sketches.empty())).count == 0
    zeros = sketches.decode(sketches.encode(sketches.from_bins(5, [])))
    assert sketches.quantiles(zeros, 0.0, 0.0) == {50: 0, 90: 0, 95: 0, 99: 0}


def test_unknown_format_is_refused():
    data = bytearray(sketches.encode(sketches.from_bins(0, [(1, 1)])))
    data[0] = 9
    with pytest.raises(ValueError, match="format 9"):
        sketches.decode(bytes(data))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0.01, 1e7, allow_nan=False), min_size=1, max_size=300))
def test_quantiles_within_one_percent_of_the_ranked_values(values):
    got = sketches.quantiles(sql_sketch(values), min(values), max(values))
    for q, value in got.items():
        assert within_accuracy(value, values, q), (q, value)


def test_quantiles_are_clamped_to_the_exact_extremes():
    one = sketches.quantiles(sql_sketch([123.456]), 123.456, 123.456)
    assert one == dict.fromkeys((50, 90, 95, 99), 123.456)
    assert sketches.quantiles(sketches.empty(), None, None) == dict.fromkeys((50, 90, 95, 99))
