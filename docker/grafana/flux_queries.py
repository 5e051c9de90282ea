"""Flux for the dashboards: where a panel reads from, and the query of each kind of panel.

Every query starts with the same prelude. It picks the finest tier whose retention still holds
the dashboard's start time, as `llm-collector summary` does: the raw bucket (``llm_call`` and
``llm_score`` points) while ``v.timeRangeStart`` lies within the raw retention (7 days by
default), then the 1h, 1d and 1mo buckets (``llm_rollup`` points, one per window and group of
dimensions). A metric computed differently from raw points and from rollups (counts, rates,
percentiles, quality) has one function for each, and the query runs the one the prelude chose:
only that branch reads anything.

Percentiles are never averaged. From raw points they are exact per panel window. From a tier a
window holds one p50/p95/p99 per group of dimensions; panels show the highest of them, an upper
bound of the percentile of the groups together (each group has at most 5% of its calls above
its own p95, so their union has at most 5% above the highest). Exact percentiles over tiers come
from the merged sketches: ``llm-collector summary``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml

from schemas.config import TIERS, CollectorConfig, InfluxBuckets, TiersConfig
from schemas.durations import format_duration

CALL = "llm_call"
SCORE = "llm_score"
ROLLUP = "llm_rollup"
VARIABLES = ("model", "task_type", "tenant_id", "instance")
"""Dashboard variables; each is named after the tag it filters. ``instance`` is the collector
that wrote a point: every query groups by the panel's own columns only, so the points of all
the selected instances are summed, never drawn apart."""
WINDOW = "v.windowPeriod"


@dataclass(frozen=True)
class Store:
    """What the collector in docker/ writes: the bucket of each tier, retention, tag keys."""

    buckets: dict[str, str]
    retention: dict[str, timedelta | None]
    dimensions: tuple[str, ...]
    timezone: str


def load_store(config_file: Path) -> Store:
    """The buckets, retention, dimensions and time zone a collector config file sets."""
    data = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    buckets = InfluxBuckets(**(data.get("influx") or {}).get("buckets", {}))
    defaults = CollectorConfig.model_fields
    return Store(
        buckets={tier: buckets.for_tier(tier) for tier in TIERS},
        retention=TiersConfig(**data.get("tiers", {})).retention,
        dimensions=tuple(data.get("dimensions", defaults["dimensions"].default)),
        timezone=data.get("timezone", defaults["timezone"].default),
    )


def _quote(name: str) -> str:
    return f'"{name}"'


def _list(names: Sequence[str]) -> str:
    return "[" + ", ".join(_quote(n) for n in names) + "]"


def _if_chain(cases: list[tuple[str, str]], otherwise: str) -> str:
    """``if c1 then v1 else if c2 then v2 ... else otherwise``."""
    return "".join(f"if {test} then {value} else " for test, value in cases) + otherwise


def prelude(store: Store) -> str:
    """Binds ``tier``, ``bucket`` and ``measurement`` from the dashboard's start time."""
    cases: list[tuple[str, str]] = []
    for tier in TIERS[:-1]:
        kept = store.retention[tier]
        if kept is None:
            break
        cases.append((f"age <= int(v: {format_duration(kept)})", _quote(tier)))
    forever = next((t for t in TIERS if store.retention[t] is None), TIERS[-1])
    buckets = [(f"tier == {_quote(t)}", _quote(store.buckets[t])) for t in TIERS[:-1]]
    return "\n".join(
        [
            "age = int(v: now()) - int(v: v.timeRangeStart)",
            f"tier = {_if_chain(cases, _quote(forever))}",
            f"bucket = {_if_chain(buckets, _quote(store.buckets[TIERS[-1]]))}",
            f'measurement = if tier == "raw" then "{CALL}" else "{ROLLUP}"',
        ]
    )


def variable_filter() -> str:
    """Keeps the selected models, tasks, tenants and instances; with "All" (.*) untagged rows
    stay too (points written before collectors tagged their instance)."""
    tests = [f'(if exists r.{t} then r.{t} else "") =~ /^${{{t}:regex}}$/' for t in VARIABLES]
    return f"|> filter(fn: (r) => {' and '.join(tests)})"


def select(bucket: str, measurement: str, *fields: str) -> list[str]:
    """from + range + measurement and fields + the dashboard variables."""
    names = " or ".join(f"r._field == {_quote(f)}" for f in fields)
    return [
        f"from(bucket: {bucket})",
        "|> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
        f"|> filter(fn: (r) => r._measurement == {measurement} and ({names}))",
        variable_filter(),
    ]


def windowed(by: Sequence[str], fn: str, every: str = WINDOW) -> list[str]:
    """One series per ``by`` combination, aggregated per window."""
    return [
        f"|> group(columns: {_list(by)})",
        f"|> aggregateWindow(every: {every}, fn: {fn}, createEmpty: false)",
    ]


def keep(by: Sequence[str]) -> str:
    """The shape both branches of a time series query end in."""
    return f"|> keep(columns: {_list(['_time', '_value', *by])})"


def pipe(steps: list[str]) -> str:
    return "\n  ".join(steps)


def one_source(store: Store, steps: list[str]) -> str:
    """A query over the chosen bucket whose fields are named alike in raw points and rollups."""
    return f"{prelude(store)}\n{pipe(steps)}"


def two_sources(store: Store, raw: list[str], rolled: list[str]) -> str:
    """A query that runs ``raw`` on the raw bucket, or ``rolled`` on the chosen tier bucket."""
    return (
        f"{prelude(store)}\n"
        f"raw = () => {pipe(raw)}\n"
        f"rolled = () => {pipe(rolled)}\n"
        'if tier == "raw" then raw() else rolled()'
    )


# ----- the panels' metrics ----------------------------------------------------------------


def summed(store: Store, field: str, by: Sequence[str] = (), every: str = WINDOW) -> str:
    """Per window: the sum of a field raw points and rollups both carry (cost, tokens)."""
    return one_source(store, select("bucket", "measurement", field) + windowed(by, "sum", every))


def summed_total(store: Store, field: str) -> str:
    """Over the range: the sum of such a field."""
    return one_source(store, [*select("bucket", "measurement", field), "|> group()", "|> sum()"])


def requests(store: Store, by: Sequence[str] = ()) -> str:
    """Calls per window: raw points counted, rollup ``count`` summed."""
    raw = select("bucket", _quote(CALL), "error") + windowed(by, "count") + [keep(by)]
    rolled = select("bucket", _quote(ROLLUP), "count") + windowed(by, "sum") + [keep(by)]
    return two_sources(store, raw, rolled)


def requests_total(store: Store) -> str:
    """Calls over the range."""
    raw = [*select("bucket", _quote(CALL), "error"), "|> group()", "|> count()"]
    rolled = [*select("bucket", _quote(ROLLUP), "count"), "|> group()", "|> sum()"]
    return two_sources(store, [*raw, keep(())], [*rolled, keep(())])


def errors(store: Store, by: Sequence[str] = ()) -> str:
    """Failed calls per window: raw ``error`` (0/1) summed, rollup ``errors`` summed."""
    raw = select("bucket", _quote(CALL), "error") + windowed(by, "sum") + [keep(by)]
    rolled = select("bucket", _quote(ROLLUP), "errors") + windowed(by, "sum") + [keep(by)]
    return two_sources(store, raw, rolled)


def errors_total(store: Store) -> str:
    """Failed calls over the range."""
    raw = [*select("bucket", _quote(CALL), "error"), "|> group()", "|> sum()", keep(())]
    rolled = [*select("bucket", _quote(ROLLUP), "errors"), "|> group()", "|> sum()", keep(())]
    return two_sources(store, raw, rolled)


def _ratio(success: bool) -> str:
    rate = "float(v: r.errors) / float(v: r.count)"
    value = f"1.0 - {rate}" if success else rate
    return f"|> map(fn: (r) => ({{r with _value: if r.count > 0 then {value} else 0.0}}))"


def _complement(success: bool) -> list[str]:
    return ["|> map(fn: (r) => ({r with _value: 1.0 - r._value}))"] if success else []


def error_rate(store: Store, by: Sequence[str] = (), success: bool = False) -> str:
    """Errors / calls per window (``success``: 1 - that), from ``error`` or rollup sums."""
    raw = select("bucket", _quote(CALL), "error") + windowed(by, "mean") + _complement(success)
    rolled = [
        *select("bucket", _quote(ROLLUP), "count", "errors"),
        *windowed(["_field", *by], "sum"),
        f"|> group(columns: {_list(by)})",
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
        _ratio(success),
    ]
    return two_sources(store, [*raw, keep(by)], [*rolled, keep(by)])


def error_rate_total(store: Store, success: bool = False) -> str:
    """Errors / calls over the range (``success``: 1 - that)."""
    raw = [*select("bucket", _quote(CALL), "error"), "|> group()", "|> mean()"]
    sums = (
        "|> reduce(identity: {count: 0, errors: 0}, fn: (r, accumulator) => ({"
        'count: accumulator.count + (if r._field == "count" then r._value else 0), '
        'errors: accumulator.errors + (if r._field == "errors" then r._value else 0)}))'
    )
    rolled = [*select("bucket", _quote(ROLLUP), "count", "errors"), "|> group()", sums]
    rolled += [_ratio(success)]
    return two_sources(store, [*raw, *_complement(success), keep(())], [*rolled, keep(())])


def _quantile(q: float) -> str:
    return f"(column, tables=<-) => tables |> quantile(q: {q}, column: column)"


def latency(store: Store, q: float, by: Sequence[str] = ()) -> str:
    """Latency percentile per window: exact from raw ``latency_ms``; from a tier the highest
    ``latency_pNN`` of the groups in the window (an upper bound, see the module's doc)."""
    field = f"latency_p{round(q * 100)}"
    raw = select("bucket", _quote(CALL), "latency_ms") + windowed(by, _quantile(q))
    rolled = select("bucket", _quote(ROLLUP), field) + windowed(by, "max")
    return two_sources(store, [*raw, keep(by)], [*rolled, keep(by)])


def latency_total(store: Store, q: float) -> str:
    """Latency percentile over the range (tiers: the highest group percentile)."""
    field = f"latency_p{round(q * 100)}"
    raw = [*select("bucket", _quote(CALL), "latency_ms"), "|> group()", f"|> quantile(q: {q})"]
    rolled = [*select("bucket", _quote(ROLLUP), field), "|> group()", "|> max()"]
    return two_sources(store, [*raw, keep(())], [*rolled, keep(())])


def _raw_quality() -> list[str]:
    """Inline ``quality_score`` and ``llm_score`` values in 0..1, as the rollups count them."""
    return [
        "from(bucket: bucket)",
        "|> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
        f'|> filter(fn: (r) => (r._measurement == "{CALL}" and r._field == "quality_score")'
        f' or (r._measurement == "{SCORE}" and r._field == "value"'
        " and r._value >= 0.0 and r._value <= 1.0))",
        variable_filter(),
    ]


def quality(store: Store, by: Sequence[str] = ()) -> str:
    """Mean quality per window: raw values averaged; rollup means weighted by their counts."""
    raw = _raw_quality() + windowed(by, "mean")
    weighted = (
        "|> reduce(identity: {total: 0.0, n: 0}, fn: (r, accumulator) => ({"
        "total: accumulator.total + r.quality_mean * float(v: r.quality_count), "
        "n: accumulator.n + r.quality_count}))"
    )
    rolled = [
        *select("bucket", _quote(ROLLUP), "quality_mean", "quality_count"),
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
        "|> filter(fn: (r) => exists r.quality_mean and exists r.quality_count)",
        f"|> group(columns: {_list(by)})",
        f"|> window(every: {WINDOW}, createEmpty: false)",
        weighted,
        "|> map(fn: (r) => ({r with _time: r._stop, _value: r.total / float(v: r.n)}))",
        f"|> group(columns: {_list(by)})",
    ]
    return two_sources(store, [*raw, keep(by)], [*rolled, keep(by)])


def quality_distribution(store: Store) -> str:
    """Share of quality values at or below each tenth, from raw points only (the tiers keep
    count, mean and min, not the values)."""
    steps = [
        *_raw_quality(),
        "|> group()",
        "|> histogram(bins: linearBins(start: 0.1, width: 0.1, count: 10, infinity: false),"
        " normalize: true)",
    ]
    return f'bucket = "{store.buckets["raw"]}"\n{pipe(steps)}'


def score_by_name(store: Store) -> str:
    """Mean of each named score per window (raw ``llm_score`` points; tiers merge names)."""
    steps = [
        *select(_quote(store.buckets["raw"]), _quote(SCORE), "value"),
        *windowed(["name"], "mean"),
    ]
    return pipe(steps)


def spent_today(store: Store, field: str, by: Sequence[str]) -> str:
    """A field's sum since midnight in the collector's time zone, from raw points (budgets)."""
    steps = [
        f"from(bucket: {_quote(store.buckets['raw'])})",
        "|> range(start: date.truncate(t: now(), unit: 1d))",
        f'|> filter(fn: (r) => r._measurement == "{CALL}" and r._field == "{field}")',
        variable_filter(),
        f"|> group(columns: {_list(by)})",
        "|> sum()",
    ]
    zone = f'option location = timezone.location(name: "{store.timezone}")\n'
    return f'import "date"\nimport "timezone"\n{zone}{pipe(steps)}'


def source_bucket(store: Store) -> str:
    """The bucket the dashboard reads for its time range, shown so nobody has to guess."""
    return f'import "array"\n{prelude(store)}\narray.from(rows: [{{_value: bucket}}])'


def tag_values(store: Store, tag: str) -> str:
    """A variable's choices: the tag's values in the bucket the time range reads."""
    body = (
        f'schema.tagValues(bucket: bucket, tag: "{tag}", '
        "start: v.timeRangeStart, stop: v.timeRangeStop)"
    )
    return f'import "influxdata/influxdb/schema"\n{prelude(store)}\n{body}'
