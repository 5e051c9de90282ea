"""/metrics stays small however many distinct models or tenants come: each dimension label
takes at most `max_values` values, the rest are counted under ``other``, and totals stay exact."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from collector.daemon.health import JobRegistry
from collector.daemon.metrics import OTHER, DaemonMetrics, LlmCounters
from collector.ingest.tailing import TailCounts
from collector.ledger.connection import Batch
from collector.ledger.events import CALL_COLUMNS

HEALTH = {"lag_bytes": {}, "outbox_pending": None, "dead_letters": 0}


def row(**values) -> tuple:
    fields = {"status": "ok", "input_tokens": 10, "output_tokens": 2, "latency_ms": 300.0}
    fields.update(values)
    return tuple(fields.get(name) for name in CALL_COLUMNS)


def page(counters: LlmCounters) -> bytes:
    """The real /metrics body."""
    jobs = JobRegistry(clock=lambda: 0.0, started=0.0)
    return DaemonMetrics(counters, TailCounts, lambda: HEALTH, jobs).exposition()


def samples(body: bytes, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name
    ]


def test_fifty_thousand_models_make_a_small_page_with_exact_totals():
    counters = LlmCounters(["model", "tenant_id"], max_values=100)
    counters.observe(
        Batch(
            calls=[row(model=f"m{i}", tenant_id=f"t{i % 3}", cost_usd=0.5) for i in range(50_000)]
        )
    )
    body = page(counters)
    requests = samples(body, "llm_requests_total")
    assert sum(value for _, value in requests) == 50_000
    by_model = Counter()
    for labels, value in requests:
        by_model[labels["model"]] += value
    assert len(by_model) == 101
    assert by_model[OTHER] == 50_000 - 100
    assert {labels["tenant_id"] for labels, _ in requests} == {"t0", "t1", "t2"}
    assert sum(v for _, v in samples(body, "llm_cost_usd_total")) == 25_000
    tokens = samples(body, "llm_tokens_used_total")
    assert sum(v for labels, v in tokens if labels["type"] == "input") == 500_000
    assert sum(v for _, v in samples(body, "llm_response_latency_seconds_count")) == 50_000
    assert samples(body, "llm_collector_metrics_folded_calls_total") == [
        ({"dimension": "model"}, 49_900.0),
        ({"dimension": "tenant_id"}, 0.0),
    ]
    assert len(body) < 250_000  # uncapped: 50,000 label sets, about 80 MB
    print(f"/metrics for 50,000 models capped at 100: {len(body):,} bytes")


def test_values_admitted_before_the_cap_keep_their_series():
    counters = LlmCounters(["model"], max_values=2)
    counters.observe(Batch(calls=[row(model="a"), row(model="b"), row(model="c")]))
    counters.observe(Batch(calls=[row(model="a"), row(model=None), row(model="b")]))
    assert {labels[0]: group[0] for labels, group in counters.snapshot()} == {
        "a": 2,
        "b": 2,
        OTHER: 2,
    }


def test_no_dimensions_is_one_series():
    counters = LlmCounters([], max_values=1)
    counters.observe(Batch(calls=[row(model="a"), row(model="b")]))
    assert [(labels, group[0]) for labels, group in counters.snapshot()] == [([], 2)]


DIMENSIONS = ["model", "provider", "tenant_id"]


@settings(max_examples=100, deadline=None)
@given(
    calls=st.lists(
        st.tuples(*(st.sampled_from([None, "a", "b", "c", "d", "e", "other"]) for _ in DIMENSIONS)),
        max_size=60,
    ),
    cap=st.integers(min_value=1, max_value=6),
    batch_size=st.integers(min_value=1, max_value=10),
)
def test_capped_counts_add_up_and_each_dimension_has_at_most_cap_values_and_other(
    calls, cap, batch_size
):
    counters = LlmCounters(DIMENSIONS, max_values=cap)
    rows = [row(**dict(zip(DIMENSIONS, values, strict=True))) for values in calls]
    for start in range(0, len(rows), batch_size):
        counters.observe(Batch(calls=rows[start : start + batch_size]))
    snapshot = counters.snapshot()
    assert sum(group[0] for _, group in snapshot) == len(calls)
    for index in range(len(DIMENSIONS)):
        values = {labels[index] for labels, _ in snapshot}
        assert len(values - {OTHER}) <= cap
        # A value that got its own series has all its calls there, none under other.
        for value in values - {OTHER}:
            raw = None if value == "" else value
            expected = sum(1 for call in calls if call[index] == raw)
            assert sum(g[0] for labels, g in snapshot if labels[index] == value) == expected
