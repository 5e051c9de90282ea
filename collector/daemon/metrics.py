"""Prometheus exposition for ``/metrics``: LLM counters from the committed events, labelled by
the configured dimensions, and the collector's own health, in a registry of their own.

Counting is one dictionary update per event on the tail thread (`LlmCounters.observe`, the
ledger commit hook); the metric families are built only when scraped. Counters start at zero
with the daemon, as Prometheus counters do after a restart. Each dimension label takes at most
``server.metrics_max_label_values`` values; calls with later values are counted under
``other``, so the page stays small however many models or tenants come and totals stay exact.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from collector.daemon.health import JobRegistry
from collector.ingest.tailing import TailCounts
from collector.ledger.connection import Batch
from collector.ledger.events import CALL_COLUMNS

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Upper bounds (seconds) of ``llm_response_latency_seconds``; +Inf is implied."""
TOKEN_TYPES = ("input", "output", "cached")
OTHER = "other"
"""The label value of the calls whose dimension value came after the first allowed ones."""

_STATUS, _IN, _OUT, _CACHED, _COST, _LATENCY = (
    CALL_COLUMNS.index(name)
    for name in (
        "status",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "latency_ms",
    )
)
_BOUNDS_MS = [bound * 1000 for bound in LATENCY_BUCKETS]
# Per label set: requests, failed, input, output, cached, cost, latency sum (s), then one
# count per latency bucket (not cumulative; the last is +Inf).
_REQ, _FAILED, _TOK, _COST_SUM, _LAT_SUM, _BUCKETS = 0, 1, 2, 5, 6, 7


class LlmCounters:
    """Requests, failures, tokens, cost and latency per dimension label set, since start; at
    most ``max_values`` values per dimension (the first seen), the rest counted as `OTHER`."""

    def __init__(self, dimensions: list[str], max_values: int) -> None:
        self.dimensions = list(dimensions)
        indexes = [CALL_COLUMNS.index(name) for name in self.dimensions]
        self._key: Callable[[tuple[Any, ...]], Any] = (
            itemgetter(*indexes) if indexes else lambda _row: ()
        )
        self._single = len(indexes) == 1
        self._max_values = max_values
        self._seen: list[set[Any]] = [set() for _ in indexes]
        self._folded = [0] * len(indexes)
        self._groups: dict[Any, list[float]] = {}
        self._lock = threading.Lock()

    def observe(self, batch: Batch) -> None:
        """Count the calls of a batch the ledger has just committed."""
        groups, key_of, size = self._groups, self._key, _BUCKETS + len(_BOUNDS_MS) + 1
        with self._lock:
            for row in batch.calls:
                key = key_of(row)
                group = groups.get(key)
                if group is None:  # a new label set, or one with a value past the cap
                    key = self._capped(key)
                    group = groups.get(key)
                if group is None:
                    group = groups[key] = [0.0] * size
                group[_REQ] += 1
                if row[_STATUS] == "error":
                    group[_FAILED] += 1
                group[_TOK] += row[_IN] or 0
                group[_TOK + 1] += row[_OUT] or 0
                group[_TOK + 2] += row[_CACHED] or 0
                if row[_COST] is not None:
                    group[_COST_SUM] += row[_COST]
                latency = row[_LATENCY]
                if latency is not None:
                    group[_LAT_SUM] += latency / 1000
                    group[_BUCKETS + bisect_left(_BOUNDS_MS, latency)] += 1

    def _capped(self, key: Any) -> Any:
        """``key`` with each value past its dimension's cap replaced by `OTHER`."""
        values = (key,) if self._single else key
        capped = tuple(self._admit(index, value) for index, value in enumerate(values))
        return capped[0] if self._single else capped

    def _admit(self, index: int, value: Any) -> Any:
        seen = self._seen[index]
        if value in seen:
            return value
        if len(seen) < self._max_values:
            seen.add(value)
            return value
        self._folded[index] += 1
        return OTHER

    def snapshot(self) -> list[tuple[list[str], list[float]]]:
        """(label values, counters) per label set, copied under the lock."""
        with self._lock:
            items = [(key, list(group)) for key, group in self._groups.items()]
        return [(_labels((key,) if self._single else key), group) for key, group in items]

    def folded(self) -> dict[str, int]:
        """Per dimension, the calls counted under `OTHER` because its cap was reached."""
        with self._lock:
            return dict(zip(self.dimensions, self._folded, strict=True))

    def families(self) -> Iterator[Metric]:
        dims = self.dimensions
        requests = CounterMetricFamily("llm_requests", "LLM calls ingested.", labels=dims)
        failed = CounterMetricFamily(
            "llm_requests_failed", "LLM calls with status error.", labels=dims
        )
        tokens = CounterMetricFamily(
            "llm_tokens_used",
            "Tokens of LLM calls; type input (includes cached), output, cached (cache reads).",
            labels=[*dims, "type"],
        )
        cost = CounterMetricFamily("llm_cost_usd", "Cost of the priced LLM calls.", labels=dims)
        latency = HistogramMetricFamily(
            "llm_response_latency_seconds", "Latency of LLM calls.", labels=dims
        )
        for labels, group in self.snapshot():
            requests.add_metric(labels, group[_REQ])
            failed.add_metric(labels, group[_FAILED])
            for offset, kind in enumerate(TOKEN_TYPES):
                tokens.add_metric([*labels, kind], group[_TOK + offset])
            cost.add_metric(labels, group[_COST_SUM])
            latency.add_metric(labels, _cumulative(group[_BUCKETS:]), group[_LAT_SUM])
        folded = CounterMetricFamily(
            "llm_collector_metrics_folded_calls",
            f"Calls counted under the label value {OTHER} because their dimension already had"
            " server.metrics_max_label_values values.",
            labels=["dimension"],
        )
        for dimension, calls in self.folded().items():
            folded.add_metric([dimension], calls)
        yield from (requests, failed, tokens, cost, latency, folded)


def _labels(key: tuple[Any, ...]) -> list[str]:
    return ["" if value is None else str(value) for value in key]


def _cumulative(counts: list[float]) -> list[tuple[str, float]]:
    bounds = [*(f"{bound:g}" for bound in LATENCY_BUCKETS), "+Inf"]
    total, buckets = 0.0, []
    for bound, count in zip(bounds, counts, strict=True):
        total += count
        buckets.append((bound, total))
    return buckets


class _Families(Collector):
    """Adapts a callable yielding metric families to the registry's collector interface."""

    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return self._families()


class DaemonMetrics:
    """The daemon's registry: `LlmCounters`, the tail counts, the health state (lag, outbox,
    dead letters) and the scheduled jobs' last runs."""

    def __init__(
        self,
        counters: LlmCounters,
        tail_counts: Callable[[], TailCounts],
        health_state: Callable[[], dict[str, Any]],
        jobs: JobRegistry,
    ) -> None:
        self.counters = counters
        self.tail_counts = tail_counts
        self.health_state = health_state
        self.jobs = jobs
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Families(counters.families))
        self.registry.register(_Families(self._health))

    def exposition(self) -> bytes:
        """The text format; reads the ledger (outbox, dead letters): call it in a thread."""
        return generate_latest(self.registry)

    def _health(self) -> Iterator[Metric]:
        counts = self.tail_counts()
        for name, value, text in (
            ("lines_read", counts.lines, "Trace lines read since start."),
            ("events", counts.events, "Events committed to the ledger since start."),
            ("quarantined", counts.quarantined, "Lines quarantined since start."),
            ("skipped", counts.skipped, "Lines skipped (empty, other types) since start."),
        ):
            yield CounterMetricFamily(f"llm_collector_{name}", text, value=value)
        state = self.health_state()
        yield _gauges(
            "llm_collector_lag_bytes", "Unread bytes per followed file.", "file", state["lag_bytes"]
        )
        yield _gauges(
            "llm_collector_outbox_pending_points",
            "Points waiting for InfluxDB, per feed.",
            "feed",
            state["outbox_pending"] or {},
        )
        yield GaugeMetricFamily(
            "llm_collector_dead_letters",
            "Batches InfluxDB refused for good.",
            value=state["dead_letters"],
        )
        yield from _job_families(self.jobs)
        if "otlp" in state.get("receivers", {}):
            yield from _otlp_families(state["receivers"]["otlp"])


def _gauges(name: str, text: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _job_families(jobs: JobRegistry) -> Iterator[Metric]:
    for field, text in (
        ("last_run", "When each scheduled job last ran (Unix seconds)."),
        ("last_success", "When each scheduled job last succeeded (Unix seconds)."),
    ):
        family = GaugeMetricFamily(
            f"llm_collector_job_{field}_timestamp_seconds", text, labels=["job"]
        )
        for record in jobs.jobs.values():
            if (value := getattr(record, field)) is not None:
                family.add_metric([record.name], value)
        yield family


def _otlp_families(otlp: dict[str, Any]) -> Iterator[Metric]:
    """The OTLP receiver's spans by outcome and requests by HTTP status, since start."""
    spans = CounterMetricFamily(
        "llm_collector_otlp_spans",
        "Spans the OTLP receiver took since start: accepted (committed), duplicates (sent"
        " again), rejected (quarantined), skipped (not LLM calls).",
        labels=["outcome"],
    )
    for outcome, count in otlp["spans"].items():
        spans.add_metric([outcome], count)
    requests = CounterMetricFamily(
        "llm_collector_otlp_requests",
        "Requests to the OTLP receiver since start, by HTTP status.",
        labels=["code"],
    )
    for code, count in otlp["requests"].items():
        requests.add_metric([code], count)
    yield from (spans, requests)
