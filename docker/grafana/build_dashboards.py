"""Writes the Grafana dashboards of the compose stack: `python docker/grafana/build_dashboards.py`.

The dashboards are plain Grafana JSON, generated here so that every panel's Flux comes from one
place (`flux_queries.py`) and matches what the collector configured in `docker/collector.yaml`
writes: its buckets, retention and dimensions. Budget panels come from the budget rules of the
rules file the image ships (`examples/rules.yaml`). The committed JSON in `dashboards/` is this
script's output; a test fails when they differ.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT)]

import flux_queries as flux  # noqa: E402  (the sibling module, through the path above)

from alerting.rules import load_rules  # noqa: E402
from schemas.rules import BudgetRule  # noqa: E402

CONFIG = HERE.parent / "collector.yaml"
RULES = ROOT / "examples" / "rules.yaml"
OUT = HERE / "dashboards"
DATASOURCE = {"type": "influxdb", "uid": "llm-influxdb"}
WIDTH = 24
TAGS_USED = ("model", "task_type", "tenant_id", "error_type")
"""Dimensions the panels group or filter by: the collector's config must tag with them."""
SOURCE_NOTE = (
    "Reads the raw bucket while the range starts within the raw retention, else the finest "
    "tier bucket that still holds its start (the Overview's panel 'Bucket read')."
)
TIER_PERCENTILE_NOTE = (
    " From a tier bucket: the highest group percentile per window, an upper bound of the "
    "percentile of the selection (percentiles are never averaged)."
)


@dataclass
class Panel:
    """One panel: its queries (one series set each) and how it is drawn."""

    title: str
    queries: Sequence[str]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = SOURCE_NOTE
    legends: Sequence[str] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        targets = [
            {"refId": _ref(index), "datasource": DATASOURCE, "query": query}
            for index, query in enumerate(self.queries)
        ]
        defaults: dict[str, Any] = {"unit": self.unit}
        overrides = [
            {
                "matcher": {"id": "byFrameRefID", "options": _ref(index)},
                "properties": [{"id": "displayName", "value": name}],
            }
            for index, name in enumerate(self.legends)
        ]
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": self.height},
            "fieldConfig": {"defaults": defaults | self.extra, "overrides": overrides},
            "options": _options(self.kind),
            "targets": targets,
        }


def _ref(index: int) -> str:
    """A target's refId: A, B, C..."""
    return chr(ord("A") + index)


def _options(kind: str) -> dict[str, Any]:
    # Every stat query ends in a _value column; naming it shows strings too (the bucket read).
    reduce = {"calcs": ["lastNotNull"], "fields": "/^_value$/", "values": False}
    if kind == "stat":
        return {"reduceOptions": reduce}
    if kind == "bargauge":
        return {"reduceOptions": reduce, "displayMode": "gradient", "orientation": "horizontal"}
    if kind == "barchart":
        return {"xField": "le", "showValue": "never", "legend": {"showLegend": False}}
    return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}


def _layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Left to right, top to bottom, wrapping at Grafana's 24 columns."""
    placed, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append(panel.to_json(panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def _variables(store: flux.Store) -> list[dict[str, Any]]:
    labels = {"model": "Model", "task_type": "Task", "tenant_id": "Tenant", "instance": "Instance"}
    return [
        {
            "name": tag,
            "label": labels[tag],
            "type": "query",
            "datasource": DATASOURCE,
            "query": flux.tag_values(store, tag),
            "definition": flux.tag_values(store, tag),
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        }
        for tag in flux.VARIABLES
    ]


def dashboard(uid: str, title: str, panels: list[Panel], store: flux.Store) -> dict[str, Any]:
    """A whole dashboard: the variables, the panels laid out, links to the others."""
    return {
        "uid": uid,
        "title": title,
        "tags": ["llm-collector"],
        "editable": False,
        "timezone": "browser",
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "schemaVersion": 39,
        "graphTooltip": 1,
        "links": [
            {"type": "dashboards", "tags": ["llm-collector"], "asDropdown": True, "title": "LLM"}
        ],
        "templating": {"list": _variables(store)},
        "panels": _layout(panels),
    }


def _stat(
    title: str, query: str, unit: str = "short", width: int = 4, description: str = SOURCE_NOTE
) -> Panel:
    """A single number (or word) over the whole time range."""
    return Panel(title, [query], "stat", unit, width, 4, description)


def overview(store: flux.Store) -> list[Panel]:
    return [
        _stat("Requests", flux.requests_total(store)),
        _stat("Success rate", flux.error_rate_total(store, success=True), "percentunit"),
        _stat("Cost", flux.summed_total(store, "cost_usd"), "currencyUSD"),
        _stat("Tokens", flux.summed_total(store, "total_tokens")),
        _stat(
            "p95 latency",
            flux.latency_total(store, 0.95),
            "ms",
            description=SOURCE_NOTE + TIER_PERCENTILE_NOTE,
        ),
        _stat("Bucket read", flux.source_bucket(store), "string"),
        Panel("Requests by model", [flux.requests(store, ["model"])]),
        Panel(
            "Success rate",
            [flux.error_rate(store, success=True)],
            unit="percentunit",
            legends=["success rate"],
        ),
        Panel("Cost by model", [flux.summed(store, "cost_usd", ["model"])], unit="currencyUSD"),
        Panel(
            "Tokens",
            [flux.summed(store, "input_tokens"), flux.summed(store, "output_tokens")],
            legends=["input", "output"],
        ),
        Panel(
            "p95 latency",
            [flux.latency(store, 0.95)],
            unit="ms",
            width=24,
            legends=["p95"],
            description=SOURCE_NOTE + TIER_PERCENTILE_NOTE,
        ),
    ]


def latency(store: flux.Store) -> list[Panel]:
    note = SOURCE_NOTE + TIER_PERCENTILE_NOTE
    return [
        Panel(
            "p50 / p95 / p99",
            [flux.latency(store, q) for q in (0.5, 0.95, 0.99)],
            unit="ms",
            width=24,
            legends=["p50", "p95", "p99"],
            description=note,
        ),
        Panel("p95 by model", [flux.latency(store, 0.95, ["model"])], unit="ms", description=note),
        Panel(
            "p95 by task", [flux.latency(store, 0.95, ["task_type"])], unit="ms", description=note
        ),
        Panel("p99 by model", [flux.latency(store, 0.99, ["model"])], unit="ms", description=note),
        Panel(
            "p99 by task", [flux.latency(store, 0.99, ["task_type"])], unit="ms", description=note
        ),
    ]


def _bars() -> dict[str, Any]:
    return {"custom": {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}}}


def _budget_panel(store: flux.Store, rule: BudgetRule) -> Panel:
    """Spend today per group of the rule, coloured at its warn levels."""
    unit = "currencyUSD" if rule.metric == "cost_usd" else "short"
    steps = [{"color": "green", "value": None}]
    colors = ["orange", "red", "dark-red"]
    for index, level in enumerate(rule.warn_at):
        steps.append({"color": colors[min(index, 2)], "value": rule.budget * level})
    return Panel(
        f"{rule.name}: {rule.metric} today, budget {rule.budget:g}",
        [flux.spent_today(store, rule.metric, rule.group_by)],
        kind="bargauge",
        unit=unit,
        description=(
            f"Budget rule {rule.name} of the rules file: {rule.metric} since midnight "
            f"({store.timezone}) per {', '.join(rule.group_by) or 'whole app'}, raw points."
        ),
        extra={
            "min": 0,
            "max": rule.budget,
            "thresholds": {"mode": "absolute", "steps": steps},
        },
    )


def cost(store: flux.Store, rules: list[BudgetRule]) -> list[Panel]:
    usd = "currencyUSD"
    return [
        Panel("Cost by model", [flux.summed(store, "cost_usd", ["model"])], unit=usd, width=8),
        Panel("Cost by task", [flux.summed(store, "cost_usd", ["task_type"])], unit=usd, width=8),
        Panel("Cost by tenant", [flux.summed(store, "cost_usd", ["tenant_id"])], unit=usd, width=8),
        Panel(
            "Cost per hour",
            [flux.summed(store, "cost_usd", ["model"], every="1h")],
            unit=usd,
            extra=_bars(),
        ),
        Panel(
            "Cost per day",
            [flux.summed(store, "cost_usd", ["model"], every="1d")],
            unit=usd,
            extra=_bars(),
        ),
        Panel("Tokens by model", [flux.summed(store, "total_tokens", ["model"])]),
        Panel("Tokens by tenant", [flux.summed(store, "total_tokens", ["tenant_id"])]),
        Panel(
            "Input, output and cached input tokens",
            [flux.summed(store, f) for f in ("input_tokens", "output_tokens", "cache_read_tokens")],
            legends=["input", "output", "cache read"],
        ),
        Panel(
            "Unpriced calls by model",
            [flux.summed(store, "unpriced", ["model"])],
            description=SOURCE_NOTE + " Calls no price is known for: their cost is not counted.",
        ),
        *(_budget_panel(store, rule) for rule in rules),
    ]


def quality(store: flux.Store) -> list[Panel]:
    return [
        Panel(
            "Mean quality",
            [flux.quality(store)],
            unit="percentunit",
            width=24,
            legends=["mean quality"],
        ),
        Panel("Mean quality by task", [flux.quality(store, ["task_type"])], unit="percentunit"),
        Panel("Mean quality by model", [flux.quality(store, ["model"])], unit="percentunit"),
        Panel(
            "Quality distribution (share at or below)",
            [flux.quality_distribution(store)],
            kind="barchart",
            unit="percentunit",
            description="Raw points only (the tiers keep count, mean and min of quality).",
        ),
        Panel(
            "Mean score by name",
            [flux.score_by_name(store)],
            unit="percentunit",
            description="Raw llm_score points only; the tiers count scores without their names.",
        ),
    ]


def errors(store: flux.Store) -> list[Panel]:
    return [
        _stat("Error rate in range", flux.error_rate_total(store), "percentunit", width=12),
        _stat("Failed calls in range", flux.errors_total(store), width=12),
        Panel("Error rate", [flux.error_rate(store)], unit="percentunit", legends=["error rate"]),
        Panel("Errors by type", [flux.errors(store, ["error_type"])], extra=_bars()),
        Panel("Error rate by model", [flux.error_rate(store, ["model"])], unit="percentunit"),
        Panel("Error rate by task", [flux.error_rate(store, ["task_type"])], unit="percentunit"),
        Panel("Errors by tenant", [flux.errors(store, ["tenant_id"])], extra=_bars()),
        Panel("Failed calls by model", [flux.errors(store, ["model"])], extra=_bars()),
    ]


def budget_rules(path: Path) -> list[BudgetRule]:
    """Daily budget rules (monthly ones reach past the raw bucket's retention)."""
    rules = load_rules(path).rules
    return [r for r in rules if isinstance(r, BudgetRule) and r.period == "day"]


def build(config: Path = CONFIG, rules: Path = RULES) -> dict[str, dict[str, Any]]:
    """File name -> dashboard, for the collector configured in ``config``."""
    store = flux.load_store(config)
    missing = [tag for tag in TAGS_USED if tag not in store.dimensions]
    if missing:
        raise SystemExit(f"{config}: dimensions must include {', '.join(missing)}")
    boards = {
        "overview": ("llm-overview", "LLM: Overview", overview(store)),
        "latency": ("llm-latency", "LLM: Latency", latency(store)),
        "cost": ("llm-cost", "LLM: Cost and usage", cost(store, budget_rules(rules))),
        "quality": ("llm-quality", "LLM: Quality", quality(store)),
        "errors": ("llm-errors", "LLM: Errors", errors(store)),
    }
    return {
        f"{name}.json": dashboard(uid, title, panels, store)
        for name, (uid, title, panels) in boards.items()
    }


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, board in build().items():
        (OUT / name).write_text(render(board), encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
